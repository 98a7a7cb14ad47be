"""Pre-flight: before a scenario's first change, check what its later steps will need, so a
missing piece stops the run while nothing is changed yet, naming the piece (lb1), instead of
halfway through with hosts blocked: the load balancer's runtime API answers and knows every
target, a notification host answers, and every target's package index offers the versions the
scenario asks for. The checks run at once, in one round of read-only requests.

What a scenario needs (`Needs`) is read from its steps by the behave layer."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

from ..inventory import Host
from ..orchestration import RunOptions, RunResult, Status
from ..reporting import Cell, Outcome
from .run import Deploy, DeployError

#: how long HAProxy's runtime API may take to answer a pre-flight check (a hung API fails fast)
LB_TIMEOUT = 1.0
#: how long any host may take to answer a pre-flight check
HOST_TIMEOUT = 5.0


@dataclass(frozen=True)
class Needs:
    """What a scenario's steps will use: package versions, HAProxy backends, notifications."""
    packages: tuple[tuple[str, str], ...] = ()   # (name, version)
    backends: tuple[str, ...] = ()
    notify: bool = False
    load_balancer: bool = False


class PreflightFailed(DeployError):
    """A component the scenario needs is not ready: nothing was changed."""


Problem = tuple[str, str, str]   # (host, label, message)


def check(d: Deploy, targets: list[Host], needs: Needs) -> str:
    """Run the checks together; raise PreflightFailed naming each component that failed (its
    cell in the matrix is FAILED), else return a one-line summary of what was checked."""
    started = time.monotonic()
    checks: list[Callable[[], tuple[list[Problem], str]]] = []
    lb = d.scenario.lb
    if lb is not None and lb.host is not None and (needs.load_balancer or needs.backends):
        checks.append(lambda: _load_balancer(d, lb.host, targets, needs))  # type: ignore[arg-type]
    if needs.notify:
        checks.append(lambda: _notification(d))
    for name, version in dict.fromkeys(needs.packages):
        checks.append(lambda name=name, version=version: _package(d, targets, name, version))
    if not checks:
        return ""
    with ThreadPoolExecutor(max_workers=len(checks), thread_name_prefix="preflight") as pool:
        outcomes = list(pool.map(lambda c: c(), checks))
    problems = [p for found, _ in outcomes for p in found]
    if problems:
        for host, label, message in problems:
            d.matrix.record(host, Cell(Outcome.FAILED, f"pre-flight: {message}", label))
        raise PreflightFailed("pre-flight failed, nothing was changed: " +
                              "; ".join(f"{host}: {message}" for host, _, message in problems))
    return f"pre-flight passed in {time.monotonic() - started:.2f} s: " + "; ".join(s for _, s in outcomes if s)


def _call(d: Deploy, hosts: list[Host], agent: str, action: str, args: dict) -> RunResult:
    return d.session.call(hosts, agent, action, args, RunOptions(timeout=HOST_TIMEOUT))


def _load_balancer(d: Deploy, lb: Host, targets: list[Host], needs: Needs) -> tuple[list[Problem], str]:
    from .loadbalancer import backend_of, haproxy_args
    backends = list(needs.backends)
    if not backends:
        try:
            backends = [backend_of(d)]
        except DeployError:
            return [], ""  # no backend known: the LB steps fail on their own, before any change
    problems: list[Problem] = []
    for backend in dict.fromkeys(backends):
        args = {**haproxy_args(backend, [h for h in targets if h != lb]), "timeout": LB_TIMEOUT}
        r = _call(d, [lb], "haproxy", "status", args).results[lb.name]
        if not r.ok:
            problems.append((lb.name, "haproxy#status", f"{r.status}: {r.message}"))
    return problems, "" if problems else f"{lb.name} knows all {len(targets)} targets in {', '.join(backends)}"


def _notification(d: Deploy) -> tuple[list[Problem], str]:
    from .operations import notification_hosts
    hosts = notification_hosts(d)
    run = _call(d, hosts, "rpcutil", "ping", {})
    answered = [h for h, r in run.results.items() if r.ok]
    if answered:
        return [], f"notification host{'s' if len(answered) > 1 else ''} {', '.join(answered)} answer"
    return [(h, "rpcutil#ping", f"notification host does not answer: {r.status}: {r.message}")
            for h, r in run.results.items()], ""


def _package(d: Deploy, targets: list[Host], name: str, version: str) -> tuple[list[Problem], str]:
    run = _call(d, targets, "package", "status", {"name": name, "available": True, "version": version})
    problems: list[Problem] = []
    for host, r in run.results.items():
        offered = r.data.get("available")
        if r.status is Status.UNREACHABLE:
            continue  # the deploy lock, asked at the same time, refuses it or charges the failure budget
        if not r.ok:
            problems.append((host, "package#status", f"{r.status}: {r.message}"))
        elif isinstance(offered, list) and version not in offered and r.data.get("version") != version:
            problems.append((host, "package#status", f"{name} {version} is not offered by its package index "
                                                     f"(offers: {', '.join(offered) or 'nothing'})"))
    answered = sum(r.status is not Status.UNREACHABLE for r in run.results.values())
    return problems, "" if problems else f"{name} {version} offered on {answered} hosts"
