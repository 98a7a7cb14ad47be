"""An Ansible inventory (INI, YAML, or a directory of them) read by ansible-core's own inventory
loader (the optional extra `orchestrator-lib[ansible]`), as an `Inventory`.

Groups become classes (every group a host is in, `all` and `ungrouped` aside) and groups; host
and group vars (with Ansible's own precedence) become facts when they are plain values;
ansible_host, ansible_user, ansible_port, ansible_ssh_private_key_file and ansible_become map to
the host's address, user, port, key and `become: sudo`; in ansible_ssh_common_args, `-o
ProxyJump=` / `-J` become the jump host, `-o UserKnownHostsFile=` the known_hosts file and `-F`
the ssh config. What the inventory does not set is left to ssh config and the defaults, as for
an estate file (inventory.Host.explicit).

Below the inventory layer: it returns plain data, which inventory.load_inventory validates and
turns into Host / Inventory like any estate."""
from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

from .errors import InventoryError

EXTRA_HINT = "pip install 'orchestrator-lib[ansible]' (or: pip install ansible-core)"
INI_SUFFIXES = (".ini", ".cfg", "")
YAML_SUFFIXES = (".yml", ".yaml")
#: ansible's own bookkeeping variables: never facts
_SKIP_VARS = re.compile(r"^(ansible_|inventory_|group_names$|groups$|omit$|playbook_dir$)")


def looks_like_ansible(path: Path) -> bool:
    """A directory, an .ini file (or one without suffix, like `hosts`), or a YAML file in Ansible's
    layout (top-level groups with hosts/children/vars) rather than an estate file."""
    if path.is_dir():
        return True
    if path.suffix in (".ini", ".cfg") or (path.suffix == "" and path.is_file()):
        return True
    if path.suffix not in YAML_SUFFIXES:
        return False
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    # By the top-level keys alone (no YAML parse here: the estate loader guards its own parse):
    # an estate always has `hosts:`; Ansible's layout has `all:` or groups of hosts/children/vars.
    top = set(re.findall(r"^([^\s#:][^:]*):", text, re.M))
    if "all" in top:
        return True
    return "hosts" not in top and bool(top) and re.search(r"^\s+(hosts|children|vars):", text, re.M) is not None


def load_ansible(path: Path, shown: str) -> dict[str, Any]:
    """The Ansible inventory at `path` (`shown` in messages) as plain data: {"hosts": [host
    fields...], "groups", "known_hosts", "ssh_config"}; one-line InventoryError on any problem."""
    try:
        from ansible import constants as C
        from ansible.inventory import manager
        from ansible.inventory.helpers import get_group_vars
        from ansible.parsing.dataloader import DataLoader
        from ansible.utils.vars import combine_vars
    except ImportError:
        raise InventoryError(f"{shown}: an Ansible inventory needs ansible-core: {EXTRA_HINT}") from None
    C.INVENTORY_ENABLED = ["ini", "yaml"]
    C.INVENTORY_ANY_UNPARSED_IS_FAILED = True
    failures: list[tuple[str, BaseException]] = []
    display = manager.display
    original = display.error_as_warning
    display.error_as_warning = lambda msg, exception, **_kw: failures.append((msg, exception))  # type: ignore[method-assign]
    try:
        inv = manager.InventoryManager(loader=DataLoader(), sources=[str(path)])
    except Exception as err:  # ansible raises AnsibleError and friends
        raise InventoryError(_parse_error(path, shown, failures, err)) from None
    finally:
        display.error_as_warning = original  # type: ignore[method-assign]

    hosts: dict[str, dict[str, Any]] = {}
    known_hosts: set[Path] = set()
    ssh_configs: set[Path] = set()
    for host in inv.get_hosts():
        groups = [g.name for g in host.get_groups() if g.name not in ("all", "ungrouped")]
        values = combine_vars(get_group_vars(host.get_groups()), host.get_vars())
        built, kh, cfg = _host(shown, path, host.name, values, groups)
        hosts[host.name] = built
        known_hosts |= kh
        ssh_configs |= cfg
    if not hosts:
        raise InventoryError(f"{shown}: the Ansible inventory has no hosts")
    groups_map = {name: tuple(h.name for h in group.get_hosts())
                  for name, group in inv.groups.items() if name not in ("all", "ungrouped")}
    for setting, found in (("UserKnownHostsFile", known_hosts), ("-F (ssh config)", ssh_configs)):
        if len(found) > 1:
            raise InventoryError(f"{shown}: ansible_ssh_common_args: hosts disagree on {setting}: "
                                 f"{', '.join(sorted(map(str, found)))}")
    return {"hosts": list(hosts.values()), "groups": groups_map,
            "known_hosts": next(iter(known_hosts), None), "ssh_config": next(iter(ssh_configs), None)}


