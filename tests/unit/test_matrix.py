"""The result matrix: cells per host x scenario x step, the recap's wording, the release gate."""
from __future__ import annotations

import json

from orchestrator_lib.controller.orchestration import HostResult, RunResult, Status
from orchestrator_lib.controller.reporting import Cell, Outcome, ResultMatrix


def run(label: str, **statuses: tuple[Status, object, object]) -> RunResult:
    """run("package#update", web1=(Status.CHANGED, "4.2.5", "4.2.6"), ...)"""
    return RunResult(label, {h: HostResult(h, s, f"{h} {s}", before=b, after=a) for h, (s, b, a) in statuses.items()}, 0.1)


def seed(matrix: ResultMatrix, *, fail_update_on: str | None = None) -> None:
    """The seed deploy's shape on two hosts: block, update, unblock."""
    matrix.start_scenario("Update the website", "Update", "features/deploy_webapp.feature")
    matrix.start_step("When", "I block the load balancer")
    matrix.record_run(run("firewall#block", web1=(Status.CHANGED, "unblocked", "blocked"),
                          web2=(Status.CHANGED, "unblocked", "blocked")), "firewall 10.231.0.2")
    matrix.end_step("passed")
    matrix.start_step("When", "I update the package mywebapp to 4.2.6")
    second = (Status.FAILED, "4.2.5", "4.2.5") if fail_update_on == "web2" else (Status.CHANGED, "4.2.5", "4.2.6")
    matrix.record_run(run("package#update", web1=(Status.CHANGED, "4.2.5", "4.2.6"), web2=second), "package mywebapp")
    if fail_update_on:
        matrix.end_step("failed", "Assertion Failed: package#update did not succeed on web2 (1 of 2 hosts):\n  web2: ...")
        matrix.start_step("When", "I unblock the load balancer")
        matrix.end_step("skipped")
        matrix.end_scenario("failed", hosts=["web1", "web2"])
        return
    matrix.end_step("passed")
    matrix.start_step("When", "I unblock the load balancer")
    matrix.record_run(run("firewall#unblock", web1=(Status.CHANGED, "blocked", "unblocked"),
                          web2=(Status.CHANGED, "blocked", "unblocked")), "firewall 10.231.0.2")
    matrix.end_step("passed")
    matrix.end_scenario("passed")


def test_a_deploy_that_passed_everywhere_passes_the_gate():
    m = ResultMatrix("local")
    seed(m)
    assert m.passed
    assert m.hosts == ["web1", "web2"]
    assert m.gate_line() == "Release gate: PASSED: 1 scenario passed on 2 hosts"


def test_a_change_undone_later_is_transient_and_the_rest_lasting():
    m = ResultMatrix("local")
    seed(m)
    recap = m.recap("web1")
    assert recap.lasting == ["package mywebapp 4.2.5 -> 4.2.6"]
    assert recap.transient == ["firewall 10.231.0.2 unblocked -> blocked -> unblocked"]
    assert recap.line() == ("web1: changed package mywebapp 4.2.5 -> 4.2.6 | "
                            "transient firewall 10.231.0.2 unblocked -> blocked -> unblocked")


def test_a_converged_host_has_no_lasting_change():
    m = ResultMatrix("local")
    m.start_scenario("s")
    m.start_step("When", "I update")
    m.record_run(run("package#update", web1=(Status.OK, "4.2.6", "4.2.6")), "package mywebapp")
    m.end_step("passed")
    m.end_scenario("passed")
    assert m.recap("web1").line() == "web1: no lasting change"
    assert m.passed


def test_a_failed_host_fails_the_gate_and_is_named_with_its_step():
    m = ResultMatrix("local")
    seed(m, fail_update_on="web2")
    assert not m.passed
    assert m.bad_hosts() == ["web2"]
    recap = m.recap("web2")
    assert recap.problems == ['FAILED at "When I update the package mywebapp to 4.2.6": web2 failed']
    assert recap.lasting == ["firewall 10.231.0.2 unblocked -> blocked"]  # left blocked
    assert recap.skipped == 1
    assert "failed on web2" in m.gate_line()
    lines = m.recap_lines()
    assert lines[0] == ('scenario "Update the website" failed: "When I update the package mywebapp to 4.2.6": '
                        'package#update did not succeed on web2 (1 of 2 hosts): web2: ...')
    assert lines[-1] == "left out of the load balancer: web1, web2 (firewall 10.231.0.2 blocked)"


