"""orchestrator_lib.controller.deploy.operations without a lab: packages, app revisions, services, health
readings and notifications, for real and in plan mode, against scripted agent replies."""
from __future__ import annotations

import pytest

from orchestrator_lib.controller.deploy import DeployError, StepOptions, Unanswered
from orchestrator_lib.controller.deploy import operations as ops
from orchestrator_lib.controller.errors import OrchestratorError
from orchestrator_lib.controller.orchestration import HostResult, Status
from orchestrator_lib.controller.reporting import Outcome

from tests.unit.test_deploy_fakes import BARE, cells, make_deploy, said

NEWEST = {"web1": "1.1", "web2": "1.2"}


def package_status(versions: dict[str, str]):
    return lambda host, args: HostResult(host.name, Status.OK, "", data={"version": versions[host.name]})


def two_hosts(d):
    d.narrow(identities=["web1", "web2"])
    return d


# ---- packages -------------------------------------------------------------------------------------------
def test_update_to_a_version_and_remember_it_for_messages(tmp_path):
    d = two_hosts(make_deploy(tmp_path, {"package#update": lambda h, a: HostResult(
        h.name, Status.CHANGED, "", before="1.0", after=a["version"], data={"version": a["version"]})}))
    ops.update_package(d, "app", "1.1", StepOptions("1", 2))
    assert d.session.calls == [("package#update", ["web1", "web2"], {"name": "app", "version": "1.1"})]
    assert d.scenario.facts["version"] == "1.1" and cells(d)["web2"].subject == "package app"


def test_update_to_the_newest_remembers_the_version_the_hosts_got(tmp_path):
    d = two_hosts(make_deploy(tmp_path, {"package#update": lambda h, a: HostResult(
        h.name, Status.CHANGED, "", data={"version": NEWEST[h.name]})}))
    ops.update_package(d, "app", None, StepOptions())
    assert d.session.calls[0][2] == {"name": "app"} and d.scenario.facts["version"] == "several versions"


def test_plan_update_is_the_hosts_dry_run(tmp_path):
    """The hosts decide what would change (package#update, dry): the version the plan speaks of
    is the one they would install."""
    current = {"web1": "1.0", "web2": "1.1"}
    d = two_hosts(make_deploy(tmp_path, {"package#update": lambda h, a: HostResult(
        h.name, Status.WOULD_CHANGE if current[h.name] != "1.1" else Status.OK, "", before=current[h.name],
        after="1.1", data={"version": "1.1"})}, plan=True))
    ops.update_package(d, "app", None, StepOptions())
    assert d.session.calls == [("package#update", ["web1", "web2"], {"name": "app"})] and d.session.dry_runs == [True]
    assert said(d) == ["      package#update: ok on 2 of 2 hosts (1 would change) in 0.25 s"]
    assert (cells(d)["web1"].status, cells(d)["web1"].after) == (Outcome.WOULD_CHANGE, "1.1")
    assert d.scenario.facts["version"] == "1.1"


@pytest.mark.parametrize("options, error", [
    (StepOptions("0"), r"^batch_size '0': expected a positive count"),
    (StepOptions("abc"), r"^batch_size 'abc': expected a positive count"),
    (StepOptions(tries=0), r"^tries '0': expected a whole number from 1 to 100$"),
    (StepOptions(None, 2, ("with 2 tries", "with 3 tries")),
     r"^an option given more than once: 'with 2 tries', 'with 3 tries' \(say each option once\)$")])
@pytest.mark.parametrize("plan", [False, True])
def test_plan_and_real_run_refuse_the_same_options_before_asking_any_host(tmp_path, options, error, plan):
    """Plan mode used to say "would change" for `in batches of 0` or `with 0 tries`."""
    d = two_hosts(make_deploy(tmp_path, plan=plan))
    for verb in (lambda: ops.update_package(d, "app", "1.1", options),
                 lambda: ops.update_package(d, "app", None, options),
                 lambda: ops.deploy_app(d, "app", "1.1", options),
                 lambda: ops.service_action(d, "nginx", "restart", options),
                 lambda: ops.restart_unless_reporting(d, "app", 8080, "version", "1.1", options)):
        with pytest.raises(OrchestratorError, match=error):
            verb()
    assert d.session.calls == []


