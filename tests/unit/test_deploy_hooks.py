"""The behave hooks (orchestrator_lib/behave/hooks.py) without a lab: behave runs for real in a
subprocess on an estate no step reaches (no host is ever asked), and the hooks are called
directly where behave cannot be made to fail on cue (a report that cannot be written, Ctrl-C)."""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from orchestrator_lib.behave import hooks
from orchestrator_lib.controller.deploy import Settings
from orchestrator_lib.controller.reporting import Cell, Outcome, ResultMatrix

ROOT = Path(__file__).resolve().parents[2]


def behave(tmp_path: Path, feature_text: str | None, *args: str) -> tuple[int, str, ResultMatrix | None]:
    """behave on the repository's steps and a feature of our own, on an estate with no lab."""
    estate = tmp_path / "bare.yaml"
    estate.write_text("name: bare\nhosts:\n  a: {address: 192.0.2.1}\n")
    paths = ["features/deploy_webapp.feature"]
    if feature_text is not None:
        feature = tmp_path / "own.feature"
        feature.write_text(feature_text)
        paths = ["features/", str(feature), "--include", "own"]   # steps/ is found from the first path
    report = tmp_path / "report.json"
    done = subprocess.run([sys.executable, "-m", "behave", *paths, "-D", f"env={estate}", "-D", f"report={report}",
                           *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout + done.stderr, ResultMatrix.read_json(report) if report.exists() else None


# ---- the gate fails the process ----------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["Feature: t\n  Scenari: oops\n    When I frobnicate\n", "Feature: t\n"])
def test_no_scenario_ran_fails_the_run_not_only_the_gate_line(tmp_path, text):
    """behave exited 0 after "Release gate: FAILED: no scenario ran"."""
    rc, out, matrix = behave(tmp_path, text)
    assert rc != 0, out
    assert "HOOK-ERROR in after_all: GateFailed: Release gate: FAILED: no scenario ran" in out
    assert "Traceback" not in out and matrix is not None and not matrix.passed


def test_a_refused_option_touches_nothing_and_writes_no_report_to_the_default_path(tmp_path):
    rc, out, matrix = behave(tmp_path, None, "-D", "paln")
    assert rc != 0 and "Traceback" not in out
    assert "HOOK-ERROR in before_feature: SetupFailed: -D paln: unknown option 'paln' (did you mean 'plan'?)" in out
    assert "Deploy recap (env " in out and "Report: not written: the -D options were refused" in out
    assert matrix is None


# ---- the spec is linted before the run ----------------------------------------------------------------------
BLOCKED_FOR_GOOD = """\
Feature: b
  Scenario: s
    Given the load balancer has ip address 192.0.2.9
    And I want to update hosts named a
    And I want to pre-discover how many hosts to update
    When I block the load balancer
    Then traffic from the load balancer should be blocked
"""


def test_a_spec_that_breaks_a_lint_rule_stops_before_any_host_unless_lint_is_off(tmp_path):
    rc, out, matrix = behave(tmp_path, BLOCKED_FOR_GOOD)
    assert rc != 0 and "Traceback" not in out
    assert 'own.feature:6: error: "When I block the load balancer" has no later "When I unblock' in out
    assert "-D lint=off" in out and matrix is not None and matrix.error.startswith("the spec has 1 lint error")
    assert all(not step.cells for sc in matrix.scenarios for step in sc.steps), "no host was asked"
    rc, out, matrix = behave(tmp_path, BLOCKED_FOR_GOOD, "-D", "lint=off")
    assert "lint" not in (matrix.error if matrix else "") and "own.feature:6: error" not in out


# ---- what JUnit, the recap and the report say ------------------------------------------------------------
def test_an_undefined_step_is_named_in_the_recap_the_report_and_junit(tmp_path):
    """They said `error: error`, "error": "" and <error message="None">."""
    junit = tmp_path / "junit"
    rc, out, matrix = behave(tmp_path, "Feature: u\n  Scenario: s\n    When I frobnicate the hosts\n",
                             "--junit", f"--junit-directory={junit}", "-D", "lint=off")
    assert rc != 0
    why = "undefined step: no step definition matches it (behave --steps-catalog lists the vocabulary)"
    assert f'scenario "s" error: "When I frobnicate the hosts": {why}' in out
    assert matrix.scenarios[0].steps[0].error == why
    assert matrix.to_dict()["scenarios"][0]["error"] == f'"When I frobnicate the hosts": {why}'
    xml = next(junit.glob("TESTS-*.xml")).read_text()
    assert 'errors="1"' in xml
    assert '<error type="UndefinedStep" message="undefined step &quot;When I frobnicate the hosts&quot;: ' \
           'no step definition matches it">' in xml


def test_a_setup_failure_is_a_junit_error_and_the_recap_shows_under_junit(tmp_path):
    """JUnit said tests="1" errors="0" failures="0", the testcase "untested"; and under --junit
    behave captured the after_all hook's output, so the recap was never shown."""
    junit = tmp_path / "junit"
    rc, out, matrix = behave(tmp_path, None, "-D", "env=nope", "--junit", f"--junit-directory={junit}")
    assert rc != 0
    xml = next(junit.glob("TESTS-*.xml")).read_text()
    assert 'tests="1" errors="1"' in xml and 'status="hook_error"' in xml
    assert '<error type="SetupFailed" message="environments/nope.yaml: unknown environment \'nope\'' in xml
    assert "Deploy recap (env nope): 0 scenarios, 0 hosts" in out
    assert "  error: environments/nope.yaml: unknown environment 'nope'" in out
    assert matrix.error.startswith("environments/nope.yaml: unknown environment 'nope'")


# ---- after_all, called directly ------------------------------------------------------------------------------
class SlowSession:
    """Session.close waits for requests still running on hosts (here: 30 s)."""

    def __init__(self) -> None:
        self.closing = threading.Event()

    def close(self) -> None:
        self.closing.set()
        time.sleep(30)


def finished_run(tmp_path: Path, report: str, *, aborted: bool = False) -> SimpleNamespace:
    """A run's context as after_all sees it: one scenario that blocked two hosts, then stopped."""
    run = hooks.Run()
    run.settings, run.configured, run.started = Settings(env="unit", report=report), True, True
    run.matrix.env = "unit"
    run.feature_files = ["features/x.feature"]
    m = run.matrix
    m.start_scenario("s", "f", "features/x.feature")
    m.start_step("When", "I block the load balancer")
    for host in ("web1", "web2"):
        m.record(host, Cell(Outcome.CHANGED, "", "firewall#block", "firewall 10.0.0.2", "unblocked", "blocked"))
    m.end_step("passed")
    m.start_step("When", "I update the package app")
    if aborted:
        m.end_step("error", hooks.INTERRUPTED)
        m.interrupt('at "When I update the package app"')
        m.end_scenario("error")
    else:
        m.end_step("passed")
        m.end_scenario("passed")
    return SimpleNamespace(run=run, aborted=aborted)


def test_a_report_that_cannot_be_written_still_prints_the_recap_and_fails_the_run(tmp_path, capsys):
    """It was a HOOK-ERROR (IsADirectoryError) before the recap, which never printed."""
    context = finished_run(tmp_path, str(tmp_path))   # a directory, as if it appeared after the check
    with pytest.raises(hooks.ReportFailed, match=rf"^Report not written: -D report={tmp_path}: \[Errno 21\] Is a directory"):
        hooks.after_all(context)
    out = capsys.readouterr().out
    assert "Deploy recap (env unit): 1 scenario, 2 hosts" in out and "Release gate: PASSED" in out
    assert f"Report: not written: -D report={tmp_path}: [Errno 21] Is a directory" in out


def test_an_interrupted_run_prints_the_recap_writes_the_report_and_does_not_wait_for_hosts(tmp_path, capsys):
    """Ctrl-C: behave runs after_all, whose session close waited for the step's requests still
    running on hosts (minutes); a second Ctrl-C then lost the recap and the report."""
    context = finished_run(tmp_path, str(tmp_path / "r.json"), aborted=True)
    session = SlowSession()
    context.run.deploy = SimpleNamespace(session=session)
    started = time.monotonic()
    hooks.after_all(context)   # behave already fails an aborted run: no GateFailed on top
    assert time.monotonic() - started < hooks.CLOSE_WAIT_INTERRUPTED + 1 and session.closing.is_set()
    out = capsys.readouterr().out
    assert '  interrupted at "When I update the package app": the run stopped there' in out
    assert "  left out of the load balancer: web1, web2 (firewall 10.0.0.2 blocked)" in out
    assert 'Release gate: FAILED: interrupted at "When I update the package app"' in out
    assert "Not waiting for requests still running on hosts" in out
    report = ResultMatrix.read_json(tmp_path / "r.json")
    assert report.interrupted == 'at "When I update the package app"' and not report.passed


def test_an_interruption_outside_a_step_is_still_marked(tmp_path, capsys):
    context = finished_run(tmp_path, str(tmp_path / "r.json"))
    context.aborted = True   # Ctrl-C in a hook: behave aborts, the scenario itself passed
    hooks.after_all(context)
    assert "Release gate: FAILED: interrupted between steps" in capsys.readouterr().out


def test_after_step_names_the_step_the_operator_interrupted(tmp_path):
    context = finished_run(tmp_path, str(tmp_path / "r.json"))
    context.aborted = True
    context.run.matrix.start_step("Then", "the service app should be running")
    step = SimpleNamespace(keyword="Then", name="the service app should be running", error_message="ERROR: KeyboardInterrupt",
                           status=SimpleNamespace(name="error", has_failed=lambda: True))
    step.store_exception_context = lambda e: setattr(step, "exception", e)
    hooks.after_step(context, step)
    assert context.run.matrix.interrupted == 'at "Then the service app should be running"'
    assert context.run.matrix.current_step.error == hooks.INTERRUPTED == str(step.exception)


def test_the_recap_header_names_the_env_asked_for_or_none(tmp_path, capsys):
    run = hooks.Run()
    hooks.print_recap(run, [], "not written: the -D options were refused")
    assert capsys.readouterr().out.startswith("\nDeploy recap: 0 scenarios, 0 hosts\n")


# ---- the console and CI ------------------------------------------------------------------------------------
def test_no_using_runner_line_and_the_feature_title_once(tmp_path):
    rc, out, _ = behave(tmp_path, None)
    assert "USING RUNNER" not in out
    assert out.count("Feature: Update the production systems") == 1, out


def test_in_ci_both_junit_files_are_written_by_default_and_no_junit_turns_them_off(tmp_path):
    import os
    env = {**os.environ, "CI": "true"}
    estate = tmp_path / "bare.yaml"
    estate.write_text("name: bare\nhosts:\n  a: {address: 192.0.2.1}\n")
    for extra, wanted in (([], True), (["--no-junit"], False)):
        junit = tmp_path / ("on" if wanted else "off")
        subprocess.run([sys.executable, "-m", "behave", "features/deploy_webapp.feature", "-D", f"env={estate}",
                        "-D", f"report={tmp_path / 'r.json'}", f"--junit-directory={junit}", *extra],
                       cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
        files = sorted(p.name for p in junit.glob("*.xml")) if junit.exists() else []
        assert files == (["HOSTS-deploy_webapp.xml", "TESTS-features.deploy_webapp.xml"] if wanted else []), files
