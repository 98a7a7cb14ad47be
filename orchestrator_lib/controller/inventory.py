"""Loads an environment file (environments/<name>.yaml) into frozen `Inventory` / `Host` objects.

Inventories are edited by hand and read by CI, so every mistake becomes a single-line
`InventoryError` naming file, line and key path (`environments/x.yaml:12: hosts.web3.port: ...`)
instead of a traceback or, worse, a silently dropped host.
"""
from __future__ import annotations

import difflib
import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from ..protocol import AGENTS
from .errors import InventoryError
from .yaml12 import Yaml12Loader


TOP_KEYS = ("name", "known_hosts", "ssh_config", "defaults", "loadbalancer", "transport", "nats", "lab", "hosts",
            "groups", "facts", "facts_ttl")
LOADBALANCER_KEYS = ("backend", "host")
#: How a host is reached; set per estate (`defaults:`), per group or per host, the nearest winning.
LOGIN_KEYS = ("user", "port", "key", "become", "jump")
DEFAULTS_KEYS = LOGIN_KEYS
HOST_KEYS = ("address", "facts", "classes", "agents", "lab") + LOGIN_KEYS
GROUP_KEYS = ("hosts",) + LOGIN_KEYS
#: `become:` values: how a login user runs the agent as root (none: it logs in as root).
BECOME_METHODS = ("sudo",)
TRANSPORTS = ("ssh", "nats")
NATS_KEYS = ("servers", "collective", "key", "credentials", "nkey", "user", "password_file", "tls", "agent",
             "discovery_timeout", "ttl")
NATS_TLS_KEYS = ("ca", "cert", "key")
NATS_AGENT_KEYS = ("user", "password_file", "tls_cert", "tls_key")
#: Where discovery reads facts and classes: the file, the hosts (one fan-out per run), or the hosts
#: through a cache kept `facts_ttl` seconds (controller/discovery/livefacts.py has the merge rule).
FACT_SOURCES = ("inventory", "live", "cached")
DEFAULT_FACTS_TTL = 300.0

# Names that must survive the discovery languages (-I, -W, -S) unquoted.
_HOST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_FACT_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]*$")
_WORD = re.compile(r"^\S+$")
_DNS_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_JUMP = re.compile(r"^(?:[A-Za-z0-9_.-]+@)?[A-Za-z0-9_.:\[\]-]+$")

KeyPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Host:
    """One target machine. Hashable (by everything but its facts and lab dicts).

    `explicit` names the login settings (LOGIN_KEYS) the inventory set for this host (on it, its
    group or the estate's defaults): those win over ~/.ssh/config, which wins over the defaults
    here (port 22, user root, the ssh-agent's keys, no jump)."""

    name: str
    address: str
    port: int = 22
    user: str = "root"
    key: Path | None = None
    become: str | None = None       # "sudo": log in as `user`, run the agent as root by `sudo -n`
    jump: str | None = None         # a bastion: a host of the estate, or [user@]host[:port] / ssh config alias
    explicit: frozenset[str] = frozenset({"address"})
    facts: Mapping[str, str] = field(default_factory=dict, hash=False)
    classes: tuple[str, ...] = ()
    agents: tuple[str, ...] = AGENTS  # the agents a host offers: by default all the protocol names
    lab: Mapping[str, Any] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class NatsAgentCredentials:
    """`nats.agent`: how the hosts' agents log in to the broker (`orch install nats` ships them)."""

    user: str | None = None
    password_file: Path | None = None  # the password is the file's content (never in the YAML)
    tls_cert: Path | None = None       # client certificate (PEM), signed by nats.tls.ca
    tls_key: Path | None = None


