"""The host's own audit trail: one JSON line per request, whoever sent it and whatever came of it
(MCollective's AAA audit log). Secrets in arguments and messages never reach the file: redact() and
redact_text() are the one redaction, used by the controller's central audit log and the agents' replies too."""
from __future__ import annotations

import fcntl
import json
import os
import sys
import time

from ..protocol import Reply, Request, one_line
from .policy import sha256
from .system import system

TYPE_CHECKING = False  # as in core: annotations only, typing costs every run
if TYPE_CHECKING:
    from typing import Any

AUDIT_PATH = "/var/log/orchestrator/audit.jsonl"
#: Only for running the agent off-host (tests, a developer's shell): hosts use AUDIT_PATH.
AUDIT_ENV = "ORCHESTRATOR_AUDIT_LOG"
# The redaction lives in redact.py (the host's and the controller's one redaction); re-exported.
from .redact import REDACTED, WEBHOOK_KEY, redact, redact_text, secret_name  # noqa: E402,F401


def utc_iso(ts: float) -> str:
    """ISO 8601 in UTC to the millisecond, `2023-11-14T22:13:20.123+00:00` (datetime would add ~1 ms
    to every run for this one line; strftime is formatted once per second)."""
    global _SECOND
    second = int(ts)
    if _SECOND[0] != second:
        _SECOND = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return _SECOND[1] + f".{int(ts * 1000) % 1000:03d}+00:00"


_SECOND: tuple[int, str] = (-1, "")


#: How much of the log's end is read to find the previous line (lines are far shorter).
TAIL = 65536


def entry(req: Request, reply: Reply | None, identity: Any, duration: float = 0.0,
          event: str = "result", received: dict[str, Any] | None = None) -> dict[str, Any]:
    """One audit line. `caller` is the key sshd verified; the request's own `caller` field is
    only what the controller says it is, so it is kept as `declared_caller`. `received`: this
    request's "received" entry, whose request fields the result line repeats (not built twice)."""
    if received is not None:
        line = {**received, "time": utc_iso(system().time()), "event": event}
    else:
        line = {
            "time": utc_iso(system().time()),
            "event": event,
            "reqid": req.reqid,
            "caller": getattr(identity, "label", None),
            "declared_caller": req.caller,
            "user": getattr(identity, "user", "") or None,
            "agent": req.agent,
            "action": req.action,
            "args": redact(req.args) if req.args else {},
            "dry_run": req.dry_run,
            **({"spec": redact_spec(req.spec)} if req.spec else {}),
        }
    if reply is not None:
        message = reply.message
        line.update(status=reply.status, changed=bool(reply.changed),
                    message=redact_text(one_line(message)) if message != "" else "", duration=round(duration, 3))
    return line


