"""appmgr: deploy one revision of an app on this host, idempotently: package to the revision,
restart only when something changed or the running process is stale, then wait until the app
itself reports the revision. A converged host costs one dpkg-query and one HTTP GET."""
from __future__ import annotations

from .. import core
from . import health, package, service
from ..core import ActionError, Reply, Request

agent = core.Agent(__name__, "deploy a revision of an app: package, restart, health")

DEFAULT_HEALTH_URL = "http://127.0.0.1:8080/health"


@agent.action
def deploy(req: Request) -> Reply:
    app = req.str_arg("app")
    revision = req.str_arg("revision")
    svc = req.str_arg("service", app)
    url = req.str_arg("health_url", DEFAULT_HEALTH_URL)
    field = req.str_arg("health_field", "version")
    deadline = req.float_arg("deadline", 60.0)
    interval = req.float_arg("interval", 0.5)
    wait = req.float_arg("wait", service.DEFAULT_WAIT)  # for the restart to run and pass its readiness check
    if not package.PACKAGE_NAME.fullmatch(app) or not package.VERSION.fullmatch(revision):
        raise ActionError(f"{req.label}: invalid app {app!r} or revision {revision!r}")
    if not service.SERVICE_NAME.fullmatch(svc):
        raise ActionError(f"{req.label}: invalid service name {svc!r}")

    data: dict = {"app": app, "revision": revision, "service": svc, "restarted": False}
    before: dict | None = None

    def fail(message: str, changed: bool) -> Reply:
        return Reply.failed(message, changed=changed, before=before, after=None, data=data)

    # 1. the package
    backend = package.choose_backend()
    try:
        pkg = package.ensure(backend, app, revision, downgrade=req.bool_arg("downgrade"), dry_run=req.dry_run)
    except ActionError as e:
        return fail(f"{app}: {e}", changed=False)
    data.update(package=pkg.message, previous=pkg.before)

    # 2. what runs now
    first = health.http_verdict(url, 2.0, 200, field, revision)
    running = first.detail.get(field)
    data["running_before"] = running
    before = {"package": pkg.before, "running": running}
    stale = not first.passed

    # 3. restart only if needed
    restarted = pkg.changed or stale
    data["restarted"] = restarted
    if req.dry_run:
        would = f"{app} already at {revision} and running it" if not restarted else \
            f"{pkg.message}; {svc} would be restarted" if pkg.changed else f"{svc} would be restarted (running {running})"
        return Reply.done(restarted, would, dry_run=True, before=before, data=data,
                          after={"package": pkg.after, "running": revision if restarted else running})
    if restarted:
        init = service.choose_backend(svc)
        try:
            service.converge_running(init, svc, min(deadline, wait), restart=True)
        except ActionError as e:
            return fail(f"{app} {revision}: {e}", changed=True)

    # 4. the app must say it runs the revision
    if restarted:
        verdict, hdata = health.poll(lambda left: health.http_verdict(url, min(5.0, left), 200, field, revision),
                                     tries=None, interval=interval, deadline=deadline)
    else:
        verdict, hdata = first, {"attempts": 1, "last": first.detail, "waited": 0.0, "passed": True}
    data["health"] = hdata
    after = {"package": pkg.after, "running": verdict.detail.get(field)}
    if not verdict.passed:
        return Reply.failed(f"{app} {revision} deployed but unhealthy after {hdata['waited']:.1f} s: {verdict.summary}",
                            changed=pkg.changed or restarted, before=before, after=after, data=data)
    changed = pkg.changed or restarted
    if not changed:
        msg = f"{app} already at {revision} and running it"
    else:
        steps = [pkg.message] if pkg.changed else []
        steps.append(f"restarted {svc}" + ("" if pkg.changed else f" (was running {running or 'nothing'})"))
        msg = f"{'; '.join(steps)}; healthy at {revision}"
    return Reply.done(changed, msg, before=before, after=after, data=data)