@dataclass(frozen=True)
class NatsSettings:
    """The estate's `nats:` section: where the broker is, how this caller logs in to it (TLS, user
    and password, nkey or .creds, as nats-py takes them) and signs its requests, and how the agents
    log in (`agent`)."""

    servers: tuple[str, ...]
    collective: str = "orch"
    key: Path | None = None           # ed25519 private key (OpenSSH format) that signs requests
    credentials: Path | None = None   # a NATS .creds file, when the broker wants one
    nkey: Path | None = None          # an nkey seed file
    user: str | None = None
    password_file: Path | None = None
    tls_ca: Path | None = None        # the CA that signed the broker's certificate (and the clients')
    tls_cert: Path | None = None      # this caller's client certificate and key (mutual TLS)
    tls_key: Path | None = None
    agent: NatsAgentCredentials = field(default_factory=NatsAgentCredentials)
    discovery_timeout: float = 2.0    # how long a broadcast collects replies
    ttl: float = 60.0                 # how long a request may wait before a host must refuse it


@dataclass(frozen=True)
class Inventory:
    """A whole environment. Mappings keep file order, which is the order discovery reports in."""

    name: str
    path: Path
    hosts: Mapping[str, Host]
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    known_hosts: Path | None = None
    loadbalancer: Mapping[str, str] = field(default_factory=dict)  # {"backend": "app", "host": "lb1"}: the LB's defaults
    lab: Mapping[str, Any] = field(default_factory=dict)  # read by lab/ only
    ssh_config: Path | None = None   # None: ~/.ssh/config
    transport: str = "ssh"
    nats: NatsSettings | None = None
    facts_source: str = "inventory"      # FACT_SOURCES
    facts_ttl: float = DEFAULT_FACTS_TTL  # seconds a cached host reply is used (facts: cached)

    def host(self, name: str) -> Host:
        """The host called `name`; a typo gets a suggestion rather than a KeyError."""
        try:
            return self.hosts[name]
        except KeyError:
            raise InventoryError(
                f"{_display(self.path)}: unknown host '{name}'{_did_you_mean(name, self.hosts)}"
            ) from None

    def group(self, name: str) -> list[Host]:
        """The hosts of group `name`, in the order the group lists them."""
        if name not in self.groups:
            raise InventoryError(
                f"{_display(self.path)}: unknown group '{name}'{_did_you_mean(name, self.groups)}"
            )
        return [self.hosts[member] for member in self.groups[name]]


def default_environments_dir() -> Path:
    """`environments/` under the current directory: commands are run from the repo root."""
    return Path.cwd() / "environments"


def load_inventory(env: str | Path, environments_dir: Path | None = None) -> Inventory:
    """Load and validate an environment given by name (`local`) or by path (`x/y.yaml`)."""
    path = _resolve(env, environments_dir)
    from .ansible_inventory import load_ansible, looks_like_ansible
    if looks_like_ansible(path):
        return _from_ansible(path, load_ansible(path, _display(path)))
    source = _Source(path)
    return _build_inventory(_read_yaml(source), source)


def _from_ansible(path: Path, data: Mapping[str, Any]) -> Inventory:
    """An Ansible inventory's plain data (ansible_inventory.load_ansible) as an Inventory: host names
    the discovery languages accept, facts whose names they accept (others are left out)."""
    hosts = {}
    for fields in data["hosts"]:
        name = fields["name"]
        if not _HOST_NAME.match(name):
            raise InventoryError(f"{_display(path)}: host {name}: invalid host name for the deployer "
                                 f"(letters, digits, '.', '_', '-')")
        facts = {k: v for k, v in fields["facts"].items() if _FACT_NAME.match(k)}
        hosts[name] = Host(**{**fields, "facts": facts})
    return Inventory(name=path.stem, path=path.resolve(), hosts=hosts, groups=dict(data["groups"]),
                     known_hosts=data["known_hosts"], ssh_config=data["ssh_config"])


# --- locating the file -------------------------------------------------------------------------


