"""haproxy: take servers out of and back into a backend through HAProxy's runtime API (the admin
socket; plain AF_UNIX, no socat). Every change is verified by reading `show servers state` again,
because the API answers "" both for "done" and for some no-ops."""
from __future__ import annotations

import csv
import io
import math
import socket
from collections import namedtuple

from .. import core
from ...protocol import ADMIN_AFTER, DRAIN, MAINT, READY
from ..core import ActionError, Reply, Request
from .health import MAX_DEADLINE

agent = core.Agent(__name__, "status, disable, drain, enable servers of a backend")

SOCKET_PATH = "/run/haproxy/admin.sock"
OP_STATES = {0: "DOWN", 1: "STARTING", 2: "UP", 3: "STOPPING"}
# srv_admin_state bits (management.txt, "show servers state")
FMAINT, IMAINT, CMAINT, FDRAIN, IDRAIN, RMAINT = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
MAINT_BITS = FMAINT | IMAINT | CMAINT | RMAINT
DRAIN_BITS = FDRAIN | IDRAIN


class ServerState(namedtuple("ServerState", "backend name address op_state admin_state")):
    """One line of `show servers state`: the server, its address, and its two state numbers."""
    __slots__ = ()

    @property
    def op(self) -> str:
        return OP_STATES.get(self.op_state, str(self.op_state))

    @property
    def admin(self) -> str:
        return MAINT if self.admin_state & MAINT_BITS else DRAIN if self.admin_state & DRAIN_BITS else READY

    def summary(self) -> dict:
        return {"address": self.address, "op": self.op, "admin": self.admin,
                "op_state": self.op_state, "admin_state": self.admin_state}


class RuntimeAPIError(ActionError):
    pass


