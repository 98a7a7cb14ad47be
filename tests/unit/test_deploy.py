"""orchestrator_lib.controller.deploy.run without a lab: plan mode's arithmetic, message filling, how a Then
and a When are recorded in the result matrix, waiting, and which hosts a scenario targets."""
from __future__ import annotations

import pytest

from orchestrator_lib.controller.deploy import DeployError, Settings, Unanswered
from orchestrator_lib.controller.orchestration import RunOptions
from orchestrator_lib.controller.deploy.run import failure_text, fill_message, values_of
from orchestrator_lib.controller.discovery import CountContract
from orchestrator_lib.controller.errors import DiscoveryError, FilterError, InventoryError, OrchestratorError
from orchestrator_lib.controller.orchestration import HostResult, RunResult, Status
from orchestrator_lib.controller.reporting import Cell, Outcome

from tests.unit.test_deploy_fakes import cells, make_deploy, said

DOWN = Unanswered("unreachable", "web3: connection refused")


# ---- plan mode ------------------------------------------------------------------------------------------
def dry(label, **hosts):
    """A dry run's answer: host=(status, before, after)."""
    return RunResult(label, {h: HostResult(h, s, "m", before=b, after=a) for h, (s, b, a) in hosts.items()}, 0.1)


def test_plan_mode_sends_dry_runs_and_records_what_the_hosts_say(tmp_path):
    d = make_deploy(tmp_path, plan=True)
    d.act(d.inventory.group("web")[:2], "firewall", "block", {"source": "10.0.0.2"}, subject="firewall 10.0.0.2")
    assert d.session.dry_runs == [True]
    assert make_deploy(tmp_path).act(d.inventory.group("web")[:1], "rpcutil", "ping").ok
    assert d.session.dry_runs == [True]


def test_a_plan_starts_from_what_an_earlier_planned_step_would_have_left(tmp_path):
    """block then unblock in plan mode: the hosts are still unblocked, yet the unblock would change too."""
    d = make_deploy(tmp_path, plan=True)
    d.conclude(dry("firewall#block", web1=(Status.WOULD_CHANGE, "unblocked", "blocked"),
                   web2=(Status.OK, "blocked", "blocked")), "firewall 10.0.0.2")
    assert d.scenario.planned == {("web1", "firewall 10.0.0.2"): "blocked"}
    assert {h: c.status for h, c in cells(d).items()} == {"web1": Outcome.WOULD_CHANGE, "web2": Outcome.OK}
    run = d.conclude(dry("firewall#unblock", web1=(Status.OK, "unblocked", "unblocked"),
                         web2=(Status.WOULD_CHANGE, "blocked", "unblocked")), "firewall 10.0.0.2")
    assert {h: (r.status, r.before, r.after) for h, r in run.results.items()} == {
        "web1": (Status.WOULD_CHANGE, "blocked", "unblocked"), "web2": (Status.WOULD_CHANGE, "blocked", "unblocked")}
    assert said(d)[-1].startswith("      firewall#unblock: ok on 2 of 2 hosts (2 would change)")


def test_a_plan_step_without_an_answer_from_some_host_fails_after_recording(tmp_path):
    d = make_deploy(tmp_path, plan=True)
    with pytest.raises(DeployError, match=r"web3: unreachable"):
        d.conclude(dry("package#update", web1=(Status.WOULD_CHANGE, "1.0", "1.1"), web3=(Status.UNREACHABLE, None, None)),
                   "package app")
    assert cells(d)["web3"].status is Outcome.UNREACHABLE


def test_plan_skips_checks_and_says_so(tmp_path):
    d = make_deploy(tmp_path, plan=True)
    assert d.plan_skips_check("service nginx running") is True
    assert said(d) == ["      plan: not checked (service nginx running)"]
    assert make_deploy(tmp_path).plan_skips_check("x") is False


