"""The agent runtime: request/reply types, the action registry, and `System`, the one door
through which actions reach the host (commands, files, clock). Tests swap `System` for a fake,
so every backend is exercised without touching the machine the tests run on.

Host-side code: Python 3.11 standard library only.

Startup is most of what an action costs a host: a fresh interpreter runs for every action, so the
modules on every request's path (core, policy, audit) import at the top only what `import json`
loads anyway (re, collections...) or what costs next to nothing. Nothing in the agent imports
`typing` or `dataclasses` at run time (records are namedtuples or plain classes), and heavier
modules (subprocess, shutil, hashlib, urllib, socket, platform, traceback) are imported inside the
functions that need them. A unit test runs a ping and checks what it loaded.
"""
from __future__ import annotations

import importlib
import json
import os
import re
import sys
import time
from collections import namedtuple

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~2 ms per run)
if TYPE_CHECKING:
    from typing import Any, Callable, Sequence

    Command = Sequence[str] | str
    ActionFn = Callable[["Request"], "Reply"]

#: The agents this package ships, one module each (a unit test keeps it in step with the files).
#: A static list: finding them with pkgutil would cost every run a few milliseconds.
AGENTS = ("appmgr", "firewall", "haproxy", "health", "notify", "package", "rpcutil", "service")
STATUSES = ("ok", "changed", "failed")
#: sshd gives non-root users a PATH without sbin; package and firewall tools live there.
STANDARD_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


class ProtocolError(Exception):
    """The request itself is unusable (not JSON, missing agent/action): exit non-zero."""


class ActionError(Exception):
    """Raised inside an action: the action failed; the message becomes the reply's message."""


def one_line(text: object, limit: int = 400) -> str:
    """Replies carry one-line messages: tallies and audit logs stay one line per host."""
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[: limit - 3] + "..."


# --------------------------------------------------------------------------- the host

class CmdResult(namedtuple("CmdResult", "rc stdout stderr")):
    """What a command did: exit status and its output (rc 127: not found; 124: timed out)."""
    __slots__ = ()

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def line(self) -> str:
        """The first useful line of output, for a one-line failure message."""
        for text in (self.stderr, self.stdout):
            for ln in text.splitlines():
                if ln.strip():
                    return ln.strip()
        return f"exit status {self.rc}"


