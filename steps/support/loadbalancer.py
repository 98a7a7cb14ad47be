"""Taking hosts out of the load balancer and putting them back: by firewall (drop the LB's
traffic on each host) or by HAProxy's admin state (disable, drain, enable). HAProxy answers for
the whole backend in one call on the LB; these helpers turn that answer into one result per
targeted host, so the matrix and the tallies speak of web hosts, not of the LB."""
from __future__ import annotations

from typing import Any

from orchestrator_lib.inventory import Host
from orchestrator_lib.orchestration import HostResult, RunResult, Status

from .deploy import Deploy, StepFailed, values_of
from .matchers import Unanswered

#: HAProxy admin state each action leaves a server in (agents/haproxy.py TARGETS)
ADMIN_AFTER = {"disable": "maint", "drain": "drain", "enable": "ready"}


def _targets(d: Deploy) -> list[Host]:
    hosts = d.hosts()
    lb = d.scenario.lb
    if lb is not None and lb.host is not None and lb.host in hosts:
        raise StepFailed(f"the load balancer {lb.name} is among the hosts to update: narrow the filters")
    return hosts


# ---- firewall --------------------------------------------------------------------------------------
def set_blocked(d: Deploy, blocked: bool) -> None:
    hosts, source = _targets(d), d.lb().address
    subject, action = f"firewall {source}", "block" if blocked else "unblock"
    if d.plan:
        run = d.call(hosts, "firewall", "status", {"source": source})
        d.plan_change(f"firewall#{action}", subject, values_of(run, lambda r: r.after),
                      "blocked" if blocked else "unblocked")
        return
    d.act(hosts, "firewall", action, {"source": source}, subject=subject)


def firewall_states(d: Deploy, hosts: list[Host]) -> dict[str, Any]:
    run = d.call(hosts, "firewall", "status", {"source": d.lb().address})
    return values_of(run, lambda r: r.after)


# ---- HAProxy ---------------------------------------------------------------------------------------
def server_states(d: Deploy, hosts: list[Host], backend: str) -> dict[str, Any]:
    """{host: {"op": "UP", "admin": "ready"}} as HAProxy sees each host's server."""
    lb = d.lb_host()
    run = d.call([lb], "haproxy", "status", {"backend": backend, "servers": [h.name for h in hosts]})
    r = run.results[lb.name]
    if not r.ok:
        return {h.name: Unanswered(str(r.status), f"{lb.name}: {r.message}") for h in hosts}
    servers = r.data.get("servers", {})
    return {h.name: {"op": servers[h.name]["op"], "admin": servers[h.name]["admin"]} for h in hosts}


def traffic_states(d: Deploy, until: Any) -> dict[str, Any]:
    """{host: {"firewall": ..., "haproxy": op state}}, re-reading HAProxy (whose health checks
    take a moment to notice) until every host matches `until` or lb_wait seconds passed."""
    hosts, backend = _targets(d), d.backend()
    firewall = firewall_states(d, hosts)

    def read() -> dict[str, Any]:
        servers = server_states(d, hosts, backend)
        out: dict[str, Any] = {}
        for h in hosts:
            fw, srv = firewall[h.name], servers[h.name]
            out[h.name] = fw if isinstance(fw, Unanswered) else srv if isinstance(srv, Unanswered) \
                else {"firewall": fw, "haproxy": srv["op"]}
        return out

    return d.wait_for(read, until, d.settings.lb_wait)


def admin_states(d: Deploy, backend: str | None, until: Any) -> dict[str, Any]:
    hosts, name = _targets(d), d.backend(backend)
    return d.wait_for(lambda: server_states(d, hosts, name), until, d.settings.lb_wait)


def set_admin(d: Deploy, action: str, backend: str | None) -> None:
    """disable / drain / enable the targeted hosts' servers, one call on the LB."""
    hosts, lb, name = _targets(d), d.lb_host(), d.backend(backend)
    subject, wanted = f"haproxy {name}", ADMIN_AFTER[action]
    if d.plan:
        states = server_states(d, hosts, name)
        current = {h: v if isinstance(v, Unanswered) else v["admin"] for h, v in states.items()}
        d.plan_change(f"haproxy#{action}", subject, current, wanted)
        return
    run = d.call([lb], "haproxy", action, {"backend": name, "servers": [h.name for h in hosts]})
    d.conclude(per_server(run, lb, hosts, wanted), subject)


def per_server(run: RunResult, lb: Host, hosts: list[Host], wanted: str) -> RunResult:
    """The LB's one reply, as one result per targeted host."""
    r = run.results[lb.name]
    before = r.before if isinstance(r.before, dict) else {}
    after = r.after if isinstance(r.after, dict) else {}
    changed = set(r.data.get("changed", []))
    results: dict[str, HostResult] = {}
    for h in hosts:
        if after.get(h.name) == wanted:
            status = Status.CHANGED if h.name in changed else Status.OK
            message = f"{before.get(h.name)} -> {wanted}" if h.name in changed else f"already {wanted}"
        else:
            status, message = Status.FAILED, f"{lb.name}: {r.message}"
        results[h.name] = HostResult(h.name, status, message, duration=r.duration, tries=r.tries,
                                     before=before.get(h.name), after=after.get(h.name))
    return RunResult(run.label, results, run.elapsed)
