"""orchestrator_lib.controller.deploy.loadbalancer without a lab: the scenario's load balancer and backend,
the haproxy agent's request and reply, one LB reply as one result per web host, and the firewall
and admin-state verbs in plan mode and for real (scripted replies)."""
from __future__ import annotations

import pytest

from orchestrator_lib.controller.deploy import DeployError, Unanswered
from orchestrator_lib.controller.deploy import loadbalancer as lb
from orchestrator_lib.controller.errors import FilterError, InventoryError
from orchestrator_lib.controller.orchestration import HostResult, RunResult, Status
from orchestrator_lib.controller.reporting import Outcome

from tests.unit.test_deploy_fakes import BARE, ScriptedSession, cells, estate, make_deploy, said


def haproxy_reply(admin: dict[str, str], *, changed=(), op="UP", status=Status.OK, message="app: ..."):
    """What the haproxy agent answers for servers `admin` ({server: admin state})."""
    def reply(host, args):
        servers = {n: {"address": "10.0.0.x", "op": op, "admin": a} for n, a in admin.items()}
        return HostResult(host.name, status, message, before={n: "ready" for n in admin}, after=dict(admin),
                          data={"backend": args["backend"], "servers": servers, "changed": list(changed)})
    return reply


# ---- shared with `orch lb` ------------------------------------------------------------------------------
def test_request_reply_and_the_estates_backend(tmp_path):
    session = ScriptedSession(estate(tmp_path))
    web = session.inventory.group("web")
    assert lb.haproxy_args("app", web[:2]) == {"backend": "app", "servers": ["web1", "web2"]}
    assert lb.haproxy_args("app") == {"backend": "app"}
    assert lb.reply_servers(HostResult("lb1", Status.OK, data={"servers": {"web1": {"op": "UP"}}})) == {"web1": {"op": "UP"}}
    assert lb.reply_servers(HostResult("lb1", Status.FAILED, "boom")) == {}


def test_the_load_balancers_are_the_haproxy_hosts_or_the_one_named(tmp_path):
    session = ScriptedSession(estate(tmp_path))
    assert [h.name for h in lb.find_load_balancers(session)] == ["lb1"]
    assert [h.name for h in lb.find_load_balancers(session, "lb1")] == ["lb1"]
    with pytest.raises(FilterError, match="unknown host 'lb9'"):
        lb.find_load_balancers(session, "lb9")


# ---- the scenario's load balancer -----------------------------------------------------------------------
def test_the_lb_by_address_or_name_and_the_errors_of_a_missing_one(tmp_path):
    d = make_deploy(tmp_path)
    with pytest.raises(DeployError, match=r"^no load balancer given: add 'Given the load balancer is NAME'"):
        lb.lb_of(d)
    with pytest.raises(DeployError, match=r"^the load balancer's address 'nope' is not an IP address$"):
        lb.set_address(d, "nope")
    lb.set_address(d, "10.0.0.99")
    assert lb.lb_of(d).name == "10.0.0.99"
    with pytest.raises(DeployError, match=r"^the load balancer 10.0.0.99 is not a host of unit.yaml: its HAProxy"):
        lb.lb_host(d)
    lb.set_address(d, "10.0.0.2")
    assert lb.lb_host(d).name == "lb1" and lb.lb_of(d).name == "lb1"
    lb.set_host(d, "lb1")
    assert lb.lb_of(d).address == "10.0.0.2"
    with pytest.raises(InventoryError, match="unknown host 'lb9'"):
        lb.set_host(d, "lb9")


def test_the_backend_a_step_names_then_the_scenarios_then_the_settings_then_the_estates(tmp_path):
    d = make_deploy(tmp_path, backend="www")
    assert lb.backend_of(d, "api") == "api" and lb.backend_of(d) == "www"
    lb.set_backend(d, "web")
    assert lb.backend_of(d) == "web"
    assert lb.backend_of(make_deploy(tmp_path)) == "app"
    with pytest.raises(DeployError, match=r"^no HAProxy backend known: add 'Given the load balancer backend is NAME'"):
        lb.backend_of(make_deploy(tmp_path, text=BARE))


def test_the_lb_among_the_hosts_to_update_is_refused(tmp_path):
    d = make_deploy(tmp_path)
    lb.set_host(d, "lb1")
    d.narrow(identities=["lb1", "web1"])
    with pytest.raises(DeployError, match=r"^the load balancer lb1 is among the hosts to update: narrow the filters$"):
        lb.set_blocked(d, True)


# ---- one LB reply, one result per web host ----------------------------------------------------------------
def test_per_server_turns_the_lb_reply_into_web_host_results(tmp_path):
    session = ScriptedSession(estate(tmp_path))
    lb1, hosts = session.inventory.host("lb1"), session.inventory.group("web")
    reply = HostResult("lb1", Status.FAILED, "app: not maint: web3 missing", duration=0.5, tries=1,
                       before={"web1": "ready", "web2": "maint"}, after={"web1": "maint", "web2": "maint"},
                       data={"changed": ["web1"]})
    run = lb.per_server(RunResult("haproxy#disable", {"lb1": reply}, 0.6), lb1, hosts, "maint")
    assert [(r.host, r.status, r.message, r.before, r.after) for r in run.results.values()] == [
        ("web1", Status.CHANGED, "ready -> maint", "ready", "maint"),
        ("web2", Status.OK, "already maint", "maint", "maint"),
        ("web3", Status.FAILED, "lb1: app: not maint: web3 missing", None, None)]
    assert run.label == "haproxy#disable" and run.elapsed == 0.6


