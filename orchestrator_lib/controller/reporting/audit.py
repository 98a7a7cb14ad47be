"""The controller's central audit log: one JSON line per host per request, with the same reqid
the host's own audit line carries, so "who ran what where" can be followed from either end.
Arguments and messages go through the agents' redaction (host/redact.py), the same on both ends.

The log is checked writable before the fan-out: one that cannot be written stops the request before
any host is contacted (an AuditError), instead of failing after the fan-out and losing its results.
A write that fails after the fan-out (disk full meanwhile) warns on stderr; the results are kept."""
from __future__ import annotations

import json
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


class AuditLog:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()

    def _append(self, lines: list[str]) -> None:
        assert self.path is not None
        text = "\n".join(lines) + "\n" if lines else ""
        with self._lock:
            try:
                out = open(self.path, "a")
            except FileNotFoundError:  # its folder, made once, not before every line
                self.path.parent.mkdir(parents=True, exist_ok=True)
                out = open(self.path, "a")
            with out:
                out.write(text)

    def check_writable(self) -> None:
        """Before the fan-out: raises AuditError when the log cannot be opened for appending, so a
        request that could not be audited is never sent (it used to fail after the fan-out, and
        the results of a request that had run were lost)."""
        if self.path is None:
            return
        try:
            with self._lock:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                open(self.path, "a").close()
        except OSError as e:
            raise AuditError(f"cannot write the central audit log {self.path}: {e.strerror or e}; "
                             "nothing was sent") from None

    def sender(self, request: Request) -> Callable[[str], None]:
        """`sent(host)` for one request: its line is written before the request goes to `host`, so
        a controller killed while it runs still leaves a line for it (status "sent", no outcome
        yet). The redacted fields are worked out once per request, not once per host."""
        if self.path is None:
            return lambda _host: None
        fields = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "reqid": request.reqid, "caller": request.caller,
                  "agent": request.agent, "action": request.action, "args": redact(dict(request.args)),
                  "dry_run": request.dry_run, "status": "sent", "message": "",
                  **({"spec": redact_spec(request.spec)} if request.spec else {})}
        return lambda host: self._append([json.dumps({**fields, "host": host}, sort_keys=True)])

    def record(self, request: Request, result: RunResult) -> None:
        """One line per host. A failure here warns (the fan-out ran: its results must not be lost)."""
        if self.path is None:
            return
        now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        safe_args = redact(dict(request.args))
        lines = [json.dumps({"time": now, "reqid": request.reqid, "caller": request.caller, "agent": request.agent,
                             "action": request.action, "args": safe_args, "dry_run": request.dry_run, "host": r.host,
                             "status": str(r.status), "message": redact_text(r.message),
                             **({"spec": redact_spec(request.spec)} if request.spec else {})}, sort_keys=True)
                 for r in result.results.values()]
        try:
            self._append(lines)
        except OSError as e:
            print(f"warning: cannot write the central audit log {self.path}: {e.strerror or e} "
                  f"(request {request.reqid}: its results are kept)", file=sys.stderr)