def test_steps_that_never_ran_get_a_skipped_cell_for_each_targeted_host():
    m = ResultMatrix("local")
    seed(m, fail_update_on="web2")
    unblock = m.scenarios[0].steps[-1]
    assert {h: c.status for h, c in unblock.cells.items()} == {"web1": Outcome.SKIPPED, "web2": Outcome.SKIPPED}


def test_unreachable_and_not_attempted_fail_the_gate():
    for status in (Status.UNREACHABLE, Status.NOT_ATTEMPTED):
        m = ResultMatrix()
        m.start_scenario("s")
        m.start_step("When", "x")
        m.record_run(run("a#b", web1=(Status.OK, None, None), web2=(status, None, None)))
        m.end_step("passed")
        m.end_scenario("passed")
        assert not m.passed and m.bad_hosts() == ["web2"]


def test_a_failure_is_never_overwritten_by_a_later_success_in_the_same_step():
    m = ResultMatrix()
    m.start_scenario("s")
    m.start_step("When", "x")
    m.record("web1", Cell(Outcome.UNREACHABLE, "down"))
    m.record("web1", Cell(Outcome.OK))
    assert m.scenarios[0].steps[0].cells["web1"].status is Outcome.UNREACHABLE


def test_nothing_ran_or_a_setup_error_never_passes():
    assert not ResultMatrix().passed
    m = ResultMatrix(error="environments/x.yaml: unknown environment 'x'")
    assert not m.passed
    assert m.gate_line() == "Release gate: FAILED: the run could not start"
    assert m.recap_lines() == ["error: environments/x.yaml: unknown environment 'x'"]


def test_a_failed_scenario_fails_the_gate_even_with_good_cells():
    m = ResultMatrix()
    m.start_scenario("s")
    m.start_step("Given", "I expect to update 4 hosts")
    m.end_step("failed", "Assertion Failed: expected exactly 4 hosts, discovered 3: web1, web2, web3")
    m.end_scenario("failed")
    assert not m.passed
    assert m.recap_lines() == ['scenario "s" failed: "Given I expect to update 4 hosts": '
                               'expected exactly 4 hosts, discovered 3: web1, web2, web3']


def test_plan_mode_counts_what_would_change():
    m = ResultMatrix("local", plan=True)
    m.start_scenario("s")
    m.start_step("When", "I block the load balancer")
    m.record("web1", Cell(Outcome.WOULD_CHANGE, "", "firewall#block", "firewall 10.0.0.2", "unblocked", "blocked"))
    m.record("web2", Cell(Outcome.OK, "", "firewall#block", "firewall 10.0.0.2", "blocked", "blocked"))
    m.end_step("passed")
    m.start_step("When", "I unblock the load balancer")
    m.record("web1", Cell(Outcome.WOULD_CHANGE, "", "firewall#unblock", "firewall 10.0.0.2", "blocked", "unblocked"))
    m.end_step("passed")
    m.end_scenario("passed")
    assert m.passed
    assert m.recap("web1").would_change == ["firewall 10.0.0.2 unblocked -> blocked -> unblocked (transient)"]
    assert m.recap("web2").line() == "web2: no lasting change"
    assert m.gate_line() == "Plan complete: 2 changes would be made on 2 hosts; nothing was changed"


def test_json_round_trip_and_per_feature_split(tmp_path):
    m = ResultMatrix("local")
    seed(m)
    m.start_scenario("other", "Other", "features/other.feature")
    m.start_step("When", "I notify")
    m.record("notify1", Cell(Outcome.CHANGED, "sent", "notify#send"))
    m.end_step("passed")
    m.end_scenario("passed")
    path = tmp_path / "deep" / "report.json"
    m.write_json(path)
    raw = json.loads(path.read_text())
    assert raw["passed"] is True and raw["hosts"] == ["web1", "web2", "notify1"]
    assert raw["scenarios"][0]["steps"][1]["hosts"]["web1"] == {
        "status": "changed", "message": "web1 changed", "label": "package#update", "subject": "package mywebapp",
        "before": "4.2.5", "after": "4.2.6", "expected": "", "actual": "", "started": None, "duration": None,
        "batch": None}
    assert raw["recap"]["notify1"]["lasting"] == ["notify#send: sent"]
    back = ResultMatrix.read_json(path)
    assert back.to_dict() == m.to_dict()
    only = m.only("features/deploy_webapp.feature")
    assert [s.name for s in only.scenarios] == ["Update the website"] and only.hosts == ["web1", "web2"]