# ---- messages -------------------------------------------------------------------------------------------
def test_fill_message_and_its_one_line_errors():
    facts = {"count": "4", "version": "2.0"}
    assert fill_message("updated {count} hosts to {version}", facts) == "updated 4 hosts to 2.0"
    with pytest.raises(DeployError, match=r"^unknown placeholder \{nope\} in 'x \{nope\}' \(known: count, version\)$"):
        fill_message("x {nope}", facts)
    with pytest.raises(DeployError, match=r"^bad message template 'x \{0': expected '\}' before end of string$"):
        fill_message("x {0", facts)


def test_message_facts_name_the_hosts_the_run_and_what_steps_added(tmp_path):
    d = make_deploy(tmp_path)
    d.narrow(classes=["roles::web"])
    d.scenario.facts["version"] = "2.0"
    assert d.fill("{count} {hosts} {env} {feature}/{scenario} {version}") == "3 web1, web2, web3 unit f/s 2.0"


# ---- acting and checking --------------------------------------------------------------------------------
def result(host: str, status: Status, message: str = "", **data) -> HostResult:
    return HostResult(host, status, message, data=data)


def test_values_of_and_failure_text_name_the_hosts_that_did_not_answer():
    run = RunResult("package#status", {"web1": result("web1", Status.OK, version="1.0"),
                                       "web2": result("web2", Status.UNREACHABLE, "web2: refused"),
                                       "web3": result("web3", Status.FAILED, "no such package")}, 0.1)
    assert values_of(run, lambda r: r.data["version"]) == {
        "web1": "1.0", "web2": Unanswered("unreachable", "web2: refused"), "web3": Unanswered("failed", "no such package")}
    assert failure_text(run) == ("package#status did not succeed on web2, web3 (2 of 3 hosts):\n"
                                 "  web2: unreachable: web2: refused\n  web3: failed: no such package")
    assert repr(Unanswered("failed", "")) == "<failed>"


def test_act_records_every_host_says_the_tally_and_fails_naming_the_hosts(tmp_path):
    bad = {"service#restart": lambda h, a: result(h.name, Status.FAILED if h.name == "web2" else Status.CHANGED, "boom")}
    d = make_deploy(tmp_path, bad)
    d.narrow(facts=["hagroup=/a|b/"])
    with pytest.raises(DeployError) as failed:
        d.act(d.hosts(), "service", "restart", {"name": "nginx"}, subject="service nginx", options=RunOptions(batch_size=1, tries=2))
    assert str(failed.value) == "service#restart did not succeed on web2 (1 of 2 hosts):\n  web2: failed: boom"
    assert said(d)[0].startswith("      service#restart: ok on 1 of 2 hosts (1 changed), failed on 1 (web2)")
    assert {h: (c.status, c.subject) for h, c in cells(d).items()} == {
        "web1": (Outcome.CHANGED, "service nginx"), "web2": (Outcome.FAILED, "service nginx")}


def test_record_check_writes_ok_failed_and_unanswered_cells(tmp_path):
    d = make_deploy(tmp_path)
    d.record_check({"web1": "2.0", "web2": "1.0", "web3": DOWN}, lambda v: v == "2.0", "'2.0'",
                   "package version for app", "package#status")
    assert cells(d) == {
        "web1": Cell(Outcome.OK, "package version for app: 2.0", "package#status", expected="'2.0'", actual="'2.0'"),
        "web2": Cell(Outcome.FAILED, "package version for app: expected '2.0', actual '1.0'", "package#status",
                     expected="'2.0'", actual="'1.0'"),
        "web3": Cell(Outcome.UNREACHABLE, "web3: connection refused", "package#status")}


def test_wait_for_stops_as_soon_as_every_host_is_as_wanted(tmp_path):
    d = make_deploy(tmp_path)
    readings = iter([{"web1": "UP", "web2": "DOWN"}, {"web1": "DOWN", "web2": "DOWN"}, {"web1": "UP", "web2": "UP"}])
    assert d.wait_for(lambda: next(readings), lambda v: v == "DOWN", 5, interval=0) == {"web1": "DOWN", "web2": "DOWN"}


