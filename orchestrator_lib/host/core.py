"""The agent runtime and the request pipeline: the action registry, and the life of one request
(policy -> dispatch -> audit), one-shot or resident (`--serve`). The request, the reply and the
names are the protocol's (orchestrator_lib/protocol.py); the host is reached through `System`.

Host-side code: Python 3.11 standard library only.

Startup is most of what an action costs a host: a fresh interpreter runs for every action, so the
modules on every request's path (core, policy, audit) import at the top only what `import json`
loads anyway (re, collections, enum...) or what costs next to nothing. Nothing in the agent imports
`typing` or `dataclasses` at run time (records are namedtuples or plain classes), and heavier
modules (subprocess, shutil, hashlib, urllib, socket, platform, traceback) are imported inside the
functions that need them. A unit test runs a ping and checks what it loaded.
"""
from __future__ import annotations

import importlib
import json
import os
import sys

from ..protocol import (  # noqa: F401 -- the agents' names for the protocol's types
    AGENTS, READ_ONLY, REPLY_STATUSES, SERVE_FLAG, SERVE_PROBE, ActionError, ProtocolError, Reply, Request, Status,
    action_names, one_line)
from .. import protocol_args
from . import audit, policy
from .system import CmdResult, System, run, system, use_system  # noqa: F401 -- the agents' door

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~2 ms per run)
if TYPE_CHECKING:
    from typing import Any, Callable, Sequence

    ActionFn = Callable[[Request], Reply]

#: sshd gives non-root users a PATH without sbin; package and firewall tools live there.
STANDARD_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


# --------------------------------------------------------------------------- registry

REGISTRY: dict[str, "Agent"] = {}


class Agent:
    """One agent = one module of this package that creates `agent = Agent(__name__)`."""

    def __init__(self, module: str, doc: str = "") -> None:
        self.name = module.rsplit(".", 1)[-1]
        self.doc = doc
        self.actions: dict[str, ActionFn] = {}
        REGISTRY[self.name] = self

    def action(self, fn: ActionFn) -> ActionFn:
        """Register `fn` under its name and the aliases the protocol gives that action."""
        for name in action_names(self.name, fn.__name__.rstrip("_")):
            self.actions[name] = fn
        return fn


def load_agent(name: str) -> Agent | None:
    """Import the module named after the agent (lazily: a request pays only for its agent)."""
    if name not in REGISTRY and name in AGENTS:
        importlib.import_module(f"{__package__}.agents.{name}")
    return REGISTRY.get(name)


def agent_names() -> list[str]:
    """Every agent this copy of the package ships (imports them all)."""
    return sorted(n for n in AGENTS if load_agent(n) is not None)


def dispatch(req: Request) -> Reply:
    """Run one action. Failures come back as a failed Reply; only the protocol raises. Whatever
    the action put in its message (a URL, a command's error output) leaves redacted: the
    controller prints it, reports it and audits it."""
    reply = _run_action(req)
    reply.message = audit.redact_text(reply.message)
    return reply


def _run_action(req: Request) -> Reply:
    agent = load_agent(req.agent)
    if agent is None:
        return Reply.failed(f"unknown agent '{req.agent}' (this host has: {', '.join(sorted(AGENTS))})")
    fn = agent.actions.get(req.action)
    if fn is None:
        return Reply.failed(f"unknown action {req.label} (known: {', '.join(sorted(agent.actions))})")
    try:
        reply = fn(req)
    except ActionError as e:
        return Reply.failed(str(e))
    except Exception as e:  # an agent bug must still produce a reply, and a traceback on stderr
        _print_traceback()
        return Reply.failed(f"{req.label}: {type(e).__name__}: {e}")
    if not isinstance(reply, Reply) or reply.status not in REPLY_STATUSES:
        return Reply.failed(f"{req.label}: agent returned an invalid reply")
    if req.dry_run and reply.status is Status.CHANGED:  # every action honours dry_run: a bug otherwise
        return Reply.failed(f"{req.label}: changed the host in a dry run", changed=True)
    return reply


#: The longest request line accepted (one-shot or resident): requests are a few hundred bytes.
MAX_REQUEST = 1 << 20


