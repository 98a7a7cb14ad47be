"""The lab's private network: one bridge on the machine, one network namespace per host joined to
it by a veth pair. No default route and no forwarding, so nothing leaves the bridge."""
from __future__ import annotations

import ipaddress
import subprocess
from pathlib import Path

from ..controller.errors import LabError
from ..controller.inventory import Inventory

#: the bridge of a lab whose `lab:` section names none
DEFAULT_BRIDGE = "labbr0"


def refuse_if_down(inventory: Inventory) -> None:
    """Session's preflight for any estate: a lab's addresses exist only on its bridge, so with the
    bridge gone packets to them would leave the machine by its default route. Never send them."""
    bridge = inventory.lab.get("bridge", DEFAULT_BRIDGE) if inventory.lab else None
    if bridge and not Path("/sys/class/net", bridge).exists():
        raise LabError(f"the lab of {inventory.path.name} is not up (no bridge {bridge}): "
                       f"run `python3 -m orchestrator_lib.lab up {inventory.name}`")


def netns_name(bridge: str, host: str) -> str:
    return f"{bridge}-{host}"


def veth_name(bridge: str, index: int) -> str:
    """Interface names are capped at 15 characters, so the machine-side end is named by index."""
    name = f"{bridge}v{index}"
    if len(name) > 15:
        raise LabError(f"lab bridge name {bridge!r} is too long for {index + 1} hosts (15 characters per link)")
    return name


def _batch(commands: list[str], *, force: bool = False) -> subprocess.CompletedProcess:
    """One `ip -batch` for many changes: 1,000 hosts cost one process, not 3,000."""
    argv = ["ip", "-batch", "-"] + (["-force"] if force else [])
    return subprocess.run(argv, input="\n".join(commands) + "\n", text=True, capture_output=True)


def existing_netns() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def existing_links() -> set[str]:
    return {p.name for p in Path("/sys/class/net").iterdir()}


def create(bridge: str, gateway: str, subnet: str, hosts: list[tuple[str, str]]) -> None:
    """Create the bridge (gateway address on the machine side) and a netns + veth per (ns, veth)."""
    prefix = ipaddress.ip_network(subnet, strict=False).prefixlen
    commands = [f"link add {bridge} type bridge", f"addr add {gateway}/{prefix} dev {bridge}",
                f"link set {bridge} up"]
    for ns, veth in hosts:
        commands += [f"netns add {ns}", f"link add {veth} type veth peer name eth0 netns {ns}",
                     f"link set {veth} master {bridge} up"]
    done = _batch(commands)
    if done.returncode != 0:
        raise LabError(f"could not create the lab network: {done.stderr.strip().splitlines()[-1]}")


def netns_pids(ns: str) -> list[int]:
    """Processes inside one of our namespaces (what a crashed earlier run left running there)."""
    out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def ours(bridge: str) -> tuple[set[str], set[str]]:
    """Namespaces and links named after this bridge, whichever run or checkout made them."""
    netns = {ns for ns in existing_netns() if ns.startswith(f"{bridge}-")}
    links = {link for link in existing_links()
             if link.startswith(f"{bridge}v") and link[len(bridge) + 1:].isdigit()}
    return netns, links


def destroy(bridge: str) -> None:
    """Delete links before namespaces: `ip netns del` is asynchronous and a quick re-up would
    otherwise meet `File exists`."""
    netns, links = ours(bridge)
    commands = [f"link del {link}" for link in sorted(links)]
    commands += [f"netns del {ns}" for ns in sorted(netns)]
    if bridge in existing_links():
        commands.append(f"link del {bridge}")
    if commands:
        _batch(commands, force=True)
