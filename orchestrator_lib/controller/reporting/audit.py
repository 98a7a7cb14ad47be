"""The controller's central audit log: one JSON line per host per request, with the same reqid
the host's own audit line carries, so "who ran what where" can be followed from either end.
Arguments and messages go through the agents' redaction (agents/audit.py), the same on both ends."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from ...host.audit import redact, redact_spec, redact_text
from ...protocol import Request
from ..orchestration import RunResult


class AuditLog:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    def sent(self, request: Request, host: str) -> None:
        """The request is about to go to `host`: written before it is sent, so a controller
        killed while it runs still leaves a line for it (status "sent", no outcome yet)."""
        if self.path is None:
            return
        line = json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "reqid": request.reqid,
                           "caller": request.caller, "agent": request.agent, "action": request.action,
                           "args": redact(dict(request.args)), "dry_run": request.dry_run, "host": host,
                           "status": "sent", "message": ""}, sort_keys=True)
        with self._lock, open(self.path, "a") as out:
            out.write(line + "\n")

    def record(self, request: Request, result: RunResult) -> None:
        if self.path is None:
            return
        now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        safe_args = redact(dict(request.args))
        lines = [json.dumps({"time": now, "reqid": request.reqid, "caller": request.caller, "agent": request.agent,
                             "action": request.action, "args": safe_args, "dry_run": request.dry_run, "host": r.host,
                             "status": str(r.status), "message": redact_text(r.message),
                             **({"spec": redact_spec(request.spec)} if request.spec else {})}, sort_keys=True)
                 for r in result.results.values()]
        with self._lock, open(self.path, "a") as out:
            out.write("\n".join(lines) + "\n" if lines else "")