def _bad_arguments(req: Request) -> str | None:
    """The protocol's argument schema (protocol_args), checked before anything is dispatched:
    a bad argument is refused like a denial (audited, nothing run)."""
    try:
        protocol_args.check(req.agent, req.action, req.args)
    except protocol_args.ArgError as e:
        return f"refused: {e}"
    return None


def handle(obj: object, env: dict[str, str] | None = None, identity: Any = None, policy_path: str = "",
           pending: audit.Pending | None = None, loaded: Any = None) -> Reply:
    """The whole life of one request: policy, the action, its audit line(s). The policy decides on
    the action itself (policy.check resolves aliases to every name of it).
    Audit: every request leaves a result line, written before its reply is returned. A request that
    may change the host (an action outside protocol.READ_ONLY, or a dry run) also leaves a
    "received" line before it runs, and nothing runs unless that line is on disk (unless the policy
    says "audit": "best-effort"): a request that cannot be audited is refused, and a killed agent
    still leaves a trace. A request refused before dispatch, or a read-only action, has only its
    result line (nothing ran, or nothing could change); when that line cannot be written the reply
    is a refusal too (its data is not returned unaudited). Under sshd, test-only variables
    (ORCHESTRATOR_AUDIT_LOG) are ignored unless root enabled them on the host (policy.trusted_env).
    A request older than its ttl is refused as a denial is (audited, never run). The caller is the
    key sshd accepted (policy.identify), or `identity` when the caller proved its key otherwise (a
    signed request over a broker: host/signing.py); `policy_path` is for agents that are not the
    host's (bench/). `pending`: hold a refused or read-only request's line there instead of writing
    it now; the caller writes it (audit.write_pending) before the reply leaves, and refuses the
    reply if it cannot (nats_service.Batch). `loaded`: the policy.snapshot() the caller already
    checked the request's key against (the same version decides the action)."""
    env = policy.trusted_env(os.environ if env is None else env)
    req = Request.from_obj(obj)
    if identity is None:
        identity = policy.identify(env)
    host = system()
    denial = (req.expired(host.time()) or policy.check(req.agent, req.action, identity, path=policy_path, loaded=loaded)
              or _bad_arguments(req))
    line = audit.entry(req, None, identity, event="received")
    if denial:
        reply = Reply.failed(denial)
        if pending is not None:
            pending.add(audit.entry(req, reply, identity, received=line), env)
        else:
            audit.record(req, reply, identity, env=env, received=line)
        return reply
    if req.dry_run or req.label not in READ_ONLY:
        unwritable = audit.write(line, env)
        if unwritable:
            print(f"error: {unwritable}", file=sys.stderr)
            if policy.audit_required(policy_path):
                return unaudited(unwritable, "no request runs")
    started = host.monotonic()
    reply = dispatch(req)
    read_only = req.label in READ_ONLY and not req.dry_run
    if read_only and pending is not None:
        pending.add(audit.entry(req, reply, identity, host.monotonic() - started, received=line), env)
        return reply
    unwritable = audit.record(req, reply, identity, duration=host.monotonic() - started, env=env, received=line)
    if unwritable and read_only and policy.audit_required(policy_path):
        return unaudited(unwritable, "no reply leaves")
    return reply


def unaudited(why: str, what: str) -> Reply:
    """The refusal when an audit line cannot be written and the policy requires one (`what`: no
    request runs / no reply leaves)."""
    return Reply.failed(f"refused: {why}; {what} unaudited (the policy's \"audit\": \"best-effort\" allows it)")


def _print_traceback() -> None:
    import traceback
    traceback.print_exc(file=sys.stderr)


def _ensure_path() -> None:
    parts = os.environ.get("PATH", "").split(":")
    os.environ["PATH"] = ":".join([p for p in parts if p] + [p for p in STANDARD_PATH if p not in parts])


def _no_constant(name: str) -> Any:
    raise ProtocolError(f"request holds {name}, which is not JSON")


