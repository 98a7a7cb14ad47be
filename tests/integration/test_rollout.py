"""The rollout policy against the lab (issue 16's acceptance): one failure budget over the batches
(hosts made bad with the broken release 4.2.7-1.el5: a later update to 4.2.6-3.el5 would be a
downgrade, which the package agent refuses), stratified canaries replayed from the seed, and an
analysis that gets no answer from a host pausing the rollout with its own exit code."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from orchestrator_lib.controller.deploy.rollout import PAUSED_EXIT
from orchestrator_lib.controller.inventory import load_inventory
from orchestrator_lib.controller.reporting import Outcome, ResultMatrix

from tests.integration.test_features import NEW, OLD, ROOT, Done, version

BROKEN = "4.2.7-1.el5"


def behave_ci(tmp_path: Path, name: str, text: str, *args: str, report: str | None = None) -> Done:
    """behave as CI runs it: no terminal (stdin closed, CI set), the report where the test says."""
    feature = tmp_path / f"{name}.feature"
    feature.write_text(text)
    report_path = tmp_path / f"{report or name}.json"
    # -D lint=off: these features are minimal on purpose (a policy and one When), not release specs
    done = subprocess.run([sys.executable, "-m", "behave", "features/", str(feature), "--include", name, *args,
                           "-D", "lint=off", "-D", f"report={report_path}"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL, env={**os.environ, "CI": "1"})
    matrix = ResultMatrix.read_json(report_path) if report_path.exists() else None
    return Done(done.returncode, done.stdout + done.stderr, matrix)


BUDGET = """\
@batch(2) @max_fail({max_fail})
Feature: budget
  Scenario: update eight hosts two at a time
    Given I want to update hosts named web1, web2, web3, web4, web5, web6, web7, web8
    When I update the package mywebapp to {new}
"""


def statuses(done: Done) -> dict[str, Outcome]:
    return {h: c.status for h, c in done.step("I update the package").cells.items()}


def test_one_failure_budget_over_the_batches(fresh_lab, tmp_path):
    for host in ("web2", "web5"):                       # bad hosts in batches 1 and 3
        fresh_lab.exec_in(host, ["apt-get", "install", "-y", f"mywebapp={BROKEN}"])
    one = behave_ci(tmp_path, "budget", BUDGET.format(max_fail=1, new=NEW), report="one")
    assert one.rc != 0 and "Traceback" not in one.out, one.out
    assert "rollout stopped after batch 3 of 4: failure budget exceeded: 2 hosts failed, 1 allowed" in one.out
    got = statuses(one)
    assert [h for h, s in got.items() if s is Outcome.FAILED] == ["web2", "web5"]
    assert [h for h, s in got.items() if s is Outcome.NOT_ATTEMPTED] == ["web7", "web8"]
    assert [version(fresh_lab, h) for h in ("web1", "web4", "web6", "web7", "web8")] == [NEW, NEW, NEW, OLD, OLD]
    assert one.matrix.scenarios[0].rollout["budget"] | {"failed": None} == {
        "max_fail": "1", "total": 8, "allowed": 1, "used": 2, "exceeded": True, "failed": None}

    zero = behave_ci(tmp_path, "budget", BUDGET.format(max_fail=0, new=NEW), report="zero")
    assert zero.rc != 0 and "rollout stopped after batch 1 of 4: failure budget exceeded" in zero.out, zero.out
    assert [h for h, s in statuses(zero).items() if s is Outcome.NOT_ATTEMPTED] == [f"web{i}" for i in range(3, 9)]


def test_a_host_that_does_not_answer_is_charged_to_the_budget_before_any_change(fresh_lab, tmp_path):
    """web2 is down: @max_fail(1) takes it (charged at the deploy lock, left out of the scenario)
    and the others are updated; @max_fail(0) refuses the run before anything is changed."""
    fresh_lab.stop_host("web2")
    try:
        one = behave_ci(tmp_path, "budget", BUDGET.format(max_fail=1, new=NEW), report="down-one")
        assert one.rc != 0 and "Traceback" not in one.out, one.out  # web2 never got the release
        assert "web2 did not answer: charged to the failure budget (1 of 1 used)" in one.out, one.out
        assert statuses(one)["web2"] is Outcome.UNREACHABLE
        assert all(version(fresh_lab, f"web{i}") == NEW for i in (1, 3, 4, 5, 6, 7, 8))
        assert one.matrix.scenarios[0].rollout["budget"]["used"] == 1

        fresh_lab.reset_changed()
        fresh_lab.stop_host("web2")
        zero = behave_ci(tmp_path, "budget", BUDGET.format(max_fail=0, new=NEW), report="down-zero")
        assert zero.rc != 0 and "web2 did not answer" in zero.out and "nothing was changed" in zero.out, zero.out
        assert all(version(fresh_lab, f"web{i}") == OLD for i in (1, 3, 4, 5, 6, 7, 8))
    finally:
        fresh_lab.start_host("web2")


CANARY = """\
Feature: canary
  @canary(by=hagroup) @batch(50%)
  Scenario: start the app, canaries first
    Given I want to update hosts with class roles::web
    When I start the service mywebapp