def _host(shown: str, path: Path, name: str, values: dict[str, Any], groups: list[str]
          ) -> tuple[dict[str, Any], set[Path], set[Path]]:
    where = f"{shown}: host {name}"
    explicit: set[str] = set()
    fields: dict[str, Any] = {}
    if "ansible_host" in values:
        fields["address"] = str(values["ansible_host"])
        explicit.add("address")
    if "ansible_user" in values:
        fields["user"] = str(values["ansible_user"])
        explicit.add("user")
    if "ansible_port" in values:
        try:
            fields["port"] = int(values["ansible_port"])
        except (TypeError, ValueError):
            raise InventoryError(f"{where}: ansible_port: expected an integer, got {values['ansible_port']!r}") from None
        explicit.add("port")
    if "ansible_ssh_private_key_file" in values:
        fields["key"] = (path.parent / Path(str(values["ansible_ssh_private_key_file"])).expanduser()).resolve()
        explicit.add("key")
    if "ansible_become" in values:
        if _truthy(values["ansible_become"]):
            method = str(values.get("ansible_become_method", "sudo"))
            if method != "sudo":
                raise InventoryError(f"{where}: ansible_become_method {method!r}: only sudo is supported")
            fields["become"] = "sudo"
        explicit.add("become")
    known_hosts: set[Path] = set()
    ssh_config: set[Path] = set()
    if "ansible_ssh_common_args" in values:
        jump, kh, cfg = _common_args(where, str(values["ansible_ssh_common_args"]))
        if jump is not None:
            fields["jump"] = jump
            explicit.add("jump")
        known_hosts |= {(path.parent / Path(p).expanduser()).resolve() for p in kh}
        ssh_config |= {(path.parent / Path(p).expanduser()).resolve() for p in cfg}
    facts: dict[str, str] = {}
    for key, value in values.items():
        if _SKIP_VARS.match(key):
            continue
        if isinstance(value, bool):
            facts[key] = "true" if value else "false"
        elif isinstance(value, (str, int, float)):
            facts[key] = str(value)
    host = {"name": name, "address": fields.pop("address", name), "facts": facts, "classes": tuple(groups),
            "explicit": frozenset(explicit), **fields}
    return host, known_hosts, ssh_config


def _truthy(value: Any) -> bool:
    return value is True or str(value).strip().lower() in ("true", "yes", "1", "on")


def _common_args(where: str, text: str) -> tuple[str | None, list[str], list[str]]:
    """ProxyJump (-J or -o ProxyJump=), UserKnownHostsFile and -F from ssh's own option syntax."""
    try:
        words = shlex.split(text)
    except ValueError as err:
        raise InventoryError(f"{where}: ansible_ssh_common_args: {err}") from None
    jump, known, config = None, [], []
    i = 0
    while i < len(words):
        word = words[i]
        value = words[i + 1] if i + 1 < len(words) else None
        if word in ("-J", "-F", "-o") and value is None:
            raise InventoryError(f"{where}: ansible_ssh_common_args: {word} without a value")
        if word == "-J":
            jump, i = value, i + 2
            continue
        if word == "-F":
            config.append(value)
            i += 2
            continue
        option = None
        if word == "-o":
            option, i = value, i + 2
        elif word.startswith("-o"):
            option, i = word[2:], i + 1
        else:
            i += 1
        if option:
            key, _, val = option.replace(" ", "=", 1).partition("=")
            if key.lower() == "proxyjump":
                jump = val
            elif key.lower() == "userknownhostsfile":
                known.append(val.split()[0])
    return jump, known, config


def _parse_error(path: Path, shown: str, failures: list[tuple[str, BaseException]], err: BaseException) -> str:
    """One line naming the file and, when Ansible or the text tells it, the line."""
    wanted = "yaml" if path.suffix in YAML_SUFFIXES else "ini"
    chosen = next((e for msg, e in failures if wanted in msg), failures[0][1] if failures else err)
    file, line, message = str(path), None, ""
    ex: BaseException | None = chosen
    while ex is not None:
        obj = getattr(ex, "obj", None)
        if getattr(obj, "path", None):
            file = obj.path
        if getattr(obj, "line_num", None):
            line = obj.line_num
        message = getattr(ex, "message", None) or str(ex)
        ex = ex.__cause__
    message = " ".join(str(message).split())
    if line is None and Path(file).suffix in YAML_SUFFIXES:
        line = _yaml_error_line(Path(file))
    if line is None:
        line = _find_line(Path(file), message)
    where = shown if Path(file).resolve() == path.resolve() else file   # a file of an inventory directory
    return f"{where}{f':{line}' if line else ''}: invalid Ansible inventory: {message}"


def _yaml_error_line(file: Path) -> int | None:
    """Where PyYAML finds the syntax error Ansible reports without a line."""
    import yaml
    try:
        yaml.safe_load(file.read_text(encoding="utf-8", errors="replace"))
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        return mark.line + 1 if mark is not None else None
    except (OSError, yaml.YAMLError):
        return None
    return None


def _find_line(file: Path, message: str) -> int | None:
    """The first line holding what the message quotes (`got: X`, `'X'`): Ansible's INI parser
    does not say the line."""
    candidates = re.findall(r"got: (.+)$", message) + re.findall(r"'([^']+)'", message)
    try:
        lines = file.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for text in candidates:
        text = text.strip()
        for number, line in enumerate(lines, 1):
            if text and text in line:
                return number
    return None