def _resolve(env: str | Path, environments_dir: Path | None) -> Path:
    text = str(env)
    if not text.strip():
        raise InventoryError("empty environment name: give a name such as 'local' or a .yaml path")
    looks_like_path = isinstance(env, Path) or text.endswith((".yaml", ".yml", ".ini")) or "/" in text
    if looks_like_path:
        path = Path(text).expanduser()
        if not path.exists():
            raise InventoryError(f"{_display(path)}: environment file not found")
        if not path.is_file() and not (path.is_dir() and path.suffix not in (".yaml", ".yml")):  # a dir: Ansible
            raise InventoryError(f"{_display(path)}: not a file")
        return path.resolve()
    directory = Path(environments_dir) if environments_dir is not None else default_environments_dir()
    path = directory / f"{text}.yaml"
    if not path.is_file():
        names = sorted(p.stem for p in directory.glob("*.yaml")) if directory.is_dir() else []
        available = f"available: {', '.join(names)}" if names else f"no environments in {_display(directory)}"
        raise InventoryError(f"{_display(path)}: unknown environment '{text}' ({available})")
    return path.resolve()


def _display(path: Path) -> str:
    """Paths relative to the current directory when possible: shorter and clickable in editors."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# --- reading YAML with line numbers ------------------------------------------------------------


class _Source:
    """The file being loaded plus what the loader learnt about it: the line of each key path and
    the text of each scalar as written (so a fact `1.10` stays '1.10', not '1.1')."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.display = _display(path)
        self.lines: dict[KeyPath, int] = {}
        self.raw: dict[KeyPath, str] = {}

    def line(self, path: KeyPath) -> int:
        while path and path not in self.lines:
            path = path[:-1]
        return self.lines.get(path, 1)

    def error(self, path: KeyPath, message: str, line: int | None = None) -> InventoryError:
        line = line or self.line(path)
        return InventoryError(_one_line(f"{self.display}:{line}: {_format_path(path)}: {message}"))


