"""Every agent action's arguments: name, type and bounds, in one table beside the protocol's action
names (protocol.ACTIONS). The host checks a request against it before anything is dispatched, and
the controller (Session.call, so `orch` and the deploy steps alike) before any host is contacted:
`orch package 'mywebapp;id' status` is refused at home, in one line, instead of by every host.

Why one table: the agents used to check their arguments themselves, some after side effects
(appmgr with deadline=nan installed and restarted, then failed), some not at all (service `wait`
unbounded, health `interval=0` spinning a core). Here every argument is typed, finite, bounded and
matched whole (fullmatch: a trailing newline is not a name); an argument the action does not take
is an error too. Agents keep converting values (Request.str_arg...), never re-deciding what is valid.

Stdlib only, cheap to import (re and math come with json): shipped to every host with the agent.
"""
from __future__ import annotations

import math
import re

from .protocol import ACTIONS, action_names

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

#: The longest wait any action may be asked for (the controller's own call timeout is shorter).
MAX_SECONDS = 3600.0
_TRUE = {"1", "true", "yes", "y", "on"}
_FALSE = {"0", "false", "no", "n", "off"}

# Names: Debian/RPM package names, systemd/runit units, HAProxy and iptables names. No shell, apt
# glob or option syntax: never a leading '-', never ';', spaces, quotes or control characters.
PACKAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9+._@-]{0,127}")
VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+~:_-]{0,127}")
SERVICE = re.compile(r"[A-Za-z0-9][A-Za-z0-9@._-]{0,127}")
HAPROXY_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,63}")
CHAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,27}")
TAG = re.compile(r"[A-Za-z0-9_.:/@][A-Za-z0-9_.:/@-]{0,199}")
FIELD = re.compile(r"[A-Za-z0-9_.-]{1,64}")
RECIPIENT = re.compile(r"[A-Za-z0-9_.+#@:-]{1,128}")
BACKEND = re.compile(r"iptables|nft")
#: HAProxy's admin socket: the agent talks to it as root, so only sockets under HAProxy's run dir.
SOCKET = re.compile(r"/run/haproxy/[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}\.sock")
URL = re.compile(r"https?://(?:[^\s/?#@]{1,128}@)?[A-Za-z0-9.\[\]:_-]{1,255}(?:[/?#][\x21-\x7e]{0,2000})?")
NAGIOS_STATES = re.compile(r"(?i:warning|critical|unknown)")
RUN_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")
#: nats#install: where `orch` uploaded the bundle (/tmp, its own name), the bundle's sha12, servers.
UPLOAD = re.compile(r"/tmp/orchestrator-nats-[0-9a-f]{12}-[0-9a-f]{8}\.pyz")
SHA12 = re.compile(r"[0-9a-f]{12}")
NATS_URL = re.compile(r"(?:nats|tls)://[A-Za-z0-9.\[\]:_-]{1,255}:[0-9]{1,5}")
COLLECTIVE = re.compile(r"[A-Za-z0-9_-]{1,64}")


class ArgError(ValueError):
    """An argument that no host may be sent: one line naming the action and the argument."""


def _text(limit: int) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ValueError("expected text")
        text = str(value)
        if len(text) > limit or "\x00" in text:
            raise ValueError(f"expected text of at most {limit} characters without NUL")
        return text
    return check


def _name(pattern: re.Pattern[str], what: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str) or pattern.fullmatch(value) is None:
            raise ValueError(f"expected {what}")
        return value
    return check


def _number(lo: float, hi: float, *, above: bool = False, whole: bool = False) -> Callable[[Any], float]:
    """A finite number in [lo, hi] ((lo, hi] with `above`), from JSON or text (`wait=5`)."""
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError("expected a number")
        try:
            number = float(value)
        except ValueError:
            raise ValueError("expected a number") from None
        if not math.isfinite(number) or number < lo or number > hi or (above and number <= lo):
            low = f"more than {lo:g}" if above else f"at least {lo:g}"
            raise ValueError(f"expected a finite number {low} and at most {hi:g}")
        if whole and number != int(number):
            raise ValueError("expected a whole number")
        return number
    return check


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError("expected true or false")