# ---- what the recap says about a failed step -------------------------------------------------------
def failed_then(error: str) -> ResultMatrix:
    m = ResultMatrix("local")
    m.start_scenario("s")
    m.start_step("Then", "the package version for app should be 1.1")
    m.end_step("failed", error)
    m.end_scenario("failed")
    return m


def test_a_failed_then_gives_its_reason_not_only_its_subject():
    """It used to say only "package version for app", the PyHamcrest reason's first line."""
    m = failed_then("ASSERT FAILED: package version for app\nExpected: on every host: '1.1'\n"
                    "     but: 2 of 3 hosts differ:\n          web2: expected '1.1', actual '1.0'\n"
                    "          web3: expected '1.1', actual <unreachable: gone>")
    assert m.recap_lines() == ['scenario "s" failed: "Then the package version for app should be 1.1": '
                               "package version for app: 2 of 3 hosts differ: web2: expected '1.1', actual '1.0'; "
                               "web3: expected '1.1', actual <unreachable: gone>"]
    assert m.to_dict()["scenarios"][0]["error"] == m.scenarios[0].error


def test_a_long_reason_is_cut_and_a_bug_gives_its_exception_line():
    many = "\n".join(f"          web{i}: expected '1.1', actual '1.0'" for i in range(1, 10))
    m = failed_then(f"ASSERT FAILED: v\nExpected: '1.1'\n     but: 9 of 9 hosts differ:\n{many}")
    assert m.scenarios[0].error.endswith("web3: expected '1.1', actual '1.0'; and 6 more")
    m = failed_then('Traceback (most recent call last):\n  File "x.py", line 1\nKeyError: \'addr\'')
    assert m.scenarios[0].error == '"Then the package version for app should be 1.1": KeyError: \'addr\''


# ---- hosts left out of the load balancer, interruptions -------------------------------------------------
def test_hosts_left_out_of_the_load_balancer_are_named_by_what_keeps_them_out():
    m = ResultMatrix("local")
    m.start_scenario("s")
    m.start_step("When", "I disable the hosts in the load balancer backend app")
    m.record_run(run("haproxy#disable", web1=(Status.CHANGED, "ready", "maint"), web2=(Status.OK, "maint", "maint")),
                 "haproxy app")
    m.end_step("passed")
    m.start_step("When", "I enable the hosts in the load balancer backend app")
    m.record_run(run("haproxy#enable", web1=(Status.CHANGED, "maint", "ready"), web2=(Status.FAILED, "maint", "maint")),
                 "haproxy app")
    m.end_step("failed", "Assertion Failed: haproxy#enable did not succeed on web2")
    m.end_scenario("failed")
    assert m.out_of_load_balancer() == {"haproxy app maint": ["web2"]}
    assert m.recap_lines()[-1] == "left out of the load balancer: web2 (haproxy app maint)"
    converged = ResultMatrix("local")
    seed(converged)
    assert converged.out_of_load_balancer() == {} and "left out" not in "\n".join(converged.recap_lines())


def test_an_interrupted_run_fails_the_gate_and_says_where_it_stopped(tmp_path):
    m = ResultMatrix("local")
    seed(m)
    m.interrupt('at "When I update the package mywebapp to 4.2.6"')
    m.interrupt("after the last scenario")   # the first place counts
    assert not m.passed
    assert m.gate_line() == 'Release gate: FAILED: interrupted at "When I update the package mywebapp to 4.2.6"'
    assert m.recap_lines()[0] == ('interrupted at "When I update the package mywebapp to 4.2.6": the run stopped '
                                  'there; what that step had started on hosts was abandoned, its outcome unknown')
    m.write_json(tmp_path / "r.json")
    back = ResultMatrix.read_json(tmp_path / "r.json")
    assert back.interrupted == m.interrupted and back.to_dict()["passed"] is False
    assert m.only("features/deploy_webapp.feature").interrupted == m.interrupted
    assert ResultMatrix(interrupted="before the first scenario").gate_line() == \
        "Release gate: FAILED: interrupted before the first scenario"


def test_a_failed_gate_always_says_why_in_plan_mode_too():
    """A plan with nothing run said "Plan INCOMPLETE" without a reason; all scenarios skipped
    said "Release gate: FAILED: " with none."""
    assert ResultMatrix(plan=True).gate_line() == \
        "Plan INCOMPLETE: 0 changes would be made on 0 hosts; nothing was changed (no scenario ran)"
    m = ResultMatrix()
    m.start_scenario("s")
    m.end_scenario("skipped", "@fail_fast: an earlier scenario of this feature failed")
    assert m.gate_line() == "Release gate: FAILED: no scenario passed"