class System:
    """The real host. Every effect an action has goes through one of these methods."""

    def run(self, cmd: Command, input: str | None = None, timeout: float = 60.0,
            env: dict[str, str] | None = None) -> CmdResult:
        import subprocess
        argv = ["/bin/sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        full_env = {**os.environ, **env} if env else None
        try:
            p = subprocess.run(argv, input=input, capture_output=True, timeout=timeout,
                               env=full_env, encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return CmdResult(127, "", f"{argv[0]}: command not found")
        except subprocess.TimeoutExpired as e:
            from shlex import join
            out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
            return CmdResult(124, out, f"timed out after {timeout:g} s: {join(argv)}")
        return CmdResult(p.returncode, p.stdout, p.stderr)

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def read_text(self, path: str) -> str | None:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return None

    def symlink(self, target: str, path: str) -> None:
        os.symlink(target, path)

    def which(self, name: str) -> str | None:
        from shutil import which
        return which(name)

    def process_running(self, comm: str) -> bool:
        """True if a process with this command name runs (as seen in our PID namespace)."""
        try:
            pids = [p for p in os.listdir("/proc") if p.isdigit()]
        except OSError:
            return False
        for pid in pids:
            try:
                with open(f"/proc/{pid}/comm") as f:
                    if f.read().strip() == comm:
                        return True
            except OSError:
                continue
        return False

    def loadavg(self) -> tuple[float, float, float]:
        return os.getloadavg()

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


SYSTEM: System = System()


class use_system:
    """`with use_system(fake):` runs actions against `fake` for the duration of the block.
    (A class, not @contextlib.contextmanager: contextlib alone would add ~0.7 ms to every run.)"""

    def __init__(self, system: System) -> None:
        self.system = system

    def __enter__(self) -> System:
        global SYSTEM
        self.saved, SYSTEM = SYSTEM, self.system
        return self.system

    def __exit__(self, *exc: object) -> None:
        global SYSTEM
        SYSTEM = self.saved


def run(cmd: Command, input: str | None = None, timeout: float = 60.0,
        env: dict[str, str] | None = None) -> CmdResult:
    """Run a command on the host: an argv list, or a string for /bin/sh -c. Never raises."""
    return SYSTEM.run(cmd, input=input, timeout=timeout, env=env)


def system() -> System:
    return SYSTEM


# --------------------------------------------------------------------------- requests, replies

_REQUIRED = object()
_TRUE = {"1", "true", "yes", "y", "on"}
_FALSE = {"0", "false", "no", "n", "off", ""}


class Request:
    """One request as the controller sent it: `agent#action`, its arguments, who asked, and the
    host's inventory facts."""

    def __init__(self, agent: str, action: str, args: dict[str, Any] | None = None, reqid: str = "",
                 caller: str = "", facts: dict[str, Any] | None = None) -> None:
        self.agent, self.action = agent, action
        self.args = {} if args is None else args
        self.reqid, self.caller = reqid, caller
        self.facts = {} if facts is None else facts

    def __repr__(self) -> str:
        return f"Request({self.label} args={self.args!r} reqid={self.reqid!r} caller={self.caller!r})"

    @property
    def label(self) -> str:
        return f"{self.agent}#{self.action}"

    @classmethod
    def from_obj(cls, obj: object) -> "Request":
        if not isinstance(obj, dict):
            raise ProtocolError("request must be a JSON object")
        for key in ("agent", "action"):
            if not isinstance(obj.get(key), str) or not obj[key]:
                raise ProtocolError(f"request needs a non-empty string '{key}'")
        args = {} if obj.get("args") is None else obj["args"]
        facts = {} if obj.get("facts") is None else obj["facts"]
        if not isinstance(args, dict) or not isinstance(facts, dict):
            raise ProtocolError("request 'args' and 'facts' must be JSON objects")
        return cls(agent=obj["agent"], action=obj["action"], args=args,
                   reqid=str(obj.get("reqid") or ""), caller=str(obj.get("caller") or ""),
                   facts=facts)

    # Arguments arrive from YAML, the CLI (strings) or code (typed): coerce, and fail in one line.
    def arg(self, name: str, default: Any = _REQUIRED) -> Any:
        value = self.args.get(name)
        if value is None or value == "":
            if default is _REQUIRED:
                raise ActionError(f"{self.label}: missing argument '{name}'")
            return default
        return value

    def str_arg(self, name: str, default: Any = _REQUIRED) -> Any:
        value = self.arg(name, default)
        return value if value is default else str(value)

    def float_arg(self, name: str, default: Any = _REQUIRED) -> Any:
        value = self.arg(name, default)
        if value is default:
            return value
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ActionError(f"{self.label}: argument '{name}' must be a number, got {value!r}") from None

    def int_arg(self, name: str, default: Any = _REQUIRED) -> Any:
        value = self.float_arg(name, default)
        if value is default:
            return value
        if value != int(value):
            raise ActionError(f"{self.label}: argument '{name}' must be a whole number, got {value!r}")
        return int(value)

    def bool_arg(self, name: str, default: bool = False) -> bool:
        value = self.args.get(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ActionError(f"{self.label}: argument '{name}' must be true or false, got {value!r}")

    def list_arg(self, name: str, default: Any = _REQUIRED) -> Any:
        """A JSON list, or a comma/space separated string (MCollective's `server=a,b,c`)."""
        value = self.arg(name, default)
        if value is default:
            return value
        items = value if isinstance(value, (list, tuple)) else re.split(r"[,\s]+", str(value))
        return [str(i).strip() for i in items if str(i).strip()]


class Reply:
    """What an action did: status ok|changed|failed, a one-line message, data, before/after."""

    def __init__(self, status: str, changed: bool = False, message: str = "",
                 data: dict[str, Any] | None = None, before: Any = None, after: Any = None) -> None:
        self.status, self.changed, self.message = status, changed, message
        self.data = {} if data is None else data
        self.before, self.after = before, after

    def __repr__(self) -> str:
        return f"Reply({self.to_obj()!r})"

    @classmethod
    def ok(cls, message: str = "", **kw: Any) -> "Reply":
        return cls("ok", False, message, **kw)

    @classmethod
    def done(cls, changed: bool, message: str = "", **kw: Any) -> "Reply":
        return cls("changed" if changed else "ok", changed, message, **kw)

    @classmethod
    def failed(cls, message: str, changed: bool = False, **kw: Any) -> "Reply":
        return cls("failed", changed, message, **kw)

    def to_obj(self) -> dict[str, Any]:
        return {"status": self.status, "changed": bool(self.changed), "message": one_line(self.message),
                "data": self.data, "before": self.before, "after": self.after}


# --------------------------------------------------------------------------- registry

REGISTRY: dict[str, "Agent"] = {}


class Agent:
    """One agent = one module of this package that creates `agent = Agent(__name__)`."""

    def __init__(self, module: str, doc: str = "") -> None:
        self.name = module.rsplit(".", 1)[-1]
        self.doc = doc
        self.actions: dict[str, ActionFn] = {}
        #: name -> every name of the same action, canonical first (the policy decides on these)
        self.names: dict[str, tuple[str, ...]] = {}
        REGISTRY[self.name] = self

    def action(self, fn: ActionFn | None = None, *, aliases: Sequence[str] = ()) -> Any:
        def register(f: ActionFn) -> ActionFn:
            names = tuple(dict.fromkeys((f.__name__.rstrip("_"), *aliases)))
            for name in names:
                self.actions[name] = f
                self.names[name] = names
            return f
        return register(fn) if fn is not None else register

    def names_of(self, action: str) -> tuple[str, ...]:
        """Every name `action` goes by, canonical first; (action,) when it is not an action here.
        An action registered under several names without `aliases=` counts as one action too."""
        fn = self.actions.get(action)
        if fn is None:
            return (action,)
        names = self.names.get(action, (action,))
        extra = tuple(n for n, f in self.actions.items() if f is fn and n not in names)
        return names + extra


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
    from .audit import redact_text
    reply = _run_action(req)
    reply.message = redact_text(reply.message)
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
    if not isinstance(reply, Reply) or reply.status not in STATUSES:
        return Reply.failed(f"{req.label}: agent returned an invalid reply")
    return reply


def handle(obj: object, env: dict[str, str] | None = None, identity: Any = None, policy_path: str = "") -> Reply:
    """Policy, then the action, then the audit line: the whole life of one request.
    The policy decides on the action itself: policy.check resolves aliases to every name of the
    action before matching. Under sshd, test-only variables (ORCHESTRATOR_AUDIT_LOG) are ignored
    unless root enabled them on the host (policy.trusted_env). The caller is the key sshd accepted
    (policy.identify), or `identity` when the caller proved its key otherwise (a signed request
    over a broker: host/signing.py); `policy_path` is for agents that are not the host's (bench/)."""
    from . import audit, policy
    env = policy.trusted_env(os.environ if env is None else env)
    req = Request.from_obj(obj)
    if identity is None:
        identity = policy.identify(env)
    denial = policy.check(req.agent, req.action, identity, path=policy_path)
    started = SYSTEM.monotonic()
    reply = Reply.failed(denial) if denial else dispatch(req)
    audit.record(req, reply, identity, duration=SYSTEM.monotonic() - started, env=env)
    return reply


def _print_traceback() -> None:
    import traceback
    traceback.print_exc(file=sys.stderr)


def _ensure_path() -> None:
    parts = os.environ.get("PATH", "").split(":")
    os.environ["PATH"] = ":".join([p for p in parts if p] + [p for p in STANDARD_PATH if p not in parts])


def respond(raw: str) -> tuple[dict[str, Any], int]:
    """One request's whole life, text in, (reply object, exit status) out; never raises.
    Exit status 0 whenever the action ran (even `failed`); 2 for a bad request, 1 for an agent bug."""
    try:
        try:
            obj = json.loads(raw)
        except ValueError as e:
            raise ProtocolError(f"request is not JSON: {e}") from None
        return handle(obj).to_obj(), 0
    except ProtocolError as e:
        return Reply.failed(f"protocol error: {e}").to_obj(), 2
    except (Exception, SystemExit) as e:  # a bug outside any action (policy, audit): still one JSON line
        _print_traceback()
        return Reply.failed(f"agent error: {type(e).__name__}: {e}").to_obj(), 1


def serve(stdin: Any, stdout: Any) -> int:
    """The resident mode (`--serve`): one JSON request per line in, one JSON reply per line out,
    one at a time, until EOF. Each request goes through respond() exactly as a one-shot run does
    (policy, action, audit line); nothing read from the host is kept between requests."""
    for raw in iter(stdin.readline, ""):
        if not raw.strip():
            continue
        reply, _rc = respond(raw)
        try:
            stdout.write(json.dumps(reply, default=str) + "\n")  # ASCII: never a raw newline inside
            stdout.flush()
        except (BrokenPipeError, ValueError, OSError):  # the controller went away
            return 0
    return 0


def _serve_on_private_fds() -> int:
    """Keep the protocol's pipes to ourselves: the commands actions run inherit /dev/null as
    stdin and stdout (in one-shot mode stdin was at EOF already), so none can eat or emit a line."""
    proto_in, proto_out = os.dup(0), os.dup(1)  # os.dup: not inheritable
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    with open(proto_in, encoding="utf-8", errors="replace") as fin, \
            open(proto_out, "w", encoding="utf-8") as fout:
        return serve(fin, fout)


def main(stdin: Any = None, stdout: Any = None, argv: Sequence[str] | None = None) -> int:
    """Entry point: one JSON request on stdin, one JSON reply on stdout (see respond() for the
    exit status); with `--serve`, a request per line until EOF (see serve())."""
    if argv is None:  # streams given: a caller in-process (tests), not the command line
        argv = sys.argv[1:] if stdin is None and stdout is None else ()
    _ensure_path()
    if "--serve" in argv:
        if stdin is None and stdout is None:
            return _serve_on_private_fds()
        return serve(stdin or sys.stdin, stdout or sys.stdout)
    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    reply, rc = respond(stdin.read())
    json.dump(reply, stdout, default=str)
    stdout.write("\n")
    return rc