# ---- the verbs ----------------------------------------------------------------------------------------------
def test_disable_is_one_call_on_the_lb_recorded_per_web_host(tmp_path):
    d = make_deploy(tmp_path, {"haproxy#disable": haproxy_reply({"web1": "maint", "web2": "maint"}, changed=["web1"])})
    lb.set_host(d, "lb1")
    d.narrow(facts=["hagroup=/a|b/"])
    lb.set_admin(d, "disable", "app")
    assert d.session.calls == [("haproxy#disable", ["lb1"], {"backend": "app", "servers": ["web1", "web2"]})]
    assert said(d) == ["      haproxy#disable: ok on 2 of 2 hosts (1 changed) in 0.25 s"]
    assert {h: (c.status, c.subject, c.after) for h, c in cells(d).items()} == {
        "web1": (Outcome.CHANGED, "haproxy app", "maint"), "web2": (Outcome.OK, "haproxy app", "maint")}


def test_admin_states_in_plan_mode_are_the_lbs_dry_run(tmp_path):
    reply = haproxy_reply({"web1": "maint", "web2": "maint"}, changed=["web1"], status=Status.WOULD_CHANGE)
    d = make_deploy(tmp_path, {"haproxy#disable": reply}, plan=True)
    lb.set_host(d, "lb1")
    d.narrow(facts=["hagroup=/a|b/"])
    lb.set_admin(d, "disable", None)
    assert [c[0] for c in d.session.calls] == ["haproxy#disable"] and d.session.dry_runs == [True]
    assert said(d) == ["      haproxy#disable: ok on 2 of 2 hosts (1 would change) in 0.25 s"]
    assert {h: c.status for h, c in cells(d).items()} == {"web1": Outcome.WOULD_CHANGE, "web2": Outcome.OK}


def test_server_states_of_an_lb_that_did_not_answer_are_unanswered(tmp_path):
    d = make_deploy(tmp_path, {"haproxy#status": haproxy_reply({}, status=Status.UNREACHABLE, message="lb1: refused")})
    lb.set_host(d, "lb1")
    hosts = d.inventory.group("web")[:1]
    assert lb.server_states(d, hosts, "app") == {"web1": Unanswered("unreachable", "lb1: lb1: refused")}


def test_traffic_states_combine_the_firewall_and_haproxy(tmp_path):
    replies = {"firewall#status": lambda h, a: HostResult(h.name, Status.OK, after="blocked"),
               "haproxy#status": haproxy_reply({"web1": "ready"}, op="DOWN")}
    d = make_deploy(tmp_path, replies)
    lb.set_address(d, "10.0.0.2")
    d.narrow(identities=["web1"])
    wanted = {"firewall": "blocked", "haproxy": "DOWN"}
    assert lb.traffic_states(d, until=lambda v: v == wanted) == {"web1": wanted}
    assert d.session.calls[0] == ("firewall#status", ["web1"], {"source": "10.0.0.2"})
    assert lb.admin_states(d, "app", until=lambda v: True) == {"web1": {"op": "DOWN", "admin": "ready"}}


def test_block_for_real_and_in_plan_mode(tmp_path):
    d = make_deploy(tmp_path, {"firewall#block": lambda h, a: HostResult(h.name, Status.CHANGED, "blocked",
                                                                        before="unblocked", after="blocked")})
    lb.set_address(d, "10.0.0.2")
    d.narrow(identities=["web1"])
    lb.set_blocked(d, True)
    assert cells(d)["web1"].subject == "firewall 10.0.0.2" and cells(d)["web1"].status is Outcome.CHANGED
    p = make_deploy(tmp_path, {"firewall#unblock": lambda h, a: HostResult(h.name, Status.OK, after="unblocked")},
                    plan=True)
    lb.set_address(p, "10.0.0.2")
    p.narrow(identities=["web1"])
    lb.set_blocked(p, False)
    assert said(p) == ["      firewall#unblock: ok on 1 of 1 host in 0.25 s"] and p.session.dry_runs == [True]


def test_orch_lb_finds_the_load_balancer_the_estate_names_without_class_haproxy(tmp_path):
    """No host of class haproxy, and not named lb1: `loadbalancer: {host: ...}` says which it is."""
    from orchestrator_lib.controller.deploy.loadbalancer import find_load_balancers
    from orchestrator_lib.controller.session import Session
    env = tmp_path / "estate.yaml"
    env.write_text("loadbalancer: {host: edge2, backend: www}\n"
                   "hosts: {edge2: {address: 10.0.0.2}, app1: {address: 10.0.0.3, classes: [haproxy]}}\n")
    with Session(env, audit_path=None) as session:
        assert [h.name for h in find_load_balancers(session)] == ["edge2"]
        assert [h.name for h in find_load_balancers(session, "app1")] == ["app1"]
