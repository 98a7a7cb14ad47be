"""The run journal: written as a run goes, read back by the next run (interrupted? where? which
hosts had a request in flight? which hosts completed each scenario? what did a host have before?)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestrator_lib.controller.orchestration import HostResult, Status
from orchestrator_lib.controller.reporting import Cell, Outcome, ResultMatrix
from orchestrator_lib.controller.reporting.journal import Journal, JournalRun, last_run_of, last_run_on


def journal(tmp_path: Path, run: str = "run1") -> Journal:
    return Journal(tmp_path, run, caller="alice@ci", env="local")


def test_a_killed_run_leaves_where_it_was_and_the_hosts_in_flight(tmp_path):
    j = journal(tmp_path)
    matrix = ResultMatrix(listener=j)
    matrix.start_scenario("Update the website", "Update", "features/deploy.feature")
    matrix.start_step("When", "I update the package mywebapp to 2")
    for host in ("web1", "web2"):
        j.sent("q1", "package#update", host)
    j.result("q1", "package#update", HostResult("web1", Status.CHANGED, data={"name": "mywebapp", "previous": "1"},
                                                before="1", after="2"))
    # SIGKILL here: nothing more is written (the file is as the OS has it)
    run = JournalRun.read(j.path)
    assert not run.ended and run.run == "run1" and run.caller == "alice@ci"
    assert run.in_flight == {"web2": "package#update"}
    assert run.last_step == "deploy.feature: Update the website: When I update the package mywebapp to 2"
    assert run.befores == {("web1", "package mywebapp"): "1"}
    line = run.interrupted_line()
    assert "run run1 by alice@ci" in line and "requests in flight on: web2 (package#update)" in line


def test_changing_requests_and_step_ends_are_fsynced_group_committed(tmp_path):
    j = journal(tmp_path)
    synced = j.fsyncs
    j.sent("q1", "package#status", "web1")        # read-only: written, not fsync'd
    assert j.fsyncs == synced
    j.sent("q2", "package#update", "web1")
    assert j.fsyncs == synced + 1
    j.result("q2", "package#update", HostResult("web1", Status.CHANGED))
    assert j.fsyncs == synced + 1                 # written; the step's end covers it
    j.step_end("passed", {"web1": "changed"})
    assert j.fsyncs == synced + 2


def test_a_torn_last_line_is_ignored(tmp_path):
    j = journal(tmp_path)
    j.sent("q1", "package#update", "web1")
    j.close()
    with open(j.path, "a") as f:
        f.write('{"kind": "result", "reqid": "q1", "ho')
    assert JournalRun.read(j.path).in_flight == {"web1": "package#update"}


def test_completed_hosts_per_scenario_exclude_failed_skipped_and_not_attempted(tmp_path):
    j = journal(tmp_path)
    matrix = ResultMatrix(listener=j)
    matrix.start_scenario("S", "F", "features/f.feature")
    matrix.start_step("When", "I update")
    for host, status in (("web1", Outcome.CHANGED), ("web2", Outcome.FAILED), ("web3", Outcome.NOT_ATTEMPTED)):
        matrix.record(host, Cell(status))
    matrix.end_step("failed", "boom")
    matrix.start_step("When", "I unblock")
    matrix.end_step("skipped")
    matrix.end_scenario("failed", hosts=["web1", "web2", "web3", "web4"])
    j.end(False)
    run = JournalRun.read(j.path)
    scenario = run.scenarios[("features/f.feature", "S")]
    assert scenario.targeted == ["web1", "web2", "web3", "web4"]
    assert scenario.completed == []    # the scenario stopped before its last step: no host completed it
    assert run.ended and not run.passed


def test_a_resumed_run_keeps_the_hosts_it_skipped_as_completed(tmp_path):
    j = journal(tmp_path)
    matrix = ResultMatrix(listener=j)
    matrix.start_scenario("S", "F", "features/f.feature")
    matrix.start_step("When", "I update")
    matrix.record("web3", Cell(Outcome.CHANGED))      # web1, web2 skipped by -D resume: no cell
    matrix.end_step("passed")
    matrix.end_scenario("passed", hosts=["web1", "web2", "web3"])
    assert JournalRun.read(j.path).scenarios[("features/f.feature", "S")].completed == ["web1", "web2", "web3"]


def test_the_next_run_finds_the_last_run_on_its_hosts_and_of_its_feature(tmp_path):
    first = journal(tmp_path, "aaaa")
    first.scenario("F", "features/f.feature", "S")
    first.sent("q1", "package#update", "web1")
    first.close()
    os.utime(first.path)
    second = Journal(tmp_path, "bbbb", caller="bob@ci", env="local")
    second.sent("q2", "rpcutil#ping", "web9")
    assert last_run_on(tmp_path, ["web1", "web2"], exclude="bbbb").run == "aaaa"
    assert last_run_on(tmp_path, ["web3"], exclude="bbbb") is None
    assert last_run_of(tmp_path, "features/f.feature", exclude="bbbb").run == "aaaa"
    assert last_run_of(tmp_path, "features/g.feature") is None


def test_a_run_stopped_by_ctrl_c_counts_as_interrupted(tmp_path):
    j = journal(tmp_path)
    j.append("end", sync=True, passed=False, interrupted=True)
    assert not JournalRun.read(j.path).ended


def test_the_lease_requests_stay_out_of_the_journal(tmp_path):
    j = journal(tmp_path)
    j.sent("q1", "lease#acquire", "web1")
    assert JournalRun.read(j.path).hosts == []


@pytest.mark.parametrize("label,data,before,expected", [
    ("package#update", {"name": "app", "previous": "1"}, "1", ("web1", "package app", "1")),
    ("appmgr#deploy", {"app": "app"}, {"package": "1", "running": "1"}, ("web1", "package app", "1")),
    ("service#restart", {"name": "app"}, "running", None),
])
def test_what_a_host_had_before_the_run_is_the_first_change_recorded(tmp_path, label, data, before, expected):
    j = journal(tmp_path)
    j.result("q1", label, HostResult("web1", Status.CHANGED, data=data, before=before))
    j.result("q2", label, HostResult("web1", Status.CHANGED, data={**data, "previous": "9"}, before="9"))
    if expected is None:
        assert j.befores == {}
    else:
        host, subject, value = expected
        assert j.befores == {(host, subject): value}
        assert JournalRun.read(j.path).befores == {(host, subject): value}
