"""Taking the hosts out of the load balancer and putting them back: by firewall (the hosts refuse
the LB's traffic, so HAProxy's health checks mark them DOWN) or by HAProxy's admin state."""
from hamcrest import has_entries

from orchestrator_lib.controller.deploy import loadbalancer as lb
from orchestrator_lib.behave import parsing  # noqa: F401  (registers the parameter types)
from orchestrator_lib.behave.binding import deploy_of, given, then, when
from orchestrator_lib.behave.matchers import check


@given("the load balancer has ip address {address:Word}")
def step_lb_address(context, address):
    """The LB by address: its traffic is what "block" refuses (it may be a host of the estate)."""
    lb.set_address(deploy_of(context), address)


@given("the load balancer is {name:Word}")
def step_lb_host(context, name):
    """The LB by host name in the estate file."""
    lb.set_host(deploy_of(context), name)


@given("the load balancer backend is {backend:Word}")
def step_lb_backend(context, backend):
    """The HAProxy backend whose servers are the hosts (default: -D backend, or the lab's)."""
    lb.set_backend(deploy_of(context), backend)


@when("I block the load balancer")
def step_block(context):
    """Every host refuses traffic from the LB's address (firewall agent)."""
    lb.set_blocked(deploy_of(context), True)


@when("I unblock the load balancer")
def step_unblock(context):
    """Every host accepts the LB's traffic again."""
    lb.set_blocked(deploy_of(context), False)


@then("traffic from the load balancer should be blocked")
def step_blocked(context):
    """On every host the LB's traffic is refused (TCP reset) AND HAProxy reports its server DOWN
    (waiting up to -D lb_wait seconds, 10 by default, for the health checks to notice)."""
    _check_traffic(context, firewall="blocked", haproxy="DOWN")


@then("traffic from the load balancer should be unblocked")
def step_unblocked(context):
    """On every host our firewall rule is gone AND HAProxy reports its server UP again."""
    _check_traffic(context, firewall="unblocked", haproxy="UP")


def _check_traffic(context, firewall: str, haproxy: str) -> None:
    d = deploy_of(context)
    if d.plan_skips_check(f"traffic from the load balancer {firewall}"):
        return
    wanted = has_entries(firewall=firewall, haproxy=haproxy)
    check(d, lb.traffic_states(d, until=wanted.matches), wanted, "traffic from the load balancer")


@when("I {action:LbAction} the hosts in the load balancer backend {backend:Word}")
def step_admin(context, action, backend):
    """disable (maintenance), drain (finish open sessions) or enable each host's server."""
    lb.set_admin(deploy_of(context), action, backend)


@then("the hosts should be {admin:LbState} in the load balancer backend {backend:Word}")
def step_admin_state(context, admin, backend):
    """HAProxy's admin state of every host's server (disabled, drained, enabled); enabled
    also means the server is UP, waiting up to lb_wait seconds."""
    d = deploy_of(context)
    if d.plan_skips_check(f"servers {admin} in backend {backend}"):
        return
    wanted = has_entries(admin=admin, op="UP") if admin == "ready" else has_entries(admin=admin)
    check(d, lb.admin_states(d, backend, until=wanted.matches), wanted, f"HAProxy backend {backend}", "haproxy#status")
