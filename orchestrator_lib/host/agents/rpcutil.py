"""rpcutil: is the host there, what is it, what can it do. Read-only, cheap, safe to run anywhere."""
from __future__ import annotations

from .. import core, facts as host_facts
from ..core import Reply, Request

agent = core.Agent(__name__, "liveness, facts and the agent list")


def os_release(text: str | None = None) -> dict[str, str]:
    """/etc/os-release as a dict (the format is shell assignments, values maybe quoted)."""
    if text is None:
        text = core.system().read_text("/etc/os-release") or core.system().read_text("/usr/lib/os-release") or ""
    return host_facts.os_release(text)


def live_facts() -> dict[str, str]:
    """The built-in facts and the load. Strings, like inventory facts, so filters compare alike."""
    load = core.system().loadavg()
    return {**host_facts.builtin(core.system().read_text),
            "load1": f"{load[0]:.2f}", "load5": f"{load[1]:.2f}", "load15": f"{load[2]:.2f}"}


@agent.action
def ping(req: Request) -> Reply:
    return Reply.ok("pong", data={"pong": core.system().time()})


@agent.action
def facts(req: Request) -> Reply:
    """The host's own facts (built-in, then custom files overriding them), where each came from,
    and its classes (null when it has no classes file). Merging with the inventory is the
    controller's job (controller/discovery/livefacts.py). A malformed facts or classes file fails
    the request, naming the file and line: a host is never discovered on half its facts."""
    read = core.system().read_text
    try:
        where = host_facts.config(read)
        builtin = live_facts()
        custom, origin = host_facts.custom(where["facts_dir"])
        classes = host_facts.classes(where["classes_file"])
    except host_facts.FactsError as exc:
        return Reply.failed(f"facts: {exc}")
    sources = {**{name: host_facts.BUILTIN for name in builtin}, **origin}
    return Reply.ok(f"{len(builtin) + len(set(custom) - set(builtin))} facts",
                    data={"facts": {**builtin, **custom}, "sources": sources, "classes": classes,
                          "classes_file": where["classes_file"]})


@agent.action
def agents(req: Request) -> Reply:
    names = core.agent_names()
    actions = {n: sorted(core.REGISTRY[n].actions) for n in names}
    return Reply.ok(", ".join(names), data={"agents": names, "actions": actions})
