"""The agent runtime: request/reply types, the action registry, and `System`, the one door
through which actions reach the host (commands, files, clock). Tests swap `System` for a fake,
so every backend is exercised without touching the machine the tests run on.

Host-side code: Python 3.11 standard library only.
"""
from __future__ import annotations

import contextlib
import importlib
import json
import os
import pkgutil
import re
import shlex
import shutil
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

#: Modules of this package that are machinery, not agents.
INFRASTRUCTURE = frozenset({"core", "audit", "policy", "build", "__main__"})
AGENT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
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

@dataclass(frozen=True)
class CmdResult:
    rc: int
    stdout: str
    stderr: str

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


Command = Sequence[str] | str


class System:
    """The real host. Every effect an action has goes through one of these methods."""

    def run(self, cmd: Command, input: str | None = None, timeout: float = 60.0,
            env: dict[str, str] | None = None) -> CmdResult:
        argv = ["/bin/sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        full_env = {**os.environ, **env} if env else None
        try:
            p = subprocess.run(argv, input=input, capture_output=True, timeout=timeout,
                               env=full_env, encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return CmdResult(127, "", f"{argv[0]}: command not found")
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
            return CmdResult(124, out, f"timed out after {timeout:g} s: {shlex.join(argv)}")
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
        return shutil.which(name)

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


@contextlib.contextmanager
def use_system(system: System) -> Iterator[System]:
    """Run actions against `system` (a fake in tests) for the duration of the block."""
    global SYSTEM
    saved, SYSTEM = SYSTEM, system
    try:
        yield system
    finally:
        SYSTEM = saved


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


@dataclass
class Request:
    agent: str
    action: str
    args: dict[str, Any] = field(default_factory=dict)
    reqid: str = ""
    caller: str = ""
    facts: dict[str, Any] = field(default_factory=dict)

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


@dataclass
class Reply:
    status: str
    changed: bool = False
    message: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    before: Any = None
    after: Any = None

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

ActionFn = Callable[[Request], Reply]
REGISTRY: dict[str, "Agent"] = {}


class Agent:
    """One agent = one module of this package that creates `agent = Agent(__name__)`."""

    def __init__(self, module: str, doc: str = "") -> None:
        self.name = module.rsplit(".", 1)[-1]
        self.doc = doc
        self.actions: dict[str, ActionFn] = {}
        REGISTRY[self.name] = self

    def action(self, fn: ActionFn | None = None, *, aliases: Sequence[str] = ()) -> Any:
        def register(f: ActionFn) -> ActionFn:
            for name in (f.__name__.rstrip("_"), *aliases):
                self.actions[name] = f
            return f
        return register(fn) if fn is not None else register


def load_agent(name: str) -> Agent | None:
    """Import the module named after the agent (lazily: a request pays only for its agent)."""
    if name in REGISTRY:
        return REGISTRY[name]
    if not AGENT_NAME.match(name) or name in INFRASTRUCTURE:
        return None
    full = f"{__package__}.{name}"
    try:
        importlib.import_module(full)
    except ModuleNotFoundError as e:
        if e.name == full:
            return None
        raise
    return REGISTRY.get(name)


def agent_names() -> list[str]:
    """Every agent this copy of the package ships (works from a zipapp too)."""
    package = sys.modules[__package__]
    names = [m.name for m in pkgutil.iter_modules(package.__path__)
             if not m.ispkg and m.name not in INFRASTRUCTURE and not m.name.startswith("_")]
    return sorted(n for n in names if load_agent(n) is not None)


def dispatch(req: Request) -> Reply:
    """Run one action. Failures come back as a failed Reply; only the protocol raises."""
    agent = load_agent(req.agent)
    if agent is None:
        return Reply.failed(f"unknown agent '{req.agent}' (this host has: {', '.join(agent_names())})")
    fn = agent.actions.get(req.action)
    if fn is None:
        return Reply.failed(f"unknown action {req.label} (known: {', '.join(sorted(agent.actions))})")
    try:
        reply = fn(req)
    except ActionError as e:
        return Reply.failed(str(e))
    except Exception as e:  # an agent bug must still produce a reply, and a traceback on stderr
        traceback.print_exc(file=sys.stderr)
        return Reply.failed(f"{req.label}: {type(e).__name__}: {e}")
    if not isinstance(reply, Reply) or reply.status not in STATUSES:
        return Reply.failed(f"{req.label}: agent returned an invalid reply")
    return reply


def handle(obj: object, env: dict[str, str] | None = None) -> Reply:
    """Policy, then the action, then the audit line: the whole life of one request."""
    from . import audit, policy
    env = dict(os.environ) if env is None else env
    req = Request.from_obj(obj)
    identity = policy.identify(env)
    denial = policy.check(req.agent, req.action, identity)
    started = SYSTEM.monotonic()
    reply = Reply.failed(denial) if denial else dispatch(req)
    audit.record(req, reply, identity, duration=SYSTEM.monotonic() - started, env=env)
    return reply


def _ensure_path() -> None:
    parts = os.environ.get("PATH", "").split(":")
    os.environ["PATH"] = ":".join([p for p in parts if p] + [p for p in STANDARD_PATH if p not in parts])


def main(stdin: Any = None, stdout: Any = None) -> int:
    """Entry point: one JSON request on stdin, one JSON reply on stdout.
    Exit 0 whenever the action ran (even `failed`); 2 for a bad request, 1 for an agent bug."""
    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    _ensure_path()
    try:
        raw = stdin.read()
        try:
            obj = json.loads(raw)
        except ValueError as e:
            raise ProtocolError(f"request is not JSON: {e}") from None
        reply = handle(obj)
    except ProtocolError as e:
        json.dump(Reply.failed(f"protocol error: {e}").to_obj(), stdout)
        stdout.write("\n")
        return 2
    except Exception as e:  # a bug outside any action (policy, audit): still one JSON line
        traceback.print_exc(file=sys.stderr)
        json.dump(Reply.failed(f"agent error: {type(e).__name__}: {e}").to_obj(), stdout)
        stdout.write("\n")
        return 1
    json.dump(reply.to_obj(), stdout, default=str)
    stdout.write("\n")
    return 0