def _names(item: Callable[[Any], str], limit: int = 256) -> Callable[[Any], list[str]]:
    """A JSON list, or a comma/space separated string (MCollective's `servers=a,b,c`)."""
    def check(value: Any) -> list[str]:
        if isinstance(value, str):
            value = [v for v in re.split(r"[,\s]+", value) if v]
        if not isinstance(value, list) or len(value) > limit:
            raise ValueError(f"expected a list of at most {limit} names")
        return [item(v) for v in value]
    return check


def _network(value: Any) -> str:
    """An address or network to block; never everything (0.0.0.0/0, ::/0): that is not a block
    of a source, it locks the host out of its own network."""
    if not isinstance(value, str) or len(value) > 64:
        raise ValueError("expected an IP address or network")
    import ipaddress  # only firewall requests pay for it
    try:
        net = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError("expected an IP address or network") from None
    if net.prefixlen == 0:
        raise ValueError(f"{value} is every address; block a host or a network")
    return value


def _url(value: Any) -> str:
    if not isinstance(value, str) or URL.fullmatch(value) is None:
        raise ValueError("expected an http:// or https:// URL")
    return value


_LOOP = {"tries": _number(1, 10000, whole=True), "deadline": _number(0, MAX_SECONDS, above=True),
         "interval": _number(0.05, 60)}
_PACKAGE, _VERSION = _name(PACKAGE, "a package name"), _name(VERSION, "a version")
_SERVICE, _HAPROXY = _name(SERVICE, "a service name"), _name(HAPROXY_NAME, "an HAProxy name")
_TIMEOUT = _number(0, 600, above=True)
_WAIT = _number(0, 600)
_FIREWALL = {"source": _network, "comment": _name(TAG, "a comment of letters, digits and _.:/@-"),
             "chain": _name(CHAIN, "a chain name (not starting with '-')"), "backend": _name(BACKEND, "iptables or nft")}
_LB = {"backend": _HAPROXY, "servers": _names(_HAPROXY), "server": _names(_HAPROXY),
       "socket": _name(SOCKET, "a socket under /run/haproxy/"), "timeout": _number(0, 60, above=True)}

