"""Controller side of the host agent protocol: one SSH exec per action per host.

The agent is installed on a host as a directory named by the zipapp's content hash, unpacked and
with its bytecode compiled by the host's own python3, so an action neither decompresses nor
compiles anything: it is a bare interpreter start plus the few modules the action imports. The
common case is a single exec: run the agent if it is there, else (exit 111) upload the zipapp,
install it (see INSTALL_SCRIPT), and run again.
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
#: -S: no site module and no site-packages (the agent is stdlib only); -E: ignore PYTHON* variables.
#: Never -B: the interpreter must be free to write bytecode, e.g. after a Python upgrade on the host.
PYTHON_FLAGS = "-S -E"
MISSING_RC = 111
#: Run on the host by its python3 with (uploaded zipapp, temporary directory, final directory):
#: unpack, compile (for the host's Python version, with tracebacks naming the final paths), then
#: rename the directory into place. rename() is atomic, so a concurrent caller sees the whole agent
#: or none of it; when several callers race, the first rename wins and the others drop their copy.
INSTALL_SCRIPT = """\
import compileall, os, shutil, sys, zipfile
archive, tmp, final = sys.argv[1:]
try:
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(tmp)
    if not compileall.compile_dir(tmp, ddir=final, quiet=1):
        sys.exit(f"cannot compile the agent in {tmp}")
    try:
        os.rename(tmp, final)
    except OSError:  # taken: fine if by another caller's complete copy
        if not os.path.isfile(os.path.join(final, "__main__.py")):
            raise
finally:
    shutil.rmtree(tmp, ignore_errors=True)
    os.unlink(archive)
"""
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
    """The agent's directory on a host (the unpacked zipapp, with its __pycache__)."""
    return f"{AGENT_DIR}/agent-{sha}"


def agent_command(sha: str) -> str:
    main = shlex.quote(f"{agent_path(sha)}/__main__.py")
    return f"[ -f {main} ] || exit {MISSING_RC}; exec {PYTHON} {PYTHON_FLAGS} {main}"


def upload_agent(pool: Any, host: Any, data: bytes, sha: str, timeout: float = 60) -> None:
    """Upload the zipapp under a unique temporary name, then install it (INSTALL_SCRIPT)."""
    path = agent_path(sha)
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    r = pool.exec(host, f"mkdir -p {shlex.quote(AGENT_DIR)}", timeout=timeout)
    if r.rc != 0:
        raise RuntimeError(f"mkdir -p {AGENT_DIR} failed: {_first_line(r.stderr) or f'rc {r.rc}'}")
    archive = f"{tmp}.pyz"
    pool.put(host, data, archive, 0o644)
    args = " ".join(shlex.quote(a) for a in (archive, tmp, path))
    r = pool.exec(host, f"{PYTHON} {PYTHON_FLAGS} - {args}", stdin=INSTALL_SCRIPT.encode(), timeout=timeout)
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