"""


def test_canaries_are_one_host_per_hagroup_and_the_seed_chooses_them_again(lab, tmp_path):
    facts = {name: host.facts for name, host in load_inventory(ROOT / "environments" / "local.yaml").hosts.items()}
    first = behave_ci(tmp_path, "canary", CANARY, report="first")
    assert first.rc == 0, first.out
    rollout = first.matrix.scenarios[0].rollout
    canaries, seed = rollout["canaries"], rollout["seed"]
    assert sorted(facts[h]["hagroup"] for h in canaries) == ["a", "b", "c"]
    assert rollout["steps"][0]["batches"][0] == canaries
    assert f"-D seed={seed} chooses them again" in first.out
    again = behave_ci(tmp_path, "canary", CANARY, "-D", f"seed={seed}", report="again")
    assert again.rc == 0, again.out
    assert again.matrix.scenarios[0].rollout["canaries"] == canaries
    assert again.matrix.scenarios[0].rollout["steps"] == rollout["steps"]


ANALYSIS = """\
@batch(2)
Feature: analysis
  Scenario: update, checking each batch's health
    Given I want to update hosts named web1, web2, web3, web4
    When I update the package mywebapp to {new}
    Then after each batch the health check on port 8080 should pass within 3 seconds
"""
#: web2's own health URL gives no answer: packets to port 8080 on its loopback are dropped
SILENCE = ["INPUT", "-i", "lo", "-p", "tcp", "--dport", "8080", "-j", "DROP"]


def test_an_analysis_without_an_answer_pauses_in_ci_and_resume_finishes(fresh_lab, tmp_path):
    fresh_lab.exec_in("web2", ["iptables", "-I", *SILENCE])
    paused = behave_ci(tmp_path, "analysis", ANALYSIS.format(new=NEW), report="paused")
    assert paused.rc == PAUSED_EXIT, paused.out
    assert "analysis after batch 1 of 2" in paused.out and "inconclusive" in paused.out
    assert paused.matrix.paused.startswith('at "When I update the package mywebapp')
    got = statuses(paused)
    assert (got["web1"], got["web3"], got["web4"]) == (Outcome.CHANGED, Outcome.NOT_ATTEMPTED, Outcome.NOT_ATTEMPTED)
    assert [version(fresh_lab, h) for h in ("web1", "web2", "web3")] == [NEW, NEW, OLD]

    fresh_lab.exec_in("web2", ["iptables", "-D", *SILENCE])
    resumed = behave_ci(tmp_path, "analysis", ANALYSIS.format(new=NEW), "-D", "resume", report="resumed")
    assert resumed.rc == 0, resumed.out
    assert all(version(fresh_lab, h) == NEW for h in ("web1", "web2", "web3", "web4"))
    assert resumed.matrix.scenarios[0].rollout["analyses"]


FORMATTED = """\
@batch(2) @max_fail(1)
Feature: formatted
  @canary(by=hagroup)
  Scenario: roll
    Given I want to update hosts with class roles::web
    When I update the package mywebapp to 4.2.6-3.el5
    Then after each batch the health check on port 8080 should pass within 5 seconds
    When I restart the service mywebapp in batches of 3
"""


def test_dry_run_shows_the_policy_and_the_batches_of_each_step_without_a_session(tmp_path):
    done = behave_ci(tmp_path, "formatted", FORMATTED, "--dry-run", "-f", "rollout", "-D", "env=/nonexistent.yaml")
    assert done.matrix is None, "no hook ran"
    lines = done.out.splitlines()
    at = lines.index("  When I update the package mywebapp to 4.2.6-3.el5")
    assert lines[at + 1] == ("    -> canaries first (1 host per value of hagroup, from the run's seed), then batches of 2, "
                             "one failure budget @max_fail(1) over the scenario")
    assert lines[at + 3] == "    -> measured after each batch of the When at line 6"
    error = lines[at + 5]
    assert error.startswith("    -> error: ") and "formatted.feature:8: 'in batches of 3' disagrees with " in error
    assert error.endswith("formatted.feature:1 @batch(2)")
