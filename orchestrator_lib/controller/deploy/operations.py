"""Packages, services, app revisions, health checks and notifications: the agent calls behind
the step vocabulary (in plan mode the same calls, as dry runs: each host says what it would change)."""
from __future__ import annotations

from typing import Any

from ..inventory import Host
from ..orchestration import HostResult, RunResult, Status
from ..reporting import Cell, Outcome
from ..orchestration import RunOptions
from .settings import CHECK_MARGIN
from .run import Deploy, DeployError, StepOptions, Unanswered, failure_text, values_of


# ---- packages ---------------------------------------------------------------------------------------
def update_package(d: Deploy, name: str, version: str | None, options: StepOptions,
                   downgrade: bool = False) -> None:
    """To `version`, or (None) to the newest the host's package sources offer; `downgrade`: to an
    older `version` too (refused otherwise)."""
    fan_out = d.step_options(options, 900.0)
    args = {"name": name, **({"version": version} if version else {}), **({"downgrade": True} if downgrade else {})}
    run = d.act(d.hosts(), "package", "update", args, subject=f"package {name}", options=fan_out)
    d.scenario.facts["version"] = version or _common(run, "version")


def rollback_package(d: Deploy, name: str, options: StepOptions) -> None:
    """Each host back to the version of `name` it had before the run (from the journal: the
    first change this run, or the run it resumes, made to it), downgrading where needed. A host
    put back is recorded `rolled back`; one whose earlier version is unknown fails, named."""
    fan_out = d.step_options(options, 900.0)
    hosts, subject = d.hosts(), f"package {name}"
    guard = d.guard
    before = {h.name: guard.before_the_run(h.name, subject) if guard is not None else None for h in hosts}
    unknown = [h for h in hosts if before[h.name] is None]
    for host in unknown:
        d.matrix.record(host.name, Cell(Outcome.FAILED, f"{subject}: no version before this run in the journal "
                                                        f"(no change to it was recorded)", "package#update", subject))
    by_version: dict[str, list[Host]] = {}
    for host in hosts:
        if host not in unknown:
            by_version.setdefault(str(before[host.name]), []).append(host)
    bad: list[str] = []
    for version, group in by_version.items():
        run = d.call(group, "package", "update", {"name": name, "version": version, "downgrade": True},
                     fan_out, subject, _rolled_back_cell, dry_run=d.plan)
        d.matrix.record_run(run, subject, _rolled_back_cell)
        d.say(run.tally())
        if not run.ok:
            bad.append(failure_text(run))
    if bad:
        raise DeployError("\n".join(bad))
    if unknown:
        raise DeployError(f"cannot roll back {name} on {', '.join(h.name for h in unknown)}: the journal has no "
                          f"version from before this run (this run made no change to {name} there)")


def _rolled_back_cell(result: HostResult) -> Cell:
    cell = Cell.from_host_result(result, "package#update", f"package {result.data.get('name', '')}".strip())
    if result.status is Status.CHANGED:
        cell.status, cell.message = Outcome.ROLLED_BACK, f"rolled back: {result.message}"
    return cell


def package_versions(d: Deploy, name: str) -> dict[str, Any]:
    run = d.call(d.hosts(), "package", "status", {"name": name})
    return values_of(run, lambda r: r.data.get("version"))


def report_versions(d: Deploy, name: str) -> None:
    """Read-only (so the same in plan mode): one cell per host and the distribution of versions."""
    run = d.conclude(d.call(d.hosts(), "package", "status", {"name": name}), f"package {name}")
    d.say(run.summary("version"))


def _common(run: RunResult, key: str) -> str:
    values = {str(r.data.get(key)) for r in run.results.values()}
    return values.pop() if len(values) == 1 else "several versions"


# ---- app revisions (appmgr) -------------------------------------------------------------------------
def _app_state(state: Any) -> Any:
    if not isinstance(state, dict):
        return state
    package, running = state.get("package"), state.get("running")
    return running if package == running else f"package {package}, running {running}"


def _app_cell(result: HostResult) -> Cell:
    cell = Cell.from_host_result(result, "appmgr#deploy", f"app {result.data.get('app', '')}".strip())
    cell.before, cell.after = _app_state(result.before), _app_state(result.after)
    return cell


def deploy_app(d: Deploy, app: str, revision: str, options: StepOptions) -> None:
    """Package to the revision, restart only where needed, wait until the app reports it."""
    fan_out = d.step_options(options, 900.0)
    hosts, subject = d.hosts(), f"app {app}"
    d.scenario.facts["version"] = revision
    args = {"app": app, "revision": revision, "wait": d.settings.service_wait}
    d.act(hosts, "appmgr", "deploy", args, subject=subject, options=fan_out, describe_result=_app_cell)


# ---- services ---------------------------------------------------------------------------------------
#: what a restart or reload leaves, for the recap (the service runs before and after)
DONE = {"restart": "restarted", "reload": "reloaded"}


def _service_cell(action: str, before: dict[str, str] | None = None):
    def describe(result: HostResult) -> Cell:
        cell = Cell.from_host_result(result, f"service#{action}", f"service {result.data.get('name', '')}".strip())
        if before and result.host in before:
            cell.before = before[result.host]
        if result.status in (Status.CHANGED, Status.WOULD_CHANGE) and action in DONE:
            cell.after = DONE[action]
        return cell
    return describe