def test_package_versions_and_the_report_of_them(tmp_path):
    d = two_hosts(make_deploy(tmp_path, {"package#status": package_status({"web1": "1.0", "web2": "1.0"})}))
    assert ops.package_versions(d, "app") == {"web1": "1.0", "web2": "1.0"}
    ops.report_versions(d, "app")
    assert said(d)[-1] == "      Summary of version: 1.0 = 2"


# ---- app revisions --------------------------------------------------------------------------------------
def test_app_state_in_words_and_the_deploy_cell():
    assert ops._app_state({"package": "1.1", "running": "1.1"}) == "1.1"
    assert ops._app_state({"package": "1.1", "running": "1.0"}) == "package 1.1, running 1.0"
    assert ops._app_state(None) is None
    result = HostResult("web1", Status.CHANGED, "deployed", before={"package": "1.0", "running": "1.0"},
                        after={"package": "1.1", "running": "1.1"}, data={"app": "app"})
    cell = ops._app_cell(result)
    assert (cell.status, cell.label, cell.subject, cell.before, cell.after) == \
        (Outcome.CHANGED, "appmgr#deploy", "app app", "1.0", "1.1")


# ---- services -------------------------------------------------------------------------------------------
def test_restart_only_where_the_health_check_does_not_report_the_value(tmp_path):
    reports = {"web1": "1.1", "web2": "1.0"}

    def health(h, a):
        seen = reports[h.name]
        return HostResult(h.name, Status.OK if seen == a["expect"] else Status.FAILED, "", data={"last": {"version": seen}})
    d = two_hosts(make_deploy(tmp_path, {"health#http": health,
                                         "service#restart": lambda h, a: HostResult(h.name, Status.CHANGED, "")}))
    ops.restart_unless_reporting(d, "app", 8080, "version", "1.1", StepOptions())
    assert said(d)[0] == "      1 of 2 hosts do not report version 1.1 on port 8080: web2"
    assert d.session.calls[-1] == ("service#restart", ["web2"], {"name": "app", "wait": 30.0})
    assert (cells(d)["web1"].status, cells(d)["web1"].message) == (Outcome.OK, "already reports version 1.1")
    assert (cells(d)["web2"].before, cells(d)["web2"].after) == ("running version 1.0", "restarted")
    reports["web2"] = "1.1"
    ops.restart_unless_reporting(d, "app", 8080, "version", "1.1", StepOptions())
    assert said(d)[-1] == "      service#restart: not needed, every host reports version 1.1 on port 8080"


def test_restart_unless_reporting_fails_on_hosts_that_gave_no_reading(tmp_path):
    d = two_hosts(make_deploy(tmp_path, {"health#http": lambda h, a: HostResult(h.name, Status.UNREACHABLE, "gone")}))
    with pytest.raises(DeployError, match=r"^health#http did not succeed on web1, web2 \(2 of 2 hosts\)"):
        ops.restart_unless_reporting(d, "app", 8080, "version", "1.1", StepOptions())
    assert not any(c[0] == "service#restart" for c in d.session.calls)


def test_service_wait_bounds_every_hosts_wait_for_a_service_or_a_deployed_revision_to_be_ready(tmp_path):
    d = two_hosts(make_deploy(tmp_path, service_wait=5.0))
    ops.service_action(d, "app", "restart", StepOptions())
    ops.service_action(d, "app", "stop", StepOptions())
    ops.deploy_app(d, "app", "1.1", StepOptions())
    asked = [(label, args) for label, _, args in d.session.calls if label.split("#")[0] in ("service", "appmgr")]
    assert asked == [("service#restart", {"name": "app", "wait": 5.0}), ("service#stop", {"name": "app", "wait": 5.0}),
                     ("appmgr#deploy", {"app": "app", "revision": "1.1", "wait": 5.0})]


