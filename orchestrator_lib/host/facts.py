"""What a host says about itself: built-in facts read from the kernel and os-release, custom facts
from `/etc/orchestrator/facts.d/*.json|*.yaml` (the role of MCollective's facts.yaml and Ansible's
local facts) and classes from a classes file (Puppet's classes.txt: one class per line).

Stdlib only (shipped to hosts). Custom facts are flat `name: value` pairs of scalars, as filters
compare them (values become strings). JSON files hold one object. YAML files use a documented
subset, parsed here because hosts have no PyYAML: `name: value` lines, `#` comments, blank lines,
an optional `---` first line, values plain or quoted ('...' or "..."); no nesting, lists, flow
collections, anchors or multi-line values. Anything else is a FactsError naming the file and line:
a malformed file is reported, never half-read.

Where the files are can be set in `/etc/orchestrator/rpcutil.json`:
`{"facts_dir": "...", "classes_file": "/opt/puppetlabs/puppet/cache/state/classes.txt"}`.
"""
from __future__ import annotations

import json
import os
import re

CONFIG = "/etc/orchestrator/rpcutil.json"
FACTS_DIR = "/etc/orchestrator/facts.d"
CLASSES_FILE = "/etc/orchestrator/classes.txt"
BUILTIN = "builtin"  # the source named for built-in facts
FACT_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]*$")  # as the inventory's (discovery languages)
CLASS_NAME = re.compile(r"^\S+$")
_YAML_LINE = re.compile(r"^([^\s:#'\"][^:]*?):(?:\s+(.*?))?\s*$")
_YAML_SPECIAL = tuple("[{&*!|>%@`")


class FactsError(Exception):
    """A facts or classes file that cannot be read as documented: `path:line: why`."""


def os_release(text: str | None) -> dict[str, str]:
    """/etc/os-release as a dict (the format is shell assignments, values maybe quoted)."""
    out: dict[str, str] = {}
    for line in (text or "").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[key.strip()] = value
    return out


def os_family(release: dict[str, str]) -> str:
    """Facter's os.family: Debian, RedHat, Suse, ... from os-release ID and ID_LIKE."""
    ids = [release.get("ID", "")] + release.get("ID_LIKE", "").split()
    for family, members in (("RedHat", {"rhel", "fedora", "centos", "rocky", "almalinux", "amzn", "ol"}),
                            ("Debian", {"debian", "ubuntu"}), ("Suse", {"suse", "sles", "opensuse"})):
        if members & set(ids):
            return family
    import platform  # here: importing rpcutil for a ping must stay cheap (test_agents_build)
    return platform.system()


def addresses(fib_trie: str | None, if_inet6: str | None) -> list[str]:
    """The host's own addresses but loopback: IPv4 from /proc/net/fib_trie (LOCAL /32 entries),
    IPv6 from /proc/net/if_inet6 (link-local left out)."""
    found: list[str] = []
    last = ""
    for line in (fib_trie or "").splitlines():
        text = line.strip()
        if text.startswith("|--") or text.startswith("+--"):
            last = text.split()[1]
        elif text.startswith("/32 host LOCAL") and last and not last.startswith("127.") and last not in found:
            found.append(last)
    for line in (if_inet6 or "").splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[5] != "lo" and not fields[0].startswith("fe80"):
            raw = fields[0]
            found.append(str(_ipv6(raw)))
    return found


def _ipv6(raw: str) -> str:
    import ipaddress
    return str(ipaddress.IPv6Address(bytes.fromhex(raw)))