def test_wait_for_gives_the_last_reading_when_time_is_up_and_never_passes_nothing(tmp_path):
    d = make_deploy(tmp_path)
    reads = []
    assert d.wait_for(lambda: reads.append(1) or {"web1": "UP"}, lambda v: v == "DOWN", 0) == {"web1": "UP"}
    assert d.wait_for(lambda: {}, lambda v: True, 0.05, interval=0.01) == {} and len(reads) == 1


# ---- which hosts ----------------------------------------------------------------------------------------
def test_filters_add_up_and_a_bad_one_fails_where_it_is_written(tmp_path):
    d = make_deploy(tmp_path)
    d.narrow(classes=["roles::web"])
    d.narrow(compounds=["not hagroup=c"])
    assert [h.name for h in d.hosts()] == ["web1", "web2"]
    with pytest.raises(FilterError):
        d.narrow(facts=["hagroup"])


def test_no_filter_no_match_a_group_and_a_count_contract(tmp_path):
    d = make_deploy(tmp_path)
    with pytest.raises(DiscoveryError, match="^no hosts chosen: start the scenario with"):
        d.hosts()
    d.narrow_to_group("web")
    assert [h.name for h in d.hosts()] == ["web1", "web2", "web3"]
    d.scenario.target.contract = CountContract.exactly(2)
    with pytest.raises(DiscoveryError, match="expected exactly 2 hosts, discovered 3"):
        d.hosts()
    with pytest.raises(InventoryError, match="unknown group 'nope'"):
        d.narrow_to_group("nope")
    d = make_deploy(tmp_path)
    d.narrow(facts=["hagroup=z"])
    with pytest.raises(DeployError, match=r"^no host matches -W hagroup=z in unit.yaml$"):
        d.hosts()


def test_pre_discovery_pings_records_pins_and_says_what_it_found(tmp_path):
    d = make_deploy(tmp_path)
    d.narrow(facts=["hagroup=/a|b/"])
    assert [h.name for h in d.pre_discover(None)] == ["web1", "web2"]
    assert said(d)[0].startswith("      rpcutil#ping: ok on 2 of 2 hosts")
    assert said(d)[1] == "      discovered 2 hosts: web1, web2"
    assert set(cells(d)) == {"web1", "web2"} and d.scenario.target.contract == CountContract.exactly(2)
    d.session.replies["rpcutil#ping"] = lambda h, a: result(h.name, Status.UNREACHABLE, "gone")
    assert [h.name for h in d.hosts()] == ["web1", "web2"]   # pinned: no second discovery
    d.narrow(facts=["hagroup=a"])                           # a new filter unpins; the count still holds
    with pytest.raises(DiscoveryError, match="expected exactly 2 hosts, discovered 1: web1"):
        d.hosts()


def test_pre_discovery_fails_by_name_and_still_records_the_ping(tmp_path):
    down = {"rpcutil#ping": lambda h, a: result(h.name, Status.UNREACHABLE if h.name == "web2" else Status.OK,
                                                 "web2: unreachable")}
    d = make_deploy(tmp_path, down)
    d.narrow(classes=["roles::web"])
    with pytest.raises(DiscoveryError, match=r"^1 of 3 discovered hosts did not answer: web2: unreachable$"):
        d.pre_discover(None)
    assert cells(d)["web2"].status is Outcome.UNREACHABLE and d.scenario.target.pinned is None


def test_pre_discovery_pings_the_load_balancer_in_the_same_round_and_names_it_when_silent(tmp_path):
    from orchestrator_lib.controller.deploy import loadbalancer
    d = make_deploy(tmp_path)
    loadbalancer.set_host(d, "lb1")
    d.narrow(classes=["roles::web"])
    assert [h.name for h in d.pre_discover(None)] == ["web1", "web2", "web3"]
    assert d.session.calls == [("rpcutil#ping", ["web1", "web2", "web3", "lb1"], {})]
    assert d.scenario.target.contract == CountContract.exactly(3), "the LB is not one of the hosts"
    silent_lb = {"rpcutil#ping": lambda h, a: result(h.name, Status.UNREACHABLE if h.name == "lb1" else Status.OK,
                                                      "lb1: unreachable at 10.0.0.2:22")}
    d = make_deploy(tmp_path, silent_lb)
    loadbalancer.set_host(d, "lb1")
    d.narrow(classes=["roles::web"])
    with pytest.raises(DeployError, match=r"^the load balancer lb1 did not answer: lb1: unreachable"):
        d.pre_discover(None)
    assert cells(d)["lb1"].status is Outcome.UNREACHABLE and d.scenario.target.pinned is None


