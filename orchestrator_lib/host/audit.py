"""The host's own audit trail: one JSON line per request, whoever sent it and whatever came of it
(MCollective's AAA audit log). Secrets in arguments and messages never reach the file: redact() and
redact_text() are the one redaction, used by the controller's central audit log and the agents' replies too."""
from __future__ import annotations

import json
import os
import sys
import time

from ..protocol import Reply, Request, one_line
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
    to every run for this one line)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}+00:00"


def entry(req: Request, reply: Reply, identity: Any, duration: float = 0.0) -> dict[str, Any]:
    now = system().time()
    return {
        "time": utc_iso(now),
        "reqid": req.reqid,
        "caller": req.caller,
        "key": getattr(identity, "label", None),
        "agent": req.agent,
        "action": req.action,
        "args": redact(req.args),
        "status": reply.status,
        "dry_run": req.dry_run,
        "changed": bool(reply.changed),
        "message": redact_text(one_line(reply.message)),
        "duration": round(duration, 3),
        **({"spec": redact_spec(req.spec)} if req.spec else {}),
    }


def redact_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec as an audit line carries it: its texts (a step may quote a URL) redacted."""
    return {k: redact_text(one_line(v)) if isinstance(v, str) else v for k, v in spec.items()}


def record(req: Request, reply: Reply, identity: Any, duration: float = 0.0,
           env: dict[str, str] | None = None, path: str | None = None) -> None:
    """Append one line. A log that cannot be written warns on stderr but never hides the reply."""
    env = os.environ if env is None else env
    path = path or env.get(AUDIT_ENV) or AUDIT_PATH
    line = json.dumps(entry(req, reply, identity, duration), default=str, sort_keys=False) + "\n"
    try:
        # One write() on an O_APPEND descriptor: concurrent agents never interleave lines. The
        # directory is made only when missing (a long-lived agent writes thousands of lines).
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(path) or ".", mode=0o750, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, line.encode("utf-8"))
        finally:
            os.close(fd)
    except OSError as e:
        print(f"warning: cannot write audit log {path}: {e}", file=sys.stderr)