class _LineLoader(Yaml12Loader):
    """A SafeLoader that records the line of every key path while building plain Python data, and
    refuses duplicate keys: PyYAML would keep the last one and silently lose e.g. a host."""

    def __init__(self, stream: str, source: _Source) -> None:
        super().__init__(stream)
        self.source = source
        self._checked: set[int] = set()  # mapping nodes already checked for duplicates
        self._path: KeyPath = ()

    def load_document(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        self.source.lines[()] = node.start_mark.line + 1
        return self._build(node, (), frozenset())

    def _build(self, node: yaml.Node, path: KeyPath, active: frozenset[int]) -> Any:
        self.count_node(node)
        if isinstance(node, yaml.ScalarNode):
            self.source.raw[path] = node.value
            return self.construct_object(node)
        if node.tag not in ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"):
            # Only plain mappings and lists: SafeLoader would refuse other tags too.
            raise self.source.error(path, f"unsupported YAML tag {node.tag}")
        if id(node) in active:
            raise self.source.error(path, "recursive YAML alias")
        active = active | {id(node)}
        if isinstance(node, yaml.SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                self.source.lines[path + (index,)] = item.start_mark.line + 1
                items.append(self._build(item, path + (index,), active))
            return items
        self._path = path
        self.flatten_mapping(node)  # resolves `<<: *anchor` merges; own keys come last and win
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = self._key(key_node, path)
            self.source.lines[path + (key,)] = key_node.start_mark.line + 1
            result[key] = self._build(value_node, path + (key,), active)
        return result

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        # Check before merging: afterwards a merged key and its override look like duplicates.
        if id(node) not in self._checked:
            self._checked.add(id(node))
            self._check_duplicates(node, self._path)
        super().flatten_mapping(node)

    def _check_duplicates(self, node: yaml.MappingNode, path: KeyPath) -> None:
        first_line: dict[str, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                continue
            key, line = key_node.value, key_node.start_mark.line + 1
            if key in first_line:
                what = f"duplicate host '{key}'" if path == ("hosts",) else f"duplicate key '{key}'"
                message = f"{what}, first defined at line {first_line[key]}"
                raise self.source.error(path + (key,), message, line)
            first_line[key] = line

    def _key(self, key_node: yaml.Node, path: KeyPath) -> str:
        if not isinstance(key_node, yaml.ScalarNode):
            line = key_node.start_mark.line + 1
            raise self.source.error(path, "mapping keys must be plain names, not lists or mappings", line)
        return key_node.value  # as written: `yes:` stays 'yes', `01:` stays '01'


def _read_yaml(source: _Source) -> Any:
    try:
        text = source.path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InventoryError(f"{source.display}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise InventoryError(f"{source.display}: cannot read: {exc.strerror or exc}") from None
    try:
        loader = _LineLoader(text, source)
    except yaml.reader.ReaderError as exc:  # the reader refuses NUL and other control characters up front
        line = text.count("\n", 0, exc.position) + 1
        raise InventoryError(f"{source.display}:{line}: invalid YAML: control character "
                             f"#x{exc.character:04x} is not allowed (is this a binary file?)") from None
    try:
        return loader.load_document()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        detail = "; ".join(part for part in (exc.context, exc.problem) if part) or "syntax error"
        raise InventoryError(_one_line(f"{source.display}{line}: invalid YAML: {detail}")) from None
    except yaml.YAMLError as exc:
        raise InventoryError(_one_line(f"{source.display}: invalid YAML: {exc}")) from None
    finally:
        loader.dispose()


# --- validation --------------------------------------------------------------------------------


def _build_inventory(data: Any, src: _Source) -> Inventory:
    if data is None:
        raise src.error((), "the file is empty; expected a mapping with at least 'hosts'")
    top = _mapping(src, (), data, TOP_KEYS, "a mapping with keys " + ", ".join(TOP_KEYS))
    if "hosts" not in top:
        raise src.error((), "missing key 'hosts'")

    name = _string(src, ("name",), top["name"]) if "name" in top else src.path.stem
    known_hosts = _optional_path(src, ("known_hosts",), top.get("known_hosts"))
    ssh_config = _optional_path(src, ("ssh_config",), top.get("ssh_config"))
    lab = _mapping(src, ("lab",), top.get("lab"), None, "a mapping")
    balancer = _mapping(src, ("loadbalancer",), top.get("loadbalancer"), LOADBALANCER_KEYS, "a mapping")
    loadbalancer = {k: _string(src, ("loadbalancer", k), v) for k, v in balancer.items()}

    defaults = _login(src, ("defaults",), _mapping(src, ("defaults",), top.get("defaults"), DEFAULTS_KEYS, "a mapping"))
    host_specs = _mapping(src, ("hosts",), top["hosts"], None, "a mapping of host names to specs")

    groups: dict[str, tuple[str, ...]] = {}
    from_group: dict[str, tuple[str, dict[str, Any]]] = {}   # host -> (group, login settings it sets)
    group_specs = _mapping(src, ("groups",), top.get("groups"), None, "a mapping of group names to lists")
    for group, spec in group_specs.items():
        path: KeyPath = ("groups", group)
        members, login = spec, {}
        if isinstance(spec, dict):
            spec = _mapping(src, path, spec, GROUP_KEYS, "a list of hosts, or a mapping with 'hosts'")
            members, path = spec.get("hosts"), path + ("hosts",)
            login = _login(src, ("groups", group), spec)
        groups[group] = _group(src, path, members, host_specs)
        for member in groups[group]:
            if not login:
                continue
            if member in from_group:
                other, theirs = from_group[member]
                clash = sorted(set(theirs) & set(login))
                if clash:
                    raise src.error(("groups", group, clash[0]), f"host '{member}' is also in group '{other}', "
                                    f"which sets '{clash[0]}' too: set it on the host instead")
                login = {**theirs, **login}
            from_group[member] = (group, login)

    hosts = {}
    for name_, spec in host_specs.items():
        inherited = {**defaults, **from_group.get(name_, ("", {}))[1]}
        hosts[name_] = _host(src, name_, spec, inherited)
    if "host" in loadbalancer and loadbalancer["host"] not in hosts:
        lb = loadbalancer["host"]
        raise src.error(("loadbalancer", "host"), f"unknown host '{lb}'{_did_you_mean(lb, hosts)}")
    for host in hosts.values():
        if host.jump in hosts and hosts[host.jump].jump == host.name:
            raise src.error(("hosts", host.name), f"jump: '{host.jump}' jumps back through '{host.name}'")

    facts_source = _string(src, ("facts",), top["facts"]) if "facts" in top else "inventory"
    if facts_source not in FACT_SOURCES:
        raise src.error(("facts",), f"expected one of {', '.join(FACT_SOURCES)}, got {facts_source!r}")
    facts_ttl = _seconds(src, ("facts_ttl",), top["facts_ttl"]) if "facts_ttl" in top else DEFAULT_FACTS_TTL
    transport = top.get("transport", "ssh")
    if transport not in TRANSPORTS:
        raise src.error(("transport",), f"expected one of {', '.join(TRANSPORTS)}, got {_describe(transport)}")
    nats = _nats(src, top.get("nats"), defaults.get("key")) if top.get("nats") is not None else None
    if transport == "nats" and nats is None:
        raise src.error(("transport",), "transport nats needs a 'nats:' section with the broker's servers")
    return Inventory(name=name, path=src.path, hosts=hosts, groups=groups, known_hosts=known_hosts,
                     loadbalancer=loadbalancer, lab=lab, transport=transport, nats=nats,
                     ssh_config=ssh_config, facts_source=facts_source, facts_ttl=facts_ttl)


def _nats(src: _Source, value: Any, default_key: Path | None) -> NatsSettings:
    """`nats: {servers: [nats://10.231.0.1:4222], collective: orch, key: ..., ttl: 60}`."""
    spec = _mapping(src, ("nats",), value, NATS_KEYS, "a mapping")
    servers = spec.get("servers")
    if isinstance(servers, str):
        servers = [servers]
    if not isinstance(servers, list) or not servers:
        raise src.error(("nats", "servers"), f"expected a list of nats:// URLs, got {_describe(servers)}")
    for index, url in enumerate(servers):
        if not isinstance(url, str) or not re.match(r"^(nats|tls)://[^\s/]+:\d+$", url):
            raise src.error(("nats", "servers", index), f"expected nats://HOST:PORT, got {_describe(url)}")
    numbers = {}
    for name, default in (("discovery_timeout", 2.0), ("ttl", 60.0)):
        number = spec.get(name, default)
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not 0 < number <= 3600:
            raise src.error(("nats", name), f"expected seconds between 0 and 3600, got {_describe(number)}")
        numbers[name] = float(number)
    collective = _string(src, ("nats", "collective"), spec["collective"]) if "collective" in spec else "orch"
    if not re.match(r"^[A-Za-z0-9_-]+$", collective):
        raise src.error(("nats", "collective"), f"expected letters, digits, '_' or '-', got {_describe(collective)}")
    key = _optional_path(src, ("nats", "key"), spec["key"]) if "key" in spec else default_key
    tls = _mapping(src, ("nats", "tls"), spec.get("tls"), NATS_TLS_KEYS, "a mapping (ca, cert, key)")
    agent = _mapping(src, ("nats", "agent"), spec.get("agent"), NATS_AGENT_KEYS, "a mapping")
    if bool(tls.get("cert")) != bool(tls.get("key")):
        raise src.error(("nats", "tls"), "a client certificate needs its key and a key its certificate (cert and key)")
    if bool(agent.get("tls_cert")) != bool(agent.get("tls_key")):
        raise src.error(("nats", "agent"), "tls_cert and tls_key go together")
    users = {}
    for where, mapping in ((("nats", "user"), spec), (("nats", "agent", "user"), agent)):
        users[where] = _string(src, where, mapping["user"]) if mapping.get("user") is not None else None
    return NatsSettings(servers=tuple(servers), collective=collective, key=key,
                        credentials=_optional_path(src, ("nats", "credentials"), spec.get("credentials")),
                        nkey=_optional_path(src, ("nats", "nkey"), spec.get("nkey")),
                        user=users[("nats", "user")],
                        password_file=_optional_path(src, ("nats", "password_file"), spec.get("password_file")),
                        tls_ca=_optional_path(src, ("nats", "tls", "ca"), tls.get("ca")),
                        tls_cert=_optional_path(src, ("nats", "tls", "cert"), tls.get("cert")),
                        tls_key=_optional_path(src, ("nats", "tls", "key"), tls.get("key")),
                        agent=NatsAgentCredentials(
                            user=users[("nats", "agent", "user")],
                            password_file=_optional_path(src, ("nats", "agent", "password_file"), agent.get("password_file")),
                            tls_cert=_optional_path(src, ("nats", "agent", "tls_cert"), agent.get("tls_cert")),
                            tls_key=_optional_path(src, ("nats", "agent", "tls_key"), agent.get("tls_key"))),
                        **numbers)


def _login(src: _Source, path: KeyPath, spec: Mapping[str, Any]) -> dict[str, Any]:
    """The login settings (LOGIN_KEYS) a defaults, group or host mapping sets, validated."""
    found: dict[str, Any] = {}
    if "user" in spec:
        found["user"] = _string(src, path + ("user",), spec["user"])
    if "port" in spec:
        found["port"] = _port(src, path + ("port",), spec["port"])
    if "key" in spec:
        found["key"] = _optional_path(src, path + ("key",), spec["key"])
    if "become" in spec:
        value = spec["become"]
        if value is None or value is False:
            found["become"] = None
        elif value not in BECOME_METHODS:
            raise src.error(path + ("become",), f"expected {' or '.join(BECOME_METHODS)} (or false), got {_describe(value)}")
        else:
            found["become"] = value
    if "jump" in spec:
        value = spec["jump"]
        found["jump"] = None if value is None else _string(src, path + ("jump",), value)
        if found["jump"] is not None and not _JUMP.match(found["jump"]):
            raise src.error(path + ("jump",), f"expected a host name or [user@]host[:port], got {_describe(value)}")
    return found


def _host(src: _Source, name: str, spec: Any, inherited: Mapping[str, Any]) -> Host:
    path: KeyPath = ("hosts", name)
    if not _HOST_NAME.match(name):
        raise src.error(path, "invalid host name: use letters, digits, '.', '_' and '-' (first a letter or digit)")
    if not isinstance(spec, dict):
        raise src.error(path, f"expected a mapping with at least 'address', got {_describe(spec)}")
    spec = _mapping(src, path, spec, HOST_KEYS, "a mapping")
    if "address" not in spec:
        raise src.error(path, "missing key 'address'")
    login = {**inherited, **_login(src, path, spec)}
    if login.get("jump") == name:
        raise src.error(path + ("jump",), "a host cannot jump through itself")
    return Host(
        name=name,
        address=_address(src, path + ("address",), spec["address"]),
        port=login.get("port", 22),
        user=login.get("user", "root"),
        key=login.get("key"),
        become=login.get("become"),
        jump=login.get("jump"),
        explicit=frozenset(login) | {"address"},
        facts=_facts(src, path + ("facts",), spec.get("facts")),
        classes=_words(src, path + ("classes",), spec.get("classes")),
        agents=_agents(src, path + ("agents",), spec["agents"]) if "agents" in spec else AGENTS,
        lab=_mapping(src, path + ("lab",), spec.get("lab"), None, "a mapping"),
    )


def _agents(src: _Source, path: KeyPath, value: Any) -> tuple[str, ...]:
    """Agent names the project ships: a typo would silently drop the host from `-A` filters."""
    names = _words(src, path, value)
    for index, name in enumerate(value or ()):
        if name not in AGENTS:
            hint = _did_you_mean(name, AGENTS) or f" (agents: {', '.join(AGENTS)})"
            raise src.error(path + (index,), f"unknown agent '{name}'{hint}")
    return names


def _group(src: _Source, path: KeyPath, members: Any, hosts: Mapping[str, Any]) -> tuple[str, ...]:
    names = _words(src, path, members)  # type checks; drops repeats, which we would rather report
    for index, member in enumerate(members or ()):
        if member not in hosts:
            raise src.error(path + (index,), f"unknown host '{member}'{_did_you_mean(member, hosts)}")
        if member in members[:index]:
            raise src.error(path + (index,), f"host '{member}' is listed twice")
    return names


def _mapping(src: _Source, path: KeyPath, value: Any, allowed: Iterable[str] | None, expected: str) -> dict:
    """A mapping (None counts as empty); with `allowed`, an unknown key names the closest valid one."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise src.error(path, f"expected {expected}, got {_describe(value)}")
    if allowed is not None:
        allowed = tuple(allowed)
        for key in value:
            if key not in allowed:
                hint = _did_you_mean(key, allowed) or f" (valid keys: {', '.join(allowed)})"
                raise src.error(path + (key,), f"unknown key '{key}'{hint}")
    return value


def _string(src: _Source, path: KeyPath, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise src.error(path, f"expected a non-empty string, got {_describe(value)}")
    return value


def _port(src: _Source, path: KeyPath, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):  # bool is an int subclass
        raise src.error(path, f"expected an integer, got {_describe(value)}")
    if not 1 <= value <= 65535:
        raise src.error(path, f"expected a port between 1 and 65535, got {value}")
    return value


def _seconds(src: _Source, path: KeyPath, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        raise src.error(path, f"expected a positive number of seconds, got {_describe(value)}")
    return float(value)


def _optional_path(src: _Source, path: KeyPath, value: Any) -> Path | None:
    """A file path relative to the YAML file (or to the home directory, `~/...`), made absolute;
    null means 'none'."""
    if value is None:
        return None
    return (src.path.parent / Path(_string(src, path, value)).expanduser()).resolve()


def _address(src: _Source, path: KeyPath, value: Any) -> str:
    if isinstance(value, str) and _is_address(value):
        return value
    raise src.error(path, f"expected an IP address or DNS name, got {_describe(value)}")


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        pass
    name = text[:-1] if text.endswith(".") else text
    if not name or len(name) > 253:
        return False
    labels = name.split(".")
    # An all-digit last label means a mistyped IP (10.0.0.300), not a host name.
    return all(_DNS_LABEL.match(label) for label in labels) and not labels[-1].isdigit()


def _facts(src: _Source, path: KeyPath, value: Any) -> dict[str, str]:
    facts = _mapping(src, path, value, None, "a mapping of fact names to values")
    result = {}
    for name, fact in facts.items():
        if not _FACT_NAME.match(name):
            raise src.error(path + (name,), "invalid fact name: use letters, digits, '_', '.', ':' and '-'")
        if isinstance(fact, bool):
            result[name] = "true" if fact else "false"
        elif fact is None or isinstance(fact, (dict, list)):
            raise src.error(path + (name,), f"expected a string, number or boolean, got {_describe(fact)}")
        else:
            result[name] = src.raw.get(path + (name,), str(fact))
    return result


def _words(src: _Source, path: KeyPath, value: Any) -> tuple[str, ...]:
    """A list of non-empty strings without spaces (class, agent and host names)."""
    if value is None:
        return ()
    if isinstance(value, str):
        raise src.error(path, f"expected a list of strings, got {_describe(value)} (write [{value}])")
    if not isinstance(value, list):
        raise src.error(path, f"expected a list of strings, got {_describe(value)}")
    for index, item in enumerate(value):
        if not isinstance(item, str) or not _WORD.match(item):
            raise src.error(path + (index,), f"expected a string without spaces, got {_describe(item)}")
    return tuple(dict.fromkeys(value))  # drop repeats, keep order


# --- message helpers ---------------------------------------------------------------------------


def _format_path(path: KeyPath) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "top level"


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    return str(value)


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    """` (did you mean 'x'?)` for the closest of `choices`, or "": the hint every unknown-name
    error carries, here and in discovery."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _one_line(text: str) -> str:
    return " ".join(text.split("\n")).replace("\r", " ")
