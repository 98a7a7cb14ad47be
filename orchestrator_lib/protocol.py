"""The one contract between the controller and the host agent: the request, the reply, the status
vocabulary (from an agent's reply up to the result matrix), the agents and their actions with
their aliases, the HAProxy admin states and the protocol's constants. Nothing else defines them.

Stdlib only and cheap to import: it is shipped to every host with the agent (host/build.py) and
imported by the controller. `enum` and `re` come with `json` anyway; nothing else is imported.
"""
from __future__ import annotations

import json
import re
import time
from enum import Enum

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~2 ms per host run)
if TYPE_CHECKING:
    from typing import Any

#: `agent --serve`: the resident agent, one JSON request per line in, one reply per line out.
SERVE_FLAG = "--serve"
#: The exit status of the agent command on a host that does not have this agent installed.
MISSING_RC = 111
#: The first line on a new resident session: an agent in serve mode answers it at once with a
#: protocol error (no agent named: nothing runs, no audit line); a one-shot agent waits for EOF.
SERVE_PROBE = b'{"probe": "serve mode?"}\n'
#: How long a new session may take to answer the probe before the host counts as unable to serve.
SERVE_PROBE_TIMEOUT = 10.0
#: Seconds a request stays valid after it was sent: a host refuses a request older than that.
DEFAULT_TTL = 3600.0


class Status(str, Enum):
    """What a request did on a host, and what a step did on a host in the result matrix."""
    OK = "ok"                        # already as wanted (or a read, a check that passed)
    CHANGED = "changed"
    WOULD_CHANGE = "would change"    # a dry run: the action would have changed the host
    FAILED = "failed"
    UNREACHABLE = "unreachable"      # no reply (or the outcome is unknown)
    NOT_ATTEMPTED = "not attempted"  # its batch never started
    SKIPPED = "skipped"              # the step did not run (an earlier step failed)
    ROLLED_BACK = "rolled back"      # matrix: a @rollback scenario put the host back as before the run

    def __str__(self) -> str:  # "failed", not "Status.FAILED", in messages and f-strings
        return self.value


#: What an agent may answer.
REPLY_STATUSES = frozenset({Status.OK, Status.CHANGED, Status.WOULD_CHANGE, Status.FAILED})
#: What one host's result of one request can be, in the order tallies list them.
HOST_STATUSES = (Status.OK, Status.CHANGED, Status.WOULD_CHANGE, Status.FAILED, Status.UNREACHABLE,
                 Status.NOT_ATTEMPTED)
#: Success: the action did (or, dry, would do) what was asked.
SUCCESS = frozenset({Status.OK, Status.CHANGED, Status.WOULD_CHANGE})
#: Failures for the failure policy; with NOT_ATTEMPTED, what fails the release gate.
FAILURES = frozenset({Status.FAILED, Status.UNREACHABLE})
BAD = FAILURES | {Status.NOT_ATTEMPTED}

#: agent -> {action: its aliases}. The host answers exactly these; the policy decides on every
#: name of an action (an alias is never a way around a deny).
ACTIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "appmgr": {"deploy": ("upgrade",)},
    "firewall": {"status": (), "block": (), "unblock": ()},
    "haproxy": {"status": (), "disable": (), "enable": (), "drain": ()},
    "health": {"http": (), "command": ("runcommand",), "load": (), "latency": ()},
    "lease": {"status": (), "acquire": (), "renew": (), "release": ()},
    "nats": {"status": (), "install": ()},
    "notify": {"send": ("sendmsg",)},
    "package": {"status": (), "install": (), "update": (), "remove": ("uninstall", "purge")},
    "rpcutil": {"ping": (), "facts": (), "agents": ()},
    "service": {"status": (), "start": (), "stop": (), "restart": (), "reload": (), "enable": (), "disable": ()},
}
AGENTS = tuple(sorted(ACTIONS))
#: the actions that only read a host (agent#action)
READ_ONLY = frozenset({"rpcutil#ping", "rpcutil#facts", "rpcutil#agents", "package#status", "service#status",
                       "firewall#status", "haproxy#status", "health#http", "health#load", "health#latency",
                       "lease#status", "nats#status"})


def action_names(agent: str, action: str) -> tuple[str, ...]:
    """Every name `agent#action` goes by, canonical first; (action,) when it is no such action."""
    for canonical, aliases in ACTIONS.get(agent, {}).items():
        if action == canonical or action in aliases:
            return (canonical, *aliases)
    return (action,)


#: HAProxy admin states, and the one each haproxy action leaves a server in.
READY, DRAIN, MAINT = "ready", "drain", "maint"
ADMIN_AFTER = {"disable": MAINT, "drain": DRAIN, "enable": READY}
#: firewall states of a source address
BLOCKED, UNBLOCKED, PARTLY_BLOCKED = "blocked", "unblocked", "partly blocked"
#: the states (a firewall's, HAProxy's admin) in which a host is out of the load balancer
OUT_OF_LB = frozenset({BLOCKED, MAINT, DRAIN})


class ProtocolError(Exception):
    """The request itself is unusable (not JSON, missing agent/action): the agent exits non-zero."""


class ActionError(Exception):
    """The action failed (bad argument, failed command): the message becomes the reply's message."""


def one_line(text: object, limit: int = 400) -> str:
    """Replies carry one-line messages: tallies and audit logs stay one line per host."""
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[: limit - 3] + "..."


_REQUIRED = object()
_TRUE = {"1", "true", "yes", "y", "on"}
_FALSE = {"0", "false", "no", "n", "off", ""}