def parse(raw: str) -> object:
    """The request line as JSON; strict: bounded length and nesting, no NaN or Infinity."""
    if len(raw) > MAX_REQUEST:
        raise ProtocolError(f"request longer than {MAX_REQUEST} bytes")
    try:
        return json.loads(raw, parse_constant=_no_constant)
    except RecursionError:
        raise ProtocolError("request nested too deeply") from None
    except ValueError as e:
        raise ProtocolError(f"request is not JSON: {e}") from None


def respond(raw: str, env: dict[str, str] | None = None) -> tuple[dict[str, Any], int]:
    """One request's whole life, text in, (reply object, exit status) out; never raises.
    Exit status 0 whenever the action ran (even `failed`); 2 for a bad request (audited too, but
    for the resident session's probe, which carries nothing), 1 for an agent bug."""
    obj: object = None
    identity = None
    try:
        env = policy.trusted_env(os.environ if env is None else env)
        identity = policy.identify(env)
        obj = parse(raw)
        return handle(obj, env, identity).to_obj(), 0
    except ProtocolError as e:
        reply = Reply.failed(f"protocol error: {e}")
        if obj != PROBE:
            audit.rejected(obj, reply.message, identity, env)
        return reply.to_obj(), 2
    except (Exception, SystemExit) as e:  # a bug outside any action (policy, audit): still one JSON line
        _print_traceback()
        return Reply.failed(f"agent error: {type(e).__name__}: {e}").to_obj(), 1


PROBE = json.loads(SERVE_PROBE)


def _reply_line(reply: dict[str, Any]) -> str:
    """ASCII JSON (never a raw newline inside); a NaN an agent put in its data goes as a string."""
    try:
        return json.dumps(reply, default=str, allow_nan=False) + "\n"
    except ValueError:
        return json.dumps(audit.redact(reply), default=str) + "\n"


def serve(stdin: Any, stdout: Any) -> int:
    """The resident mode (`--serve`): one JSON request per line in, one JSON reply per line out,
    one at a time, until EOF. Each request goes through respond() exactly as a one-shot run does
    (policy, action, audit lines); nothing read from the host is kept between requests. Lines end
    at \\n only (a bare \\r is inside a line, not a second request), and a line longer than
    MAX_REQUEST is refused whole, without reading it into memory."""
    while True:
        raw = stdin.readline(MAX_REQUEST + 1)
        if not raw:
            return 0
        if len(raw) > MAX_REQUEST and not raw.endswith("\n"):
            while True:  # skip the rest of the over-long line
                more = stdin.readline(MAX_REQUEST)
                if not more or more.endswith("\n"):
                    break
            reply, _rc = respond(raw)  # refused by parse() as too long, and audited
        elif not raw.strip():
            continue
        else:
            reply, _rc = respond(raw)
        try:
            stdout.write(_reply_line(reply))
            stdout.flush()
        except (BrokenPipeError, ValueError, OSError):  # the controller went away
            return 0


def _serve_on_private_fds() -> int:
    """Keep the protocol's pipes to ourselves: the commands actions run inherit /dev/null as
    stdin and stdout (in one-shot mode stdin was at EOF already), so none can eat or emit a line."""
    proto_in, proto_out = os.dup(0), os.dup(1)  # os.dup: not inheritable
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    with open(proto_in, encoding="utf-8", errors="replace", newline="\n") as fin, \
            open(proto_out, "w", encoding="utf-8", newline="\n") as fout:
        return serve(fin, fout)


def main(stdin: Any = None, stdout: Any = None, argv: Sequence[str] | None = None) -> int:
    """Entry point: one JSON request on stdin, one JSON reply on stdout (see respond() for the
    exit status); with `--serve`, a request per line until EOF (see serve())."""
    if argv is None:  # streams given: a caller in-process (tests), not the command line
        argv = sys.argv[1:] if stdin is None and stdout is None else ()
    _ensure_path()
    if SERVE_FLAG in argv:
        if stdin is None and stdout is None:
            return _serve_on_private_fds()
        return serve(stdin or sys.stdin, stdout or sys.stdout)
    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    reply, rc = respond(stdin.read(MAX_REQUEST + 1))
    stdout.write(_reply_line(reply))
    return rc