def service_action(d: Deploy, name: str, action: str, options: StepOptions,
                   hosts: list[Host] | None = None, before: dict[str, str] | None = None) -> None:
    """A start or restart counts once the service passes its readiness check, within -D service_wait
    seconds on each host (a stop, once it stopped); the SSH call gets that plus CHECK_MARGIN."""
    wait = d.settings.service_wait
    fan_out = d.step_options(options, max(300.0, wait + CHECK_MARGIN))
    hosts = d.hosts() if hosts is None else hosts
    subject = f"service {name}"
    d.act(hosts, "service", action, {"name": name, "wait": wait}, subject=subject, options=fan_out,
          describe_result=_service_cell(action, before))


def service_states(d: Deploy, name: str) -> dict[str, Any]:
    run = d.call(d.hosts(), "service", "status", {"name": name})
    return values_of(run, lambda r: r.data.get("state"))


def restart_unless_reporting(d: Deploy, name: str, port: int, field: str, value: str, options: StepOptions) -> None:
    """Restart only where the service does not yet report `field` = `value` (a process started
    before its package was upgraded still reports the old version): re-running changes nothing."""
    options.run_options()  # refused before any host is asked (service_action applies the rollout policy)
    hosts = d.hosts()
    run = d.call(hosts, "health", "http", {"url": d.settings.health_url(port), "field": field, "expect": value, "timeout": 2})
    stale: list[Host] = []
    reported: dict[str, str] = {}
    for host in hosts:
        r = run.results[host.name]
        if r.ok:
            d.matrix.record(host.name, Cell(Outcome.OK, f"already reports {field} {value}", "service#restart",
                                            f"service {name}", "running", "running"))
        elif r.status is Status.FAILED and "last" in r.data:
            stale.append(host)
            reported[host.name] = f"running {field} {r.data['last'].get(field)}"
    silent = RunResult(run.label, {h: r for h, r in run.results.items() if not r.ok and h not in reported}, run.elapsed)
    if silent.results:
        d.matrix.record_run(silent)
        raise DeployError(failure_text(silent))
    if not stale:
        d.say(f"service#restart: not needed, every host reports {field} {value} on port {port}")
        return
    d.say(f"{len(stale)} of {len(hosts)} hosts do not report {field} {value} on port {port}: "
          f"{', '.join(h.name for h in stale)}")
    service_action(d, name, "restart", options, hosts=stale, before=reported)


# ---- health -----------------------------------------------------------------------------------------
def _last(result: HostResult, *fields: str) -> Any:
    """What a host's check saw last, even when the check failed; Unanswered if it never ran."""
    last = result.data.get("last")
    if not isinstance(last, dict):
        return Unanswered.of(result)
    seen = {f: last.get(f) for f in fields}
    if last.get("error") and "status" in fields and last.get("status") is None:
        seen["error"] = last["error"]
    return seen


def health_reports(d: Deploy, port: int, field: str, value: str, seconds: float) -> dict[str, Any]:
    """{host: {"status": 200, field: ...}}: the check loops on the host until it reports `value`."""
    args = {"url": d.settings.health_url(port), "field": field, "expect": value, "deadline": seconds, "interval": 1}
    run = d.call(d.hosts(), "health", "http", args, RunOptions(timeout=seconds + CHECK_MARGIN))
    return {h: _last(r, "status", field) for h, r in run.results.items()}


def health_passes(d: Deploy, port: int, seconds: float) -> dict[str, Any]:
    args = {"url": d.settings.health_url(port), "deadline": seconds, "interval": 1}
    run = d.call(d.hosts(), "health", "http", args, RunOptions(timeout=seconds + CHECK_MARGIN))
    return {h: _last(r, "status") for h, r in run.results.items()}


def load_averages(d: Deploy, threshold: float, seconds: float) -> dict[str, Any]:
    args = {"threshold": threshold, "deadline": seconds, "interval": 1}
    run = d.call(d.hosts(), "health", "load", args, RunOptions(timeout=seconds + CHECK_MARGIN))
    return {h: v["load1"] if isinstance(v, dict) else v for h, v in
            ((h, _last(r, "load1")) for h, r in run.results.items())}


# ---- notifications ----------------------------------------------------------------------------------
def notification_hosts(d: Deploy) -> list[Host]:
    """The estate's notification hosts, in order: its group (-D notify_group), else roles::notify."""
    inventory, group = d.inventory, d.settings.notify_group
    hosts = inventory.group(group) if group in inventory.groups else \
        [h for h in inventory.hosts.values() if "roles::notify" in h.classes]
    if not hosts:
        raise DeployError(f"{inventory.path.name} has no notification host (no group {group!r}, "
                          f"no host with class roles::notify)")
    return hosts


def notify(d: Deploy, recipient: str, template: str) -> None:
    """Send through the first notification host that delivers (MCollective-style failover)."""
    message, hosts = d.fill(template), notification_hosts(d)
    problems = []
    for host in hosts:
        webhook = d.settings.webhook(host)
        run = d.call([host], "notify", "send", {"recipient": recipient, "message": message, "webhook": webhook},
                     RunOptions(timeout=60.0), dry_run=d.plan)
        result = run.results[host.name]
        if result.ok:
            d.conclude(run)
            d.say(f"{recipient} {'would be ' if d.plan else ''}notified through {host.name}: {message}")
            return
        problems.append(f"{host.name}: {result.status}: {result.message}")
        d.say(f"{host.name} could not notify ({result.status}: {result.message}); trying the next host")
    raise DeployError(f"no notification host could notify {recipient}: " + "; ".join(problems))