def test_pre_discovery_of_the_load_balancer_itself_pings_it_once(tmp_path):
    from orchestrator_lib.controller.deploy import loadbalancer
    d = make_deploy(tmp_path)
    loadbalancer.set_host(d, "lb1")
    d.narrow(classes=["haproxy"])
    assert [h.name for h in d.pre_discover(None)] == ["lb1"]
    assert d.session.calls == [("rpcutil#ping", ["lb1"], {})]


# ---- settings -------------------------------------------------------------------------------------------
class UserData(dict):
    """behave's userdata: a dict with getbool / getfloat."""

    def getbool(self, name, default=False):
        value = self.get(name, default)
        if isinstance(value, bool):
            return value
        if value.lower() in ("true", "yes", "on", "1"):
            return True
        if value.lower() in ("false", "no", "off", "0"):
            return False
        raise ValueError(f"{name}={value}: not a boolean")

    def getfloat(self, name, default=0.0):
        return float(self.get(name, default))


def test_settings_from_userdata_and_the_report_they_name():
    s = Settings.from_userdata(UserData(env="prod", plan="true", lb_wait="2.5", backend="www"))
    assert (s.env, s.plan, s.lb_wait, s.backend, s.lab) == ("prod", True, 2.5, "www", "keep")
    assert s.report_template == "reports/plan-{feature}.json"
    assert Settings.from_userdata(UserData()).report_template == "reports/deploy-{feature}.json"
    assert Settings(report="out.json").report_template == "out.json"
    with pytest.raises(OrchestratorError, match=r"^-D lab=up: expected one of keep, down$"):
        Settings.from_userdata(UserData(lab="up"))
    with pytest.raises(OrchestratorError, match=r"^-D lb_wait=soon: expected a number of seconds, 0 or more$"):
        Settings.from_userdata(UserData(lb_wait="soon"))


def error_of(**userdata: str) -> str:
    with pytest.raises(OrchestratorError) as failed:
        Settings.from_userdata(UserData(**userdata))
    return str(failed.value)


KNOWN = "(known: env, lab, plan, report, report_html, lint, backend, lb_wait, service_wait, health_path, notify_group, notify_webhook, seed, resume, safeguards, lease_ttl, transport)"


def test_an_unknown_option_is_refused_with_a_did_you_mean_not_ignored():
    """`-D paln` used to run the real deploy, `-D evn=prod` to deploy to local."""
    assert error_of(paln="true") == f"-D paln: unknown option 'paln' (did you mean 'plan'?) {KNOWN}"
    assert error_of(evn="prod") == f"-D evn: unknown option 'evn' (did you mean 'env'?) {KNOWN}"
    assert error_of(colour="red") == f"-D colour: unknown option 'colour' {KNOWN}"


@pytest.mark.parametrize("value", ["-5", "inf", "nan", "-inf", "soon"])
def test_lb_wait_is_a_finite_number_of_seconds(value):
    assert error_of(lb_wait=value).startswith(f"-D lb_wait={value.replace('-5', '-5.0')}: expected a number of seconds")
    assert Settings.from_userdata(UserData(lb_wait="0")).lb_wait == 0


@pytest.mark.parametrize("value", ["0", "0.5", "601", "inf", "nan", "soon"])
def test_service_wait_is_a_number_of_seconds_a_service_agent_accepts(value):
    assert error_of(service_wait=value).startswith(f"-D service_wait=")
    assert "expected a number of seconds" in error_of(service_wait=value)


def test_service_wait_defaults_to_30_seconds_and_takes_a_shorter_or_longer_bound():
    assert Settings.from_userdata(UserData()).service_wait == 30
    assert Settings.from_userdata(UserData(service_wait="5")).service_wait == 5
    assert Settings.from_userdata(UserData(service_wait="600")).service_wait == 600