#: agent -> canonical action -> argument -> check (value -> value, ValueError when bad);
#: REQUIRED names the arguments an action cannot do without.
SCHEMAS: dict[str, dict[str, dict[str, Callable[[Any], Any]]]] = {
    "appmgr": {"deploy": {"app": _PACKAGE, "revision": _VERSION, "service": _SERVICE, "health_url": _url,
                          "health_field": _name(FIELD, "a field name"), "deadline": _number(0, MAX_SECONDS, above=True),
                          "interval": _number(0.05, 60), "downgrade": _bool, "wait": _WAIT}},
    "firewall": {"status": _FIREWALL, "block": _FIREWALL, "unblock": _FIREWALL},
    "lease": {"status": {}, "release": {"run": _name(RUN_ID, "a run id")},
              "acquire": {"run": _name(RUN_ID, "a run id"), "ttl": _number(0, MAX_SECONDS, above=True),
                          "feature": _text(256)},
              "renew": {"run": _name(RUN_ID, "a run id"), "ttl": _number(0, MAX_SECONDS, above=True)}},
    "haproxy": {"status": _LB, "disable": _LB, "enable": _LB,
                "drain": {**_LB, "deadline": _number(0, MAX_SECONDS), "interval": _number(0.05, 60)}},
    "health": {"http": {"url": _url, "expect_status": _number(100, 599, whole=True), "field": _name(FIELD, "a field name"),
                        "expect": _text(1024), "body": _text(1024), "timeout": _TIMEOUT, **_LOOP},
               "command": {"command": _text(4096), "ok_on": _names(_name(NAGIOS_STATES, "WARNING, CRITICAL or UNKNOWN"), 3),
                           "timeout": _TIMEOUT, **_LOOP},
               "load": {"threshold": _number(0, 100000), **_LOOP},
               "latency": {"url": _url, "samples": _number(1, 1000, whole=True), "expect_status": _number(100, 599, whole=True),
                           "timeout": _number(0, 60, above=True), "interval": _number(0, 60)}},
    "notify": {"send": {"recipient": _name(RECIPIENT, "a recipient (letters, digits, _.+#@:-)"),
                        "message": _text(8192), "sender": _text(256), "webhook": _url, "timeout": _TIMEOUT}},
    "package": {"status": {"name": _PACKAGE, "candidate": _bool, "available": _bool, "version": _VERSION},
                "install": {"name": _PACKAGE, "version": _VERSION, "downgrade": _bool, "refresh": _bool},
                "update": {"name": _PACKAGE, "version": _VERSION, "downgrade": _bool, "refresh": _bool},
                "remove": {"name": _PACKAGE, "purge": _bool}},
    "nats": {"status": {},
             "install": {"upload": _name(UPLOAD, "/tmp/orchestrator-nats-SHA-RANDOM.pyz"),
                         "sha": _name(SHA12, "12 hex digits"),
                         "servers": _names(_name(NATS_URL, "nats://HOST:PORT or tls://HOST:PORT"), 16),
                         "collective": _name(COLLECTIVE, "a collective name"),
                         "identity": _name(FIELD, "a host name"), "user": _text(256), "password": _text(256),
                         "tls_ca": _text(65536), "tls_cert": _text(65536), "tls_key": _text(65536)}},
    "rpcutil": {"ping": {}, "facts": {}, "agents": {}},
    "service": {a: {"name": _SERVICE, "wait": _WAIT}
                for a in ("status", "start", "stop", "restart", "reload", "enable", "disable")},
}
REQUIRED: dict[str, tuple[str, ...]] = {
    "appmgr#deploy": ("app", "revision"), "firewall#*": ("source",), "haproxy#*": ("backend",),
    "health#http": ("url",), "health#latency": ("url",), "lease#acquire": ("run",), "lease#renew": ("run",), "lease#release": ("run",), "health#command": ("command",), "notify#send": ("recipient", "message"),
    "nats#install": ("upload", "sha", "servers", "collective"),
    "package#*": ("name",), "service#*": ("name",)}


def check(agent: str, action: str, args: object) -> None:
    """Raise ArgError (one line) unless `args` suit `agent#action` (aliases resolve to their
    action). Unknown agents and actions are not judged here (the host answers those)."""
    canonical = action_names(agent, action)[0]
    schema = SCHEMAS.get(agent, {}).get(canonical)
    if schema is None or canonical not in ACTIONS.get(agent, {}):
        return
    label = f"{agent}#{action}"
    if not isinstance(args, dict):
        raise ArgError(f"{label}: arguments must be a mapping of names to values")
    unknown = sorted(str(k) for k in args if k not in schema)
    if unknown:
        takes = ", ".join(sorted(schema)) or "no arguments"
        raise ArgError(f"{label}: unknown argument {_shown(unknown[0])} (takes: {takes})")
    for name in REQUIRED.get(f"{agent}#{canonical}", REQUIRED.get(f"{agent}#*", ())):
        if args.get(name) in (None, "", []):
            raise ArgError(f"{label}: missing argument '{name}'")
    for name, value in args.items():
        if value is None:
            continue
        try:
            schema[name](value)
        except (ValueError, TypeError) as e:
            raise ArgError(f"{label}: argument '{name}'={_shown(value)}: {e}") from None


def _shown(value: object) -> str:
    """A value in an error message: repr'd (a newline stays visible), and short."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
