"""Health checks that loop on each host until they pass or the time is up (one SSH round trip
per host however long they wait)."""
from hamcrest import has_entries, less_than

from orchestrator_lib.controller.deploy import operations as ops
from orchestrator_lib.behave import parsing  # noqa: F401  (registers the parameter types)
from orchestrator_lib.behave.binding import deploy_of, then
from orchestrator_lib.behave.matchers import check


@then("the health check on port {port:d} should report {field:Word} {value:Word} within {seconds:d} {unit:Seconds}")
def step_health_reports(context, port, field, value, seconds, unit):
    """GET http://127.0.0.1:PORT/health on each host answers 200 with JSON `field` = value
    (path: -D health_path, /health by default)."""
    d = deploy_of(context)
    if d.plan_skips_check(f"health on port {port} reports {field} {value}"):
        return
    wanted = has_entries(status=200, **{field: value})
    check(d, ops.health_reports(d, port, field, value, seconds), wanted, f"health check on port {port}", "health#http")


@then("the health check on port {port:d} should pass within {seconds:d} {unit:Seconds}")
def step_health_passes(context, port, seconds, unit):
    """GET http://127.0.0.1:PORT/health on each host answers 200."""
    d = deploy_of(context)
    if d.plan_skips_check(f"health on port {port}"):
        return
    check(d, ops.health_passes(d, port, seconds), has_entries(status=200), f"health check on port {port}", "health#http")


@then("the load average should be below {threshold:g} within {seconds:d} {unit:Seconds}")
def step_load(context, threshold, seconds, unit):
    """Each host's 1-minute load average drops below the threshold in time."""
    d = deploy_of(context)
    if d.plan_skips_check(f"load below {threshold:g}"):
        return
    check(d, ops.load_averages(d, threshold, seconds), less_than(threshold), "1-minute load average", "health#load")
