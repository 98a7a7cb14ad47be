"""The controller's central audit log: one JSON line per host per request, with the same reqid
the host's own audit line carries, so "who ran what where" can be followed from either end.
Arguments and messages go through the agents' redaction (host/redact.py), the same on both ends.

The log is checked writable before the fan-out: one that cannot be written stops the request before
any host is contacted (an AuditError), instead of failing after the fan-out and losing its results.
A write that fails after the fan-out (disk full meanwhile) warns on stderr; the results are kept."""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from ...host.audit import redact, redact_spec, redact_text
from ...protocol import Request
from ..errors import OrchestratorError
from ..orchestration import RunResult


class AuditError(OrchestratorError):
    """The central audit log cannot be written: nothing is sent."""


def _head(request: Request, **extra: str) -> str:
    """A line's JSON up to its closing brace: what every host's line of `request` shares (redacted
    once per request); the per-host fields follow it."""
    fields = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "reqid": request.reqid, "caller": request.caller,
              "agent": request.agent, "action": request.action, "args": redact(dict(request.args)),
              "dry_run": request.dry_run, **extra, **({"spec": redact_spec(request.spec)} if request.spec else {})}
    return json.dumps(fields, sort_keys=True)[:-1]


class AuditLog:
    """Appends to one file, kept open (O_APPEND: other controllers may append to the same log) while
    the path still names it: each request checks that once (check_writable) and reopens the path
    when it was moved or removed, as logging's WatchedFileHandler does for log rotation."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._file_id: tuple[int, int] | None = None

    def _reopen_if_moved(self) -> int:
        """The descriptor for the file the path names now (caller holds the lock)."""
        assert self.path is not None
        try:
            st = os.stat(self.path)
            now = (st.st_dev, st.st_ino)
        except FileNotFoundError:
            now = None
        if self._fd is not None and now != self._file_id:
            os.close(self._fd)
            self._fd = None
        if self._fd is None:
            if now is None:  # its folder, made once, not before every line
                self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
            st = os.fstat(fd)
            self._fd, self._file_id = fd, (st.st_dev, st.st_ino)
        return self._fd

    def _append(self, lines: list[str]) -> None:
        if not lines:
            return
        data = ("\n".join(lines) + "\n").encode()
        with self._lock:
            fd = self._fd if self._fd is not None else self._reopen_if_moved()
            while data:
                data = data[os.write(fd, data):]

    def check_writable(self) -> None:
        """Before the fan-out: raises AuditError when the log cannot be opened for appending, so a
        request that could not be audited is never sent (it used to fail after the fan-out, and
        the results of a request that had run were lost)."""
        if self.path is None:
            return
        try:
            with self._lock:
                self._reopen_if_moved()
        except OSError as e:
            raise AuditError(f"cannot write the central audit log {self.path}: {e.strerror or e}; "
                             "nothing was sent") from None

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = self._file_id = None

    def sender(self, request: Request) -> Callable[[str], None]:
        """`sent(host)` for one request: its line is written before the request goes to `host`, so
        a controller killed while it runs still leaves a line for it (status "sent", no outcome
        yet). The line is made once per request; only the host is added per host."""
        if self.path is None:
            return lambda _host: None
        head = _head(request, status="sent", message="") + ', "host": '
        return lambda host: self._append([head + json.dumps(host) + "}"])

    def record(self, request: Request, result: RunResult) -> None:
        """One line per host. A failure here warns (the fan-out ran: its results must not be lost)."""
        if self.path is None:
            return
        head = _head(request)
        lines = [f'{head}, "host": {json.dumps(r.host)}, "status": {json.dumps(str(r.status))}, '
                 f'"message": {json.dumps(redact_text(r.message))}}}' for r in result.results.values()]
        try:
            self._append(lines)
        except OSError as e:
            print(f"warning: cannot write the central audit log {self.path}: {e.strerror or e} "
                  f"(request {request.reqid}: its results are kept)", file=sys.stderr)