def test_plan_service_actions_are_dry_runs(tmp_path):
    d = two_hosts(make_deploy(tmp_path, {"service#reload": lambda h, a: HostResult(
        h.name, Status.WOULD_CHANGE, before="running", after="running")}, plan=True))
    ops.service_action(d, "nginx", "reload", StepOptions())
    assert d.session.dry_runs == [True] and cells(d)["web1"].after == "reloaded"


# ---- health -------------------------------------------------------------------------------------------------
def test_the_last_reading_of_a_check_even_a_failed_one():
    assert ops._last(HostResult("w", Status.FAILED, data={"last": {"status": 200, "version": "1"}}), "status", "version") \
        == {"status": 200, "version": "1"}
    assert ops._last(HostResult("w", Status.FAILED, data={"last": {"status": None, "error": "refused"}}), "status") \
        == {"status": None, "error": "refused"}
    assert ops._last(HostResult("w", Status.UNREACHABLE, "gone"), "status") == Unanswered("unreachable", "gone")


def test_health_and_load_readings_and_the_url(tmp_path):
    d = two_hosts(make_deploy(tmp_path, {
        "health#http": lambda h, a: HostResult(h.name, Status.OK, data={"last": {"status": 200, "version": "1"}}),
        "health#load": lambda h, a: HostResult(h.name, Status.OK if h.name == "web1" else Status.UNREACHABLE, "x",
                                               data={"last": {"load1": 0.5}} if h.name == "web1" else {})},
        health_path="/status"))
    assert d.settings.health_url(8080) == "http://127.0.0.1:8080/status"
    assert ops.health_reports(d, 8080, "version", "1", 5) == {h: {"status": 200, "version": "1"} for h in ("web1", "web2")}
    assert d.session.calls[-1][2]["deadline"] == 5
    assert ops.health_passes(d, 8080, 5) == {h: {"status": 200} for h in ("web1", "web2")}
    assert ops.load_averages(d, 2, 5) == {"web1": 0.5, "web2": Unanswered("unreachable", "x")}


# ---- notifications --------------------------------------------------------------------------------------
def test_notify_fails_over_to_the_next_notification_host(tmp_path):
    d = two_hosts(make_deploy(tmp_path, {"notify#send": lambda h, a: HostResult(
        h.name, Status.CHANGED if h.name == "notify2" else Status.FAILED, "sent" if h.name == "notify2" else "503")}))
    d.scenario.facts["version"] = "1.1"
    ops.notify(d, "ops@example.com", "updated {count} hosts to {version}")
    assert [c[1] for c in d.session.calls] == [["notify1"], ["notify2"]]
    assert d.session.calls[1][2] == {"recipient": "ops@example.com", "message": "updated 2 hosts to 1.1",
                                     "webhook": "http://10.0.0.22:8025/notify"}
    assert said(d)[0] == "      notify1 could not notify (failed: 503); trying the next host"
    assert said(d)[-1] == "      ops@example.com notified through notify2: updated 2 hosts to 1.1"


def test_notify_when_no_host_delivers_in_plan_mode_and_without_notification_hosts(tmp_path):
    d = two_hosts(make_deploy(tmp_path, {"notify#send": lambda h, a: HostResult(h.name, Status.UNREACHABLE, "gone")}))
    with pytest.raises(DeployError, match=r"^no notification host could notify ops: notify1: unreachable: gone; notify2"):
        ops.notify(d, "ops", "hi")
    p = two_hosts(make_deploy(tmp_path, {"notify#send": lambda h, a: HostResult(h.name, Status.WOULD_CHANGE)}, plan=True))
    ops.notify(p, "ops", "hi {count}")
    assert said(p)[-1] == "      ops would be notified through notify1: hi 2" and p.session.dry_runs == [True]
    assert [h.name for h in ops.notification_hosts(make_deploy(tmp_path, notify_group="web"))] == ["web1", "web2", "web3"]
    with pytest.raises(DeployError, match=r"^unit.yaml has no notification host \(no group 'notify', no host"):
        ops.notification_hosts(make_deploy(tmp_path, text=BARE))