def memory_mb(meminfo: str | None) -> str:
    match = re.search(r"^MemTotal:\s+(\d+) kB", meminfo or "", re.M)
    return str(int(match.group(1)) // 1024) if match else ""


def builtin(read) -> dict[str, str]:
    """Built-in facts, strings like every fact. `read(path)` returns a file's text or None."""
    import platform
    import socket
    rel = os_release(read("/etc/os-release") or read("/usr/lib/os-release"))
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 0
    return {
        "os": rel.get("ID", platform.system().lower()),
        "os_family": os_family(rel),
        "os_like": rel.get("ID_LIKE", ""),
        "os_name": rel.get("PRETTY_NAME", ""),
        "distribution": rel.get("NAME", ""),
        "release": rel.get("VERSION_ID", ""),
        "codename": rel.get("VERSION_CODENAME", ""),
        "hostname": socket.gethostname(),
        "fqdn": socket.getfqdn(),
        "kernel": platform.system(),
        "kernelrelease": os.uname().release,
        "architecture": platform.machine(),
        "ipaddress": ",".join(addresses(read("/proc/net/fib_trie"), read("/proc/net/if_inet6"))),
        "processorcount": str(cpus),
        "memorysize_mb": memory_mb(read("/proc/meminfo")),
        "python": platform.python_version(),
    }


def _scalar(value: object, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise FactsError(f"{where}: expected a string, number or boolean, got {type(value).__name__} "
                     f"(custom facts are flat name: value pairs)")


def _name(name: str, where: str) -> str:
    if not FACT_NAME.match(name):
        raise FactsError(f"{where}: invalid fact name {name!r} (letters, digits, '_', '.', ':', '-')")
    return name


def parse_json(path: str, text: str) -> dict[str, str]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        line = getattr(exc, "lineno", 1)
        raise FactsError(f"{path}:{line}: invalid JSON: {getattr(exc, 'msg', exc)}") from None
    if not isinstance(data, dict):
        raise FactsError(f"{path}:1: expected a JSON object of fact names to values")
    lines = text.splitlines()

    def line_of(key: str) -> int:
        return next((i for i, ln in enumerate(lines, 1) if json.dumps(key) in ln), 1)

    return {_name(k, f"{path}:{line_of(k)}"): _scalar(v, f"{path}:{line_of(k)}: {k}") for k, v in data.items()}


def _yaml_value(raw: str, where: str) -> str:
    if not raw:
        raise FactsError(f"{where}: no value (nested mappings and lists are not supported: flat name: value only)")
    if raw[0] in "'\"":
        quote = raw[0]
        if len(raw) < 2 or raw[-1] != quote:
            raise FactsError(f"{where}: unterminated {quote}-quoted value")
        inner = raw[1:-1]
        if quote == "'":
            if re.search(r"(?<!')'(?!')", inner.replace("''", "")):
                raise FactsError(f"{where}: a ' inside a '-quoted value must be doubled")
            return inner.replace("''", "'")
        try:
            return json.loads(raw)
        except ValueError:
            raise FactsError(f"{where}: invalid \"-quoted value") from None
    value = re.split(r"\s+#", raw, maxsplit=1)[0].strip()
    if value.startswith(_YAML_SPECIAL) or value.startswith("- "):
        raise FactsError(f"{where}: unsupported YAML value {value!r} (flat name: value only)")
    return value


def parse_yaml(path: str, text: str) -> dict[str, str]:
    """The documented YAML subset (module doc). A repeated name is an error, as in the inventory."""
    facts: dict[str, str] = {}
    first: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        where = f"{path}:{number}"
        if not line.strip() or line.lstrip().startswith("#") or (line.rstrip() == "---" and not facts):
            continue
        if line[0] in " \t":
            raise FactsError(f"{where}: indented line (nested mappings and lists are not supported: flat name: value only)")
        match = _YAML_LINE.match(line)
        if not match:
            raise FactsError(f"{where}: expected 'name: value'")
        name = _name(match.group(1).strip(), where)
        if name in first:
            raise FactsError(f"{where}: duplicate fact '{name}', first defined at line {first[name]}")
        first[name] = number
        facts[name] = _yaml_value((match.group(2) or "").strip(), f"{where}: {name}")
    return facts


def custom(directory: str) -> tuple[dict[str, str], dict[str, str]]:
    """(facts, {name: file}) from the directory's *.json, *.yaml and *.yml, in name order; a later
    file overrides an earlier one. A missing directory means no custom facts."""
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return {}, {}
    except OSError as exc:
        raise FactsError(f"{directory}: cannot list: {exc.strerror}") from None
    facts: dict[str, str] = {}
    sources: dict[str, str] = {}
    for name in names:
        path = os.path.join(directory, name)
        parser = parse_json if name.endswith(".json") else parse_yaml if name.endswith((".yaml", ".yml")) else None
        if parser is None or not os.path.isfile(path):
            continue
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except UnicodeDecodeError:
            raise FactsError(f"{path}:1: not UTF-8 text") from None
        except OSError as exc:
            raise FactsError(f"{path}: cannot read: {exc.strerror}") from None
        for fact, value in parser(path, text).items():
            facts[fact] = value
            sources[fact] = path
    return facts, sources


def classes(path: str) -> list[str] | None:
    """The classes file's classes (one per line, blank lines and `#` comments skipped); None when
    the host has no such file (then the inventory's classes stand)."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise FactsError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    found: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        name = line.strip()
        if not name or name.startswith("#"):
            continue
        if not CLASS_NAME.match(name):
            raise FactsError(f"{path}:{number}: expected one class name per line, got {name!r}")
        if name not in found:
            found.append(name)
    return found


def config(read) -> dict[str, str]:
    """Where this host keeps its facts and classes (CONFIG, optional)."""
    text = read(CONFIG)
    settings = {"facts_dir": FACTS_DIR, "classes_file": CLASSES_FILE}
    if text is None:
        return settings
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise FactsError(f"{CONFIG}:{getattr(exc, 'lineno', 1)}: invalid JSON: {getattr(exc, 'msg', exc)}") from None
    if not isinstance(data, dict) or set(data) - set(settings) or not all(isinstance(v, str) for v in data.values()):
        raise FactsError(f"{CONFIG}:1: expected an object with string keys {', '.join(settings)}")
    return {**settings, **data}
