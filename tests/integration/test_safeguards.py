"""A deploy on a bad day, each from a real fault on the lab: two runs at once (the deploy lock),
the controller SIGKILLed during the update (journal, the next run's notice, -D resume), HAProxy's
runtime API gone (pre-flight), a broken release with a @rollback scenario."""
from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from orchestrator_lib.controller.reporting import Outcome, ResultMatrix
from orchestrator_lib.controller.reporting.journal import JournalRun, journal_dir
from tests.conftest import interruptible
from tests.integration.test_features import (DE, NEW, OLD, ROOT, Done, behave, blocked, haproxy, own_feature,
                                             served_by_lb, snapshot, version)

SEED = "features/deploy_webapp.feature"
JOURNALS = journal_dir(ROOT / "reports")


def start(tmp_path: Path, name: str, *args: str) -> tuple[subprocess.Popen, Path]:
    report = tmp_path / f"{name}.json"
    proc = subprocess.Popen([sys.executable, "-m", "behave", *args, "-D", f"report={report}"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=interruptible)
    return proc, report


def finish(proc: subprocess.Popen, report: Path, seen: str = "") -> Done:
    out = seen + proc.communicate(timeout=300)[0]
    return Done(proc.returncode, out, ResultMatrix.read_json(report) if report.exists() else None)


def changed_cells(matrix: ResultMatrix) -> list[tuple[str, str]]:
    return [(h, step.text) for _, step, h, c in matrix.cells() if c.status is Outcome.CHANGED]


def leases(lab) -> dict[str, str]:
    """The deploy lock's file on each target host ("" when none is held)."""
    return {h: lab.exec_in(h, ["cat", "/var/lib/orchestrator/lease.json"]).stdout for h in DE}


def converged(lab) -> bool:
    return all(version(lab, h) == NEW and not blocked(lab, h) for h in DE) and \
        all(haproxy(lab)[h][0] == "2" for h in DE)


# ---- the deploy lock ------------------------------------------------------------------------------
def test_two_runs_started_together_exactly_one_proceeds_the_other_names_the_holder(fresh_lab, tmp_path):
    a, a_report = start(tmp_path, "a", SEED)
    b, b_report = start(tmp_path, "b", SEED)
    runs = [finish(a, a_report), finish(b, b_report)]
    assert sorted(r.rc == 0 for r in runs) == [False, True], [r.out for r in runs]
    loser = next(r for r in runs if r.rc != 0)
    assert "another deploy holds the lock on web1" in loser.out and "nothing was changed" in loser.out, loser.out
    assert "running features/deploy_webapp.feature" in loser.out and "Traceback" not in loser.out
    assert changed_cells(loser.matrix) == [] and not loser.matrix.passed
    assert converged(fresh_lab)
    assert leases(fresh_lab) == {h: "" for h in DE}   # released at the end, and by the loser on refusal


def test_a_run_started_while_another_updates_changes_nothing_and_names_the_holder(fresh_lab, tmp_path):
    a, a_report = start(tmp_path, "a", SEED)
    seen = []
    for line in a.stdout:  # type: ignore[union-attr]
        seen.append(line)
        if "firewall#block:" in line:  # a is changing the hosts now
            break
    b = behave(tmp_path, SEED, name="b")
    first = finish(a, a_report, "".join(seen))
    assert first.rc == 0, first.out
    assert b.rc != 0 and "another deploy holds the lock on web1" in b.out, b.out
    assert changed_cells(b.matrix) == [] and "Traceback" not in b.out
    assert converged(fresh_lab)


def test_ctrl_c_releases_the_leases(fresh_lab, tmp_path):
    proc, report = start(tmp_path, "interrupted", SEED)
    seen = []
    for line in proc.stdout:  # type: ignore[union-attr]
        seen.append(line)
        if "firewall#block:" in line:
            break
    assert all('"run"' in text for text in leases(fresh_lab).values())   # held while it runs
    proc.send_signal(signal.SIGINT)
    done = finish(proc, report, "".join(seen))
    assert done.rc != 0 and "interrupted" in done.out
    assert leases(fresh_lab) == {h: "" for h in DE}


# ---- SIGKILL, the journal and resume --------------------------------------------------------------------
def newest_journal(after: set[Path]) -> Path | None:
    new = sorted(set(JOURNALS.glob("*.jsonl")) - after)
    return new[-1] if new else None


def test_sigkill_during_the_update_is_journalled_reported_by_the_next_run_and_resume_converges(fresh_lab, tmp_path):
    JOURNALS.mkdir(parents=True, exist_ok=True)
    before = set(JOURNALS.glob("*.jsonl"))
    proc, _ = start(tmp_path, "killed", SEED, "-D", "lease_ttl=3")
    journal, deadline = None, time.monotonic() + 60
    while time.monotonic() < deadline:  # the controller is killed once an update request went out
        journal = journal or newest_journal(before)
        if journal is not None and '"label": "package#update"' in journal.read_text():
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert journal is not None
    killed = JournalRun.read(journal)
    assert not killed.ended and killed.in_flight, killed
    assert set(killed.in_flight) <= set(DE) and set(killed.in_flight.values()) == {"package#update"}
    assert "I update the package mywebapp" in killed.last_step
    audit = (ROOT / "reports" / "audit.jsonl").read_text()
    assert all(f'"host": "{h}"' in audit for h in killed.in_flight) and '"status": "sent"' in audit

    time.sleep(3.5)  # the killed run's leases expire (lease_ttl=3)
    resumed = behave(tmp_path, SEED, "-D", "resume", name="resumed")
    assert resumed.rc == 0, resumed.out
    assert f"an earlier deploy on these hosts was interrupted: run {killed.run}" in resumed.out
    assert all(f"{h} (package#update)" in resumed.out for h in killed.in_flight)
    assert "took over the expired lease" in resumed.out
    assert converged(fresh_lab)


def test_resume_skips_the_hosts_that_completed_each_scenario_and_runs_the_others(fresh_lab, tmp_path):
    """openssl_patch: group a passes, group b fails on web5 (@fail_fast skips group c). Resumed:
    the report and group a are skipped (every host completed them), b and c run."""
    fresh_lab.exec_in("web5", ["apt-mark", "hold", "openssl-lab"])
    failed = behave(tmp_path, "features/openssl_patch.feature", name="failed")
    assert failed.rc != 0 and failed.matrix.bad_hosts() == ["web5"]
    fresh_lab.exec_in("web5", ["apt-mark", "unhold", "openssl-lab"])
    resumed = behave(tmp_path, "features/openssl_patch.feature", "-D", "resume", name="resumed")
    assert resumed.rc == 0, resumed.out
    assert "skipping web1, web4, web7 (completed this scenario there); running no host" in resumed.out
    assert "skipping no host (completed this scenario there); running web2, web5, web8" in resumed.out
    group_a = resumed.matrix.scenarios[1]
    assert "group a" in group_a.name and not any(c.status is Outcome.CHANGED for s in group_a.steps
                                                 for c in s.cells.values())
    assert all(version(fresh_lab, f"web{i}", "openssl-lab") == "3.0.13-1" for i in range(1, 10))
    again = behave(tmp_path, "features/openssl_patch.feature", "-D", "resume", name="again")
    assert again.rc == 0 and "passed: running it in full" in again.out, again.out


# ---- pre-flight -----------------------------------------------------------------------------------------
def test_haproxy_api_down_fails_before_any_change_naming_lb1_in_under_2_s(fresh_lab, tmp_path):
    fresh_lab.exec_in("lb1", ["mv", "/run/haproxy/admin.sock", "/run/haproxy/admin.sock.away"])
    try:
        before = snapshot(fresh_lab)
        started = time.monotonic()
        done = behave(tmp_path, SEED)
        elapsed = time.monotonic() - started
        after = snapshot(fresh_lab)
    finally:
        fresh_lab.exec_in("lb1", ["mv", "/run/haproxy/admin.sock.away", "/run/haproxy/admin.sock"])
    assert done.rc != 0
    assert "pre-flight failed, nothing was changed: lb1: failed: haproxy runtime API" in done.out, done.out
    assert done.matrix.bad_hosts() == ["lb1"] and changed_cells(done.matrix) == []
    assert before["hosts"] == after["hosts"]
    # the run itself (behave's own clock: discovery, lock, pre-flight) fails in under 2 s; the
    # process around it adds Python's start and imports (1-1.7 s on this loaded machine)
    took = re.search(r"Took (\d+)min (\d+\.\d+)s", done.out)
    assert took and int(took.group(1)) * 60 + float(took.group(2)) < 2.0, done.out
    assert elapsed < 5.0, f"{elapsed:.2f} s"


UNPUBLISHED = """\
Feature: unpublished
  Scenario: a version no repository offers
    Given the load balancer has ip address 10.231.0.2
    And I want to update hosts named web1, web2
    When I block the load balancer
    And I update the package mywebapp to 9.9.9-1
"""


def test_a_version_no_target_is_offered_fails_before_the_block_naming_the_hosts(fresh_lab, tmp_path):
    before = snapshot(fresh_lab, ["web1", "web2"])
    done = behave(tmp_path, *own_feature(tmp_path, "unpublished", UNPUBLISHED), "-D", "lint=off")
    assert done.rc != 0 and "pre-flight failed, nothing was changed: web1: mywebapp 9.9.9-1 is not offered" in done.out
    assert done.matrix.bad_hosts() == ["web1", "web2"] and changed_cells(done.matrix) == []
    assert snapshot(fresh_lab, ["web1", "web2"]) == before


# ---- rollback -------------------------------------------------------------------------------------------
BROKEN = f"""\
Feature: broken release
  Background:
    Given the load balancer has ip address 10.231.0.2
    And I want to update hosts named web1, web2, web3
    And I want to pre-discover how many hosts to update

  Scenario: Update to 4.2.7-1.el5
    When I block the load balancer
    Then traffic from the load balancer should be blocked
    When I update the package mywebapp to 4.2.7-1.el5
    And I restart the service mywebapp
    Then the health check on port 8080 should pass within 3 seconds
    When I unblock the load balancer

  @rollback
  Scenario: Roll back the hosts that failed
    When I roll back the package mywebapp
    And I restart the service mywebapp
    Then the health check on port 8080 should report version {OLD} within 30 seconds
    When I unblock the load balancer
    Then traffic from the load balancer should be unblocked
"""


def test_a_broken_release_is_rolled_back_on_the_failed_hosts_and_the_gate_still_fails(fresh_lab, tmp_path):
    # -D service_wait=5: the broken restart fails once 5 s pass without readiness (30 s by default)
    done = behave(tmp_path, *own_feature(tmp_path, "broken", BROKEN), "-D", "lint=off", "-D", "service_wait=5")
    assert done.rc != 0 and "Release gate: FAILED" in done.out and not done.matrix.passed
    assert "readiness check, 5 s allowed" in done.out, done.out
    assert "Traceback" not in done.out
    rollback = done.matrix.scenarios[1]
    assert rollback.status == "passed", done.out
    cells = next(s for s in rollback.steps if "roll back" in s.name).cells
    assert {h: c.status for h, c in cells.items()} == {h: Outcome.ROLLED_BACK for h in ("web1", "web2", "web3")}
    assert done.matrix.failed_hosts(done.matrix.scenarios[0].file) == ["web1", "web2", "web3"]
    assert all(version(fresh_lab, h) == OLD and not blocked(fresh_lab, h) for h in ("web1", "web2", "web3"))
    assert {"web1", "web2", "web3"} <= set(served_by_lb(36))
    assert done.matrix.recap("web1").rolled_back == [f"package mywebapp 4.2.7-1.el5 -> {OLD}"]
    assert "web1: FAILED" in done.out and "ROLLED BACK package mywebapp" in done.out
