"""Services, under whatever init the host runs (runit, systemd, SysV)."""
from hamcrest import equal_to

from orchestrator_lib.controller.deploy import operations as ops
from orchestrator_lib.behave import parsing  # noqa: F401  (registers the parameter types)
from orchestrator_lib.behave.binding import deploy_of, then, when
from orchestrator_lib.behave.matchers import check


@when("I restart the service {name:Word}{options:RunOptions}")
def step_restart(context, name, options):
    """Restart everywhere (always a change); ready only once the service passes its check."""
    ops.service_action(deploy_of(context), name, "restart", options)


@when("I restart the service {name:Word} unless port {port:d} already reports {field:Word} {value:Word}{options:RunOptions}")
def step_restart_stale(context, name, port, field, value, options):
    """Restart only the hosts whose health check does not yet report the value (an upgraded
    package keeps running the old code until restarted), so a re-run restarts nothing."""
    ops.restart_unless_reporting(deploy_of(context), name, port, field, value, options)


@when("I start the service {name:Word}{options:RunOptions}")
def step_start(context, name, options):
    """Start where it is stopped."""
    ops.service_action(deploy_of(context), name, "start", options)


@when("I stop the service {name:Word}{options:RunOptions}")
def step_stop(context, name, options):
    """Stop where it runs."""
    ops.service_action(deploy_of(context), name, "stop", options)


@when("I reload the service {name:Word}{options:RunOptions}")
def step_reload(context, name, options):
    """Ask the running service to reload its configuration."""
    ops.service_action(deploy_of(context), name, "reload", options)


@then("the service {name:Word} should be {state:Word}")
def step_service_state(context, name, state):
    """Every host reports the service `running` (or `stopped`)."""
    d = deploy_of(context)
    if d.plan_skips_check(f"service {name} {state}"):
        return
    check(d, ops.service_states(d, name), equal_to(state), f"service {name}", "service#status")