def test_bad_values_are_one_line_naming_the_option():
    assert error_of(plan="maybe") == "-D plan=maybe: expected true or false"
    assert error_of(env="") == "-D env=: expected a value (default: local)"
    assert error_of(health_path="health").startswith("-D health_path='health': expected a URL path starting with /")


def test_the_notify_webhook_template_is_checked_before_any_host_is_touched():
    """A wrong field used to be a KeyError traceback in the notify step, after the deploy."""
    assert error_of(notify_webhook="http://{addr}:8025/notify") == (
        "-D notify_webhook=http://{addr}:8025/notify: unknown field {addr} (did you mean 'address'?) "
        "(known: {address}, {name})")
    assert error_of(notify_webhook="http://{0}/n").startswith("-D notify_webhook=http://{0}/n: unknown field {0}")
    assert error_of(notify_webhook="http://{address.x}/n").startswith("-D notify_webhook=http://{address.x}/n: unknown field")
    assert error_of(notify_webhook="http://{address/n") == \
        "-D notify_webhook=http://{address/n: bad template: expected '}' before end of string"
    assert error_of(notify_webhook="http://{address:d}/n").startswith("-D notify_webhook=http://{address:d}/n: bad template:")
    good = Settings.from_userdata(UserData(notify_webhook="https://{name}.example:8443/{address}/hook"))
    from orchestrator_lib.controller.inventory import Host
    assert good.webhook(Host("n1", "10.0.0.5")) == "https://n1.example:8443/10.0.0.5/hook"
    with pytest.raises(OrchestratorError, match="unknown field {addr}"):
        Settings(notify_webhook="{addr}")


def test_the_report_path_is_checked_before_any_host_is_touched(tmp_path, monkeypatch):
    """A directory used to be an IsADirectoryError HOOK-ERROR after the deploy, with no recap."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "reports").mkdir()
    (tmp_path / "file").write_text("")
    assert error_of(report="reports") == \
        "-D report=reports: reports is a directory; expected a file, e.g. reports/deploy-{feature}.json"
    assert error_of(report="missing/") == \
        "-D report=missing/: names a directory; expected a file, e.g. missing/deploy-{feature}.json"
    assert error_of(report="file/x.json") == f"-D report=file/x.json: {tmp_path / 'file'} is not a directory"
    assert error_of(report="r-{feat}.json").startswith("-D report=r-{feat}.json: unknown field {feat} (did you mean 'feature'?)")
    assert Settings.from_userdata(UserData(report="new/dir/{feature}.json")).report == "new/dir/{feature}.json"


def test_ctrl_c_during_a_when_records_each_hosts_part_before_it_goes_on_up(tmp_path):
    """Session.call raises Interrupted with what finished, what was still running and what never
    started; the matrix gets them, so the recap names the hosts whose outcome is unknown."""
    from orchestrator_lib.controller.session import Interrupted
    d = make_deploy(tmp_path)
    d.narrow(classes=["roles::web"])
    partial = RunResult("package#update", {
        "web1": HostResult("web1", Status.CHANGED, "updated", before="1.0", after="1.1"),
        "web2": HostResult("web2", Status.FAILED, "interrupted while running: outcome unknown"),
        "web3": HostResult("web3", Status.NOT_ATTEMPTED, "interrupted")}, 0.5)

    def interrupted(*args, **kwargs):
        raise Interrupted(partial, ["web2"])
    d.session.call = interrupted
    with pytest.raises(KeyboardInterrupt):
        d.act(d.hosts(), "package", "update", {"name": "app"}, subject="package app")
    assert {h: (c.status, c.subject, c.message) for h, c in cells(d).items()} == {
        "web1": (Outcome.CHANGED, "package app", "updated"),
        "web2": (Outcome.FAILED, "package app", "interrupted while running: outcome unknown"),
        "web3": (Outcome.NOT_ATTEMPTED, "package app", "interrupted")}
    assert said(d)[-1].startswith("      package#update: ok on 1 of 3 hosts (1 changed)")