class Request:
    """One request: `agent#action` with its arguments, who asked, the host's inventory facts,
    whether it is a dry run (say what would change, change nothing), when it was sent and for how
    many seconds it stays valid. `time` None: stamped when encoded (each host's send). `spec`: the
    deploy spec that asked for it (feature file, scenario, step text and line, the git commit of
    the spec's repository), recorded in both audit logs, never acted on."""

    def __init__(self, agent: str, action: str, args: dict[str, Any] | None = None, reqid: str = "",
                 caller: str = "", facts: dict[str, Any] | None = None, dry_run: bool = False,
                 time: float | None = None, ttl: float = DEFAULT_TTL, spec: dict[str, Any] | None = None) -> None:
        self.agent, self.action = agent, action
        self.args = {} if args is None else args
        self.reqid, self.caller = reqid, caller
        self.facts = {} if facts is None else facts
        self.dry_run, self.time, self.ttl = dry_run, time, ttl
        self.spec = spec

    def __repr__(self) -> str:
        dry = " dry_run" if self.dry_run else ""
        return f"Request({self.label}{dry} args={self.args!r} reqid={self.reqid!r} caller={self.caller!r})"

    @property
    def label(self) -> str:
        return f"{self.agent}#{self.action}"

    def to_obj(self, facts: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"reqid": self.reqid, "caller": self.caller, "agent": self.agent, "action": self.action,
                "args": dict(self.args), "facts": dict(self.facts if facts is None else facts),
                "dry_run": self.dry_run, "time": time.time() if self.time is None else self.time,
                "ttl": self.ttl, **({"spec": dict(self.spec)} if self.spec else {})}

    def encode(self, facts: dict[str, Any] | None = None) -> bytes:
        """One line of JSON (ASCII: never a raw newline inside), stamped now unless `time` is set."""
        return json.dumps(self.to_obj(facts), default=str).encode()

    @classmethod
    def from_obj(cls, obj: object) -> Request:
        if not isinstance(obj, dict):
            raise ProtocolError("request must be a JSON object")
        for key in ("agent", "action"):
            if not isinstance(obj.get(key), str) or not obj[key]:
                raise ProtocolError(f"request needs a non-empty string '{key}'")
        args = {} if obj.get("args") is None else obj["args"]
        facts = {} if obj.get("facts") is None else obj["facts"]
        if not isinstance(args, dict) or not isinstance(facts, dict):
            raise ProtocolError("request 'args' and 'facts' must be JSON objects")
        sent, ttl = obj.get("time"), obj.get("ttl", DEFAULT_TTL)
        if not isinstance(obj.get("dry_run", False), bool) or not all(
                v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in (sent, ttl)):
            raise ProtocolError("request 'dry_run' must be true or false, 'time' and 'ttl' numbers")
        spec = obj.get("spec")
        if spec is not None and (not isinstance(spec, dict) or not all(
                isinstance(v, (str, int)) and not isinstance(v, bool) for v in spec.values())):
            raise ProtocolError("request 'spec' must be a JSON object of strings and numbers")
        return cls(agent=obj["agent"], action=obj["action"], args=args, reqid=str(obj.get("reqid") or ""),
                   caller=str(obj.get("caller") or ""), facts=facts, dry_run=obj.get("dry_run", False),
                   time=sent, ttl=DEFAULT_TTL if ttl is None else ttl, spec=spec or None)

    def expired(self, now: float) -> str:
        """Why the request is no longer valid at `now` ("" while it is)."""
        if self.time is None or self.ttl is None or now <= self.time + self.ttl:
            return ""
        return f"request {self.reqid} expired: sent {now - self.time:.0f} s ago, valid for {self.ttl:g} s"

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
    """What an action did (or, in a dry run, would do): a status of REPLY_STATUSES, whether it
    changed (would change) the host, a one-line message, data, and the state before and after."""

    def __init__(self, status: str, changed: bool = False, message: str = "",
                 data: dict[str, Any] | None = None, before: Any = None, after: Any = None) -> None:
        self.status, self.changed, self.message = Status(status), changed, message
        self.data = {} if data is None else data
        self.before, self.after = before, after

    def __repr__(self) -> str:
        return f"Reply({self.to_obj()!r})"

    @classmethod
    def ok(cls, message: str = "", **kw: Any) -> Reply:
        return cls(Status.OK, False, message, **kw)

    @classmethod
    def done(cls, changed: bool, message: str = "", *, dry_run: bool = False, **kw: Any) -> Reply:
        """The reply of an action that changed the host or not; dry, that would have."""
        status = Status.OK if not changed else Status.WOULD_CHANGE if dry_run else Status.CHANGED
        return cls(status, changed, message, **kw)

    @classmethod
    def failed(cls, message: str, changed: bool = False, **kw: Any) -> Reply:
        return cls(Status.FAILED, changed, message, **kw)

    def to_obj(self) -> dict[str, Any]:
        return {"status": self.status.value, "changed": bool(self.changed), "message": one_line(self.message),
                "data": self.data, "before": self.before, "after": self.after}

    @classmethod
    def from_obj(cls, obj: object) -> Reply | None:
        """A reply as an agent sent it; None when `obj` is not one."""
        if not isinstance(obj, dict) or obj.get("status") not in {s.value for s in REPLY_STATUSES}:
            return None
        data = obj.get("data")
        return cls(obj["status"], bool(obj.get("changed")), str(obj.get("message") or ""),
                   data if isinstance(data, dict) else {}, obj.get("before"), obj.get("after"))

    @classmethod
    def decode(cls, text: str) -> Reply | None:
        try:
            return cls.from_obj(json.loads(text))
        except ValueError:
            return None
