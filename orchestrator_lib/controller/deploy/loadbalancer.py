"""Taking hosts out of the load balancer and putting them back: by firewall (refuse the LB's
traffic on each host) or by HAProxy's admin state (disable, drain, enable). HAProxy answers for
the whole backend in one call on the LB; these helpers turn that answer into one result per
targeted host, so the matrix and the tallies speak of web hosts, not of the LB.

The haproxy agent's request and reply shapes, the backend to use and how to find the
LB hosts are here once, for the deploy and for `orch lb` alike."""
from __future__ import annotations

import ipaddress
from typing import Any, Callable, Sequence

from ...protocol import ADMIN_AFTER
from ..discovery import Filter
from ..inventory import Host
from ..orchestration import HostResult, RunResult, Status
from ..session import Session
from .run import Deploy, DeployError, LoadBalancer, Unanswered, values_of



# ---- HAProxy, for any caller of a Session ------------------------------------------------------------
def find_load_balancers(session: Session, name: str | None = None) -> list[Host]:
    """The HAProxy hosts offering the haproxy agent: `name` (a host name or /regex/), else the
    estate's `loadbalancer: {host: ...}`, else every host of class haproxy. None found is an error,
    as for any filter."""
    name = name or session.inventory.loadbalancer.get("host") or None
    flt = Filter.parse(identities=name or (), classes=() if name else "haproxy", agents="haproxy")
    return session.discover(flt, live=False)


def haproxy_args(backend: str, servers: Sequence[Host] = ()) -> dict[str, Any]:
    """A haproxy#ACTION request for these servers of `backend` (no servers: all of them)."""
    args: dict[str, Any] = {"backend": backend}
    if servers:
        args["servers"] = [h.name for h in servers]
    return args


def reply_servers(result: HostResult) -> dict[str, dict[str, Any]]:
    """One LB's reply: {server: {"address": ..., "op": "UP", "admin": "ready"}}."""
    return result.data.get("servers") or {}


# ---- the scenario's load balancer ----------------------------------------------------------------------
def set_address(d: Deploy, address: str) -> None:
    """The LB by address (it may be a host of the estate, whose HAProxy can then be asked)."""
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise DeployError(f"the load balancer's address {address!r} is not an IP address") from None
    host = next((h for h in d.inventory.hosts.values() if h.address == address), None)
    d.scenario.lb = LoadBalancer(address, host)


def set_host(d: Deploy, name: str) -> None:
    """The LB by host name in the estate file."""
    host = d.inventory.host(name)
    d.scenario.lb = LoadBalancer(host.address, host)


def set_backend(d: Deploy, backend: str) -> None:
    d.scenario.backend = backend


def lb_of(d: Deploy) -> LoadBalancer:
    if d.scenario.lb is None and d.inventory.loadbalancer.get("host"):   # the estate names it
        set_host(d, d.inventory.loadbalancer["host"])
    if d.scenario.lb is None:
        raise DeployError("no load balancer given: add 'Given the load balancer is NAME' "
                          "(or 'has ip address ADDRESS') to the Background")
    return d.scenario.lb


def lb_host(d: Deploy) -> Host:
    lb = lb_of(d)
    if lb.host is None:
        raise DeployError(f"the load balancer {lb.address} is not a host of {d.inventory.path.name}: "
                          f"its HAProxy cannot be asked")
    return lb.host


def backend_of(d: Deploy, named: str | None = None) -> str:
    backend = named or d.scenario.backend or d.settings.backend or d.inventory.loadbalancer.get("backend")
    if not backend:
        raise DeployError("no HAProxy backend known: add 'Given the load balancer backend is NAME' "
                          "or run with -D backend=NAME")
    return backend


def _targets(d: Deploy) -> list[Host]:
    hosts = d.hosts()
    lb = d.scenario.lb
    if lb is not None and lb.host is not None and lb.host in hosts:
        raise DeployError(f"the load balancer {lb.name} is among the hosts to update: narrow the filters")
    return hosts


# ---- firewall --------------------------------------------------------------------------------------
def set_blocked(d: Deploy, blocked: bool) -> None:
    hosts, source = _targets(d), lb_of(d).address
    subject, action = f"firewall {source}", "block" if blocked else "unblock"
    d.act(hosts, "firewall", action, {"source": source}, subject=subject)


def firewall_states(d: Deploy, hosts: list[Host]) -> dict[str, Any]:
    run = d.call(hosts, "firewall", "status", {"source": lb_of(d).address})
    return values_of(run, lambda r: r.after)


# ---- HAProxy ---------------------------------------------------------------------------------------
def server_states(d: Deploy, hosts: list[Host], backend: str) -> dict[str, Any]:
    """{host: {"op": "UP", "admin": "ready"}} as HAProxy sees each host's server."""
    lb = lb_host(d)
    run = d.call([lb], "haproxy", "status", haproxy_args(backend, hosts))
    r = run.results[lb.name]
    if not r.ok:
        return {h.name: Unanswered(str(r.status), f"{lb.name}: {r.message}") for h in hosts}
    servers = reply_servers(r)
    return {h.name: {"op": servers[h.name]["op"], "admin": servers[h.name]["admin"]} for h in hosts}


def traffic_states(d: Deploy, until: Callable[[Any], bool]) -> dict[str, Any]:
    """{host: {"firewall": ..., "haproxy": op state}}, re-reading HAProxy (whose health checks
    take a moment to notice) until every host satisfies `until` or lb_wait seconds passed."""
    hosts, backend = _targets(d), backend_of(d)
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


def admin_states(d: Deploy, backend: str | None, until: Callable[[Any], bool]) -> dict[str, Any]:
    """{host: {"op": ..., "admin": ...}}, re-read until every host satisfies `until` (lb_wait)."""
    hosts, name = _targets(d), backend_of(d, backend)
    return d.wait_for(lambda: server_states(d, hosts, name), until, d.settings.lb_wait)


def set_admin(d: Deploy, action: str, backend: str | None) -> None:
    """disable / drain / enable the targeted hosts' servers, one call on the LB."""
    hosts, lb, name = _targets(d), lb_host(d), backend_of(d, backend)
    subject, wanted = f"haproxy {name}", ADMIN_AFTER[action]
    run = d.call([lb], "haproxy", action, haproxy_args(name, hosts), dry_run=d.plan)
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
            done = Status.WOULD_CHANGE if r.status is Status.WOULD_CHANGE else Status.CHANGED  # a dry run's
            status = done if h.name in changed else Status.OK
            message = f"{before.get(h.name)} -> {wanted}" if h.name in changed else f"already {wanted}"
        else:
            status, message = Status.FAILED, f"{lb.name}: {r.message}"
        results[h.name] = HostResult(h.name, status, message, duration=r.duration, tries=r.tries,
                                     before=before.get(h.name), after=after.get(h.name))
    return RunResult(run.label, results, run.elapsed)
