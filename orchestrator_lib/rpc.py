"""Controller side of the host agent protocol: one SSH exec per action per host.

The agent zipapp is named by its content hash, so the common case is a single exec: run it if it
is there, else (exit 111) upload it under a temporary name, move it into place, and run again.
"""
from __future__ import annotations

import getpass
import json
import shlex
import socket
import time
import uuid
from typing import Any, Mapping

from .agents.build import agent_archive
from .orchestration.results import HostResult, Status

AGENT_DIR = "/var/lib/orchestrator"
PYTHON = "/usr/bin/python3"
MISSING_RC = 111
_STATUSES = {"ok": Status.OK, "changed": Status.CHANGED, "failed": Status.FAILED}


def new_reqid() -> str:
    return uuid.uuid4().hex


def default_caller() -> str:
    """`user@controller`, what the audit log on each host records as the caller."""
    try:
        user = getpass.getuser()
    except Exception:
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def agent_path(sha: str) -> str:
    return f"{AGENT_DIR}/agent-{sha}.pyz"


def agent_command(sha: str) -> str:
    path = shlex.quote(agent_path(sha))
    return f"[ -f {path} ] || exit {MISSING_RC}; exec {PYTHON} {path}"


def upload_agent(pool: Any, host: Any, data: bytes, sha: str, timeout: float = 60) -> None:
    """Write to a unique temporary name, then rename: a concurrent caller never runs half a file."""
    path = agent_path(sha)
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    r = pool.exec(host, f"mkdir -p {shlex.quote(AGENT_DIR)}", timeout=timeout)
    if r.rc != 0:
        raise RuntimeError(f"mkdir -p {AGENT_DIR} failed: {_first_line(r.stderr) or f'rc {r.rc}'}")
    pool.put(host, data, tmp, 0o644)
    r = pool.exec(host, f"mv -f {shlex.quote(tmp)} {shlex.quote(path)}", timeout=timeout)
    if r.rc != 0:
        raise RuntimeError(f"installing {path} failed: {_first_line(r.stderr) or f'rc {r.rc}'}")


def _first_line(text: str) -> str:
    """The line that explains: the first one, except for a Python traceback, where it is the last."""
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    if not lines:
        return ""
    return lines[-1] if lines[0].startswith("Traceback (most recent call last)") else lines[0]


def request_bytes(agent: str, action: str, args: Mapping[str, Any] | None, *, reqid: str, caller: str,
                  facts: Mapping[str, Any] | None) -> bytes:
    return json.dumps({"reqid": reqid, "caller": caller, "agent": agent, "action": action,
                       "args": dict(args or {}), "facts": dict(facts or {})}, default=str).encode()


def parse_reply(host: str, label: str, rc: int, stdout: str, stderr: str, duration: float) -> HostResult:
    """The agent's JSON reply as a HostResult; anything else is FAILED with a one-line reason."""
    result = HostResult(host=host, status=Status.FAILED, rc=rc, stdout=stdout, stderr=stderr, duration=duration)
    try:
        reply = json.loads(stdout)
    except ValueError:
        reply = None
    if not isinstance(reply, dict) or reply.get("status") not in _STATUSES:
        why = _first_line(stderr) or (f"stdout: {_first_line(stdout)[:120]}" if stdout.strip() else "no output")
        result.message = f"{label}: no valid reply from the agent (rc {rc}): {why}"
        return result
    result.status = _STATUSES[reply["status"]]
    result.message = str(reply.get("message") or "")
    data = reply.get("data")
    result.data = data if isinstance(data, dict) else {}
    result.before, result.after = reply.get("before"), reply.get("after")
    if rc != 0 and result.status is not Status.FAILED:  # a reply with a bad exit is not a success
        result.status = Status.FAILED
        result.message = f"{label}: agent exited {rc}: {result.message}"
    return result


def call(pool: Any, host: Any, agent: str, action: str, args: Mapping[str, Any] | None = None, *,
         reqid: str, caller: str, facts: Mapping[str, Any] | None = None, timeout: float = 60) -> HostResult:
    """Run `agent#action` on `host` through `pool` (an SSHPool). Transport errors propagate
    (the orchestration layer turns them into UNREACHABLE); everything else is a HostResult."""
    data, sha = agent_archive()
    label = f"{agent}#{action}"
    payload = request_bytes(agent, action, args, reqid=reqid, caller=caller,
                            facts=host.facts if facts is None else facts)
    command = agent_command(sha)
    started = time.monotonic()
    r = pool.exec(host, command, stdin=payload, timeout=timeout)
    if r.rc == MISSING_RC and not r.stdout.strip():
        try:
            upload_agent(pool, host, data, sha, timeout=timeout)
        except RuntimeError as e:
            return HostResult(host=host.name, status=Status.FAILED, message=f"{label}: {e}",
                              rc=MISSING_RC, duration=time.monotonic() - started)
        r = pool.exec(host, command, stdin=payload, timeout=timeout)
    return parse_reply(host.name, label, r.rc, r.stdout, r.stderr, time.monotonic() - started)
