"""rpcutil: is the host there, what is it, what can it do. Read-only, cheap, safe to run anywhere."""
from __future__ import annotations

import os

from .. import core
from ..core import Reply, Request

agent = core.Agent(__name__, "liveness, facts and the agent list")


def os_release(text: str | None = None) -> dict[str, str]:
    """/etc/os-release as a dict (the format is shell assignments, values maybe quoted)."""
    if text is None:
        text = core.system().read_text("/etc/os-release") or core.system().read_text("/usr/lib/os-release") or ""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[key.strip()] = value
    return out


def live_facts() -> dict[str, str]:
    """What the host says about itself. Strings, like inventory facts, so filters compare alike."""
    import platform
    import socket
    rel = os_release()
    load = core.system().loadavg()
    return {
        "os": rel.get("ID", platform.system().lower()),
        "os_like": rel.get("ID_LIKE", ""),
        "os_name": rel.get("PRETTY_NAME", ""),
        "release": rel.get("VERSION_ID", ""),
        "codename": rel.get("VERSION_CODENAME", ""),
        "hostname": socket.gethostname(),
        "kernel": os.uname().release,
        "architecture": platform.machine(),
        "python": platform.python_version(),
        "load1": f"{load[0]:.2f}",
        "load5": f"{load[1]:.2f}",
        "load15": f"{load[2]:.2f}",
    }


@agent.action
def ping(req: Request) -> Reply:
    return Reply.ok("pong", data={"pong": core.system().time()})


@agent.action
def facts(req: Request) -> Reply:
    """Inventory facts from the request, overlaid by live ones: the host knows its own OS best."""
    live = live_facts()
    merged = {**{k: str(v) for k, v in req.facts.items()}, **live}
    return Reply.ok(f"{len(merged)} facts", data={"facts": merged, "live": sorted(live)})


@agent.action
def agents(req: Request) -> Reply:
    names = core.agent_names()
    actions = {n: sorted(core.REGISTRY[n].actions) for n in names}
    return Reply.ok(", ".join(names), data={"agents": names, "actions": actions})