def parse_servers_state(text: str) -> list[ServerState]:
    """Pure parser of `show servers state [BACKEND]` (format version 1): a version line, a
    '# be_id be_name ...' header, then one whitespace-separated line per server."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise RuntimeAPIError("empty answer to 'show servers state'")
    if lines[0].strip() != "1":
        raise RuntimeAPIError(f"haproxy: {core.one_line(lines[0], 200)}")
    header: list[str] | None = None
    servers: list[ServerState] = []
    for line in lines[1:]:
        if line.startswith("#"):
            if header is None:
                header = line.lstrip("#").split()
            continue
        if header is None:
            raise RuntimeAPIError("'show servers state' answer has no header line")
        row = dict(zip(header, line.split()))
        try:
            servers.append(ServerState(row["be_name"], row["srv_name"], row.get("srv_addr", ""),
                                       int(row["srv_op_state"]), int(row["srv_admin_state"])))
        except (KeyError, ValueError):
            raise RuntimeAPIError(f"unparsable 'show servers state' line: {core.one_line(line, 200)}") from None
    return servers


def parse_stat_sessions(text: str, backend: str) -> dict[str, int]:
    """Current sessions (scur) per server of `backend` from `show stat` CSV."""
    body = text.lstrip()
    if not body.startswith("#"):
        raise RuntimeAPIError(f"haproxy: {core.one_line(body, 200)}")
    rows = csv.DictReader(io.StringIO(body[1:].lstrip()))
    out: dict[str, int] = {}
    for row in rows:
        if row.get("pxname") == backend and row.get("svname") not in ("FRONTEND", "BACKEND", None):
            out[row["svname"]] = int(row.get("scur") or 0)
    return out


class RuntimeAPI:
    """One command per connection (the socket's non-interactive mode closes after answering)."""

    def __init__(self, path: str = SOCKET_PATH, timeout: float = 5.0) -> None:
        self.path, self.timeout = path, timeout

    def command(self, cmd: str) -> str:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(self.timeout)
                s.connect(self.path)
                s.sendall(cmd.encode() + b"\n")
                chunks = []
                while chunk := s.recv(65536):
                    chunks.append(chunk)
        except OSError as e:
            raise RuntimeAPIError(f"haproxy runtime API {self.path}: {e.strerror or e}") from None
        return b"".join(chunks).decode(errors="replace")

    def servers(self, backend: str) -> dict[str, ServerState]:
        return {s.name: s for s in parse_servers_state(self.command(f"show servers state {backend}"))
                if s.backend == backend}

    def set_state(self, backend: str, server: str, state: str) -> None:
        answer = self.command(f"set server {backend}/{server} state {state}").strip()
        if answer:
            raise RuntimeAPIError(f"set server {backend}/{server} state {state}: {core.one_line(answer, 200)}")

    def sessions(self, backend: str) -> dict[str, int]:
        return parse_stat_sessions(self.command(f"show stat {backend} 4 -1"), backend)


def api_for(req: Request) -> RuntimeAPI:
    """Tests replace this to talk to a fake socket. `timeout`: seconds the API may take to answer
    (a pre-flight check asks with a short one, so a hung API fails fast)."""
    timeout = req.float_arg("timeout", 5.0)
    if not (math.isfinite(timeout) and 0 < timeout <= 60):
        raise ActionError(f"{req.label}: timeout must be more than 0 and at most 60 s, got {timeout:g}")
    return RuntimeAPI(req.str_arg("socket", SOCKET_PATH), timeout)


def _backend(req: Request) -> str:
    backend = req.str_arg("backend")
    if not backend.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise ActionError(f"{req.label}: invalid backend name {backend!r}")
    return backend


def _servers(req: Request, current: dict[str, ServerState], backend: str) -> list[str]:
    names = req.list_arg("servers", None) or req.list_arg("server", None)
    if not names:
        raise ActionError(f"{req.label}: missing argument 'servers'")
    unknown = [n for n in names if n not in current]
    if unknown:
        raise ActionError(f"no server {', '.join(unknown)} in backend {backend} (has: {', '.join(current) or 'none'})")
    return list(dict.fromkeys(names))


@agent.action
def status(req: Request) -> Reply:
    backend, api = _backend(req), api_for(req)
    current = api.servers(backend)
    if not current:
        raise ActionError(f"backend {backend} has no servers (or does not exist)")
    wanted = req.list_arg("servers", None) or list(current)
    missing = [n for n in wanted if n not in current]
    if missing:
        raise ActionError(f"no server {', '.join(missing)} in backend {backend}")
    servers = {n: current[n].summary() for n in wanted}
    text = ", ".join(f"{n} {s['op']}/{s['admin']}" for n, s in servers.items())
    view = {n: s["admin"] for n, s in servers.items()}
    return Reply.ok(f"{backend}: {text}", before=view, after=view, data={"backend": backend, "servers": servers})


def _set(req: Request, action: str) -> tuple[Reply, RuntimeAPI, str, list[str]]:
    """Set every named server to the action's admin state, skipping those already there."""
    backend, api = _backend(req), api_for(req)
    target = ADMIN_AFTER[action]  # the admin state, and the runtime API word that sets it
    current = api.servers(backend)
    names = _servers(req, current, backend)
    todo = [n for n in names if current[n].admin != target]
    if req.dry_run:
        would = f"{backend}: {', '.join(todo)} would be set to {target}" if todo else \
            f"{backend}: {', '.join(names)} already {target}"
        return Reply.done(bool(todo), would, dry_run=True, before={n: current[n].admin for n in names},
                          after={n: target for n in names}, data={"backend": backend, "changed": todo}), api, backend, names
    errors: dict[str, str] = {}
    for name in todo:
        try:
            api.set_state(backend, name, target)
        except RuntimeAPIError as e:
            errors[name] = str(e)
    after = api.servers(backend) if todo else current
    before_view = {n: current[n].admin for n in names}
    after_view = {n: after[n].admin if n in after else "gone" for n in names}
    data = {"backend": backend, "changed": todo,
            "servers": {n: after[n].summary() for n in names if n in after}}
    wrong = [n for n in names if after_view[n] != target]
    if wrong:
        why = "; ".join(errors.get(n, f"{n} is {after_view[n]}") for n in wrong)
        reply = Reply.failed(f"{backend}: not {target}: {why}", changed=any(after_view[n] == target for n in todo),
                             before=before_view, after=after_view, data=data)
        return reply, api, backend, names
    if todo:
        already = len(names) - len(todo)
        msg = f"{backend}: {', '.join(todo)} set to {target}" + (f" ({already} already {target})" if already else "")
    else:
        msg = f"{backend}: {', '.join(names)} already {target}"
    return Reply.done(bool(todo), msg, before=before_view, after=after_view, data=data), api, backend, names


@agent.action
def disable(req: Request) -> Reply:
    """Maintenance: no traffic and no health checks. Already in maint = unchanged."""
    return _set(req, "disable")[0]


@agent.action
def enable(req: Request) -> Reply:
    return _set(req, "enable")[0]


@agent.action
def drain(req: Request) -> Reply:
    """Stop new sessions, then wait (up to `deadline` s) for the current ones to finish."""
    deadline = req.float_arg("deadline", 60.0)
    interval = req.float_arg("interval", 0.5)
    if not (math.isfinite(deadline) and 0 <= deadline <= MAX_DEADLINE and math.isfinite(interval) and interval > 0):
        raise ActionError(f"{req.label}: deadline must be 0 to {MAX_DEADLINE:g} s and interval a positive "
                          f"number of seconds, got {deadline:g} and {interval:g}")  # NaN would wait forever
    reply, api, backend, names = _set(req, "drain")
    if reply.status == "failed" or req.dry_run:
        return reply
    sys_ = core.system()
    start = sys_.monotonic()
    while True:
        sessions = api.sessions(backend)
        busy = {n: sessions.get(n, 0) for n in names if sessions.get(n, 0) > 0}
        waited = sys_.monotonic() - start
        if not busy or waited >= deadline:
            break
        sys_.sleep(min(interval, max(deadline - waited, 0)))
    reply.data.update(sessions={n: sessions.get(n, 0) for n in names}, waited=round(waited, 3))
    if busy:
        left = ", ".join(f"{n} {c}" for n, c in busy.items())
        return Reply.failed(f"{backend}: sessions still open after {deadline:g} s: {left}",
                            changed=reply.changed, before=reply.before, after=reply.after, data=reply.data)
    reply.message += f"; no sessions left after {waited:.1f} s"
    return reply