def log_path(env: dict[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return env.get(AUDIT_ENV) or AUDIT_PATH


class _OpenLog:
    """A long-lived agent's audit log, kept open: the descriptor, which file it is (when the path
    names another file, it is opened again), and the end it last wrote with the SHA-256 of its last
    line (the next line's `prev`, known without reading the file back while no other writer appended)."""

    def __init__(self, fd: int, ident: tuple[int, int]) -> None:
        import threading
        self.fd, self.ident = fd, ident
        self.end, self.last_hash = -1, ""
        self.lock = threading.Lock()  # flock does not exclude threads sharing one descriptor


_OPEN: dict[str, _OpenLog] = {}
_ENCODER = json.JSONEncoder(default=str, allow_nan=False)


def _open_log(path: str) -> _OpenLog:
    """The cached descriptor of `path`, (re)opened when absent or when the path names another file
    now (rotated, moved away, removed: checked on every line, so each line lands where the path
    points when it is written). OSError when it cannot be opened."""
    log = _OPEN.get(path)
    try:
        st = os.stat(path)
        ident = (st.st_dev, st.st_ino)
    except OSError:
        ident = None
    if log is not None and log.ident == ident:
        return log
    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o640)
    except FileNotFoundError:  # the directory only when missing
        os.makedirs(os.path.dirname(path) or ".", mode=0o750, exist_ok=True)
        fd = os.open(path, flags, 0o640)
    st = os.fstat(fd)
    fresh = _OpenLog(fd, (st.st_dev, st.st_ino))
    old = _OPEN.get(path)
    _OPEN[path] = fresh
    if old is not None:
        with old.lock:
            os.close(old.fd)
    return fresh


def write(line: dict[str, Any], env: dict[str, str] | None = None, path: str | None = None) -> str | None:
    """Append one line, chained to the one before it (`prev`: the SHA-256 of the previous line, so
    a line removed or edited afterwards breaks the chain: `verify` finds it). Returns None when
    written, else why not (the caller decides whether that stops the request). The file stays open
    (a NATS agent writes thousands of lines); under its lock the previous line is read back only
    when someone else wrote since this process did (the one-shot SSH agent, say)."""
    return _write_lines(path or log_path(env), [line])


class Pending:
    """Result lines held back to be written together (write_pending: one locked write per log):
    a process answering a batch of messages (bench/nats_agents.py: thousands of simulated agents
    in one process) writes their lines once per batch instead of once per request. Only lines
    whose request's reply has not left yet belong here: the holder writes them before it sends
    any reply of the batch (nats_service.Batch), so the guarantee "a reply leaves only after its
    line is written" holds; a received line (before an action that may change the host) is never
    held."""

    def __init__(self) -> None:
        self.lines: dict[str, list[dict[str, Any]]] = {}
        self.count = 0

    def add(self, line: dict[str, Any], env: dict[str, str] | None = None, path: str | None = None) -> None:
        self.lines.setdefault(path or log_path(env), []).append(line)
        self.count += 1


def write_pending(pending: Pending) -> str | None:
    """Write every held line (in order, chained, one write per log); None, or why some were not."""
    error = None
    for path, lines in pending.lines.items():
        error = _write_lines(path, lines) or error
    pending.lines.clear()
    return error


def _write_lines(path: str, lines: list[dict[str, Any]]) -> str | None:
    for _ in range(2):
        try:
            log = _open_log(path)
        except OSError as e:
            return f"cannot write audit log {path}: {e.strerror or e}"
        written = _append(log, lines, path)
        if written != "removed":
            return written
        _OPEN.pop(path, None)  # removed between the check and the lock: open the path again
    return f"cannot write audit log {path}: removed while being written"


def _append(log: _OpenLog, lines: list[dict[str, Any]], path: str) -> str | None:
    with log.lock:
        fd = log.fd
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # concurrent agents: read the last line and append as one step
            try:
                st = os.fstat(fd)
                if st.st_nlink == 0:
                    return "removed"
                size = st.st_size
                if size == log.end:
                    prev = log.last_hash
                else:
                    tail = os.pread(fd, min(size, TAIL), max(0, size - TAIL)) if size else b""
                    last = tail.rstrip(b"\n").rpartition(b"\n")[2]
                    prev = sha256(last).hex()[:32] if last else ""
                encode, chunks = _ENCODER.encode, []
                for line in lines:
                    data = encode({**line, "prev": prev}).encode("utf-8")
                    prev = sha256(data).hex()[:32]
                    chunks.append(data)
                chunks.append(b"")
                blob = b"\n".join(chunks)
                os.write(fd, blob)
                log.end, log.last_hash = size + len(blob), prev
                return None
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        except (OSError, ValueError) as e:
            log.end = -1
            return f"cannot write audit log {path}: {getattr(e, 'strerror', None) or e}"


def verify(path: str) -> int | None:
    """The number of the first line whose `prev` does not match the line before it, or None."""
    previous = b""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            raw = raw.rstrip(b"\n")
            try:
                prev = json.loads(raw).get("prev")
            except ValueError:
                return number
            if prev != (sha256(previous).hex()[:32] if previous else ""):
                return number
            previous = raw
    return None


def received(req: Request, identity: Any, env: dict[str, str] | None = None, path: str | None = None) -> str | None:
    """The line written before anything is dispatched: a killed agent still leaves a trace."""
    return write(entry(req, None, identity, event="received"), env, path)


def redact_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec as an audit line carries it: its texts (a step may quote a URL) redacted."""
    return {k: redact_text(one_line(v)) if isinstance(v, str) else v for k, v in spec.items()}


def record(req: Request, reply: Reply, identity: Any, duration: float = 0.0,
           env: dict[str, str] | None = None, path: str | None = None,
           received: dict[str, Any] | None = None) -> str | None:
    """The result line (`received`: the request's "received" entry, see entry()). A failure to
    write it warns on stderr (the action has run: its reply must still reach the controller) and is
    returned."""
    error = write(entry(req, reply, identity, duration, received=received), env, path)
    if error:
        print(f"warning: {error}", file=sys.stderr)
    return error


def rejected(obj: object, message: str, identity: Any, env: dict[str, str] | None = None) -> str | None:
    """A request refused before it was one (not JSON, no agent, too long): audited too."""
    fields = obj if isinstance(obj, dict) else {}
    req = Request(str(fields.get("agent") or "")[:64] if isinstance(fields.get("agent"), str) else "",
                  str(fields.get("action") or "")[:64] if isinstance(fields.get("action"), str) else "",
                  reqid=str(fields.get("reqid") or "")[:64], caller=str(fields.get("caller") or "")[:128])
    return write(entry(req, Reply.failed(message), identity, event="rejected"), env)


def results(path: str) -> list[dict[str, Any]]:
    """The result lines of a log, in order (each request also has its "received" line)."""
    with open(path, encoding="utf-8") as f:
        return [line for line in map(json.loads, f) if line.get("event") != "received"]
