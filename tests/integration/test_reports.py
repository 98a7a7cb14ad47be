"""The run's record as people and CI see it: the HTML report opened in a real browser (Debian's
headless Chromium, driven by Selenium through Debian's chromedriver), and the per-host JUnit file
read by a JUnit parser. Three runs on the lab, made once for the module: a passing deploy, a
broken release (4.2.7-1.el5 fails its readiness check on 2 of 4 hosts) and an interrupted one.
Screenshots are kept under reports/screenshots/."""
from __future__ import annotations

import base64
import signal
import subprocess
import sys
import time
import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from junitparser import Error, Failure, JUnitXml, Skipped
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from orchestrator_lib.controller.reporting import ResultMatrix
from tests.conftest import ROOT, interruptible

SCREENSHOTS = ROOT / "reports" / "screenshots"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
PHONE, DESK = (412, 915), (1280, 1000)

BROKEN = """\
Feature: Release mywebapp a pair of hosts at a time
  Each pair is taken out of the load balancer, updated and restarted, checked, and put back.

  Scenario Outline: Release <version> on <hosts>
    Given the load balancer has ip address 10.231.0.2
    And I want to update hosts named <hosts>
    And I want to pre-discover how many hosts to update
    When I block the load balancer
    Then traffic from the load balancer should be blocked
    When I update the package mywebapp to <version> in batches of 1
    Then the package version for mywebapp should be <version>
    When I restart the service mywebapp unless port 8080 already reports version <version>
    Then the health check on port 8080 should report version <version> within 5 seconds
    When I unblock the load balancer
    Then traffic from the load balancer should be unblocked

    Examples:
      | hosts      | version     |
      | web3, web4 | 4.2.6-3.el5 |
      | web1, web2 | 4.2.7-1.el5 |
"""

INTERRUPTED = """\
Feature: interrupted
  Scenario: block, then wait for a version that never comes
    Given the load balancer has ip address 10.231.0.2
    And I want to update hosts named web1, web2
    And I want to pre-discover how many hosts to update
    When I block the load balancer
    Then the health check on port 8080 should report version 9.9.9 within 60 seconds
    When I unblock the load balancer
    Then traffic from the load balancer should be unblocked
"""


@dataclass
class Run:
    rc: int
    out: str
    json: Path
    html: Path
    junit: Path
    host_audit: list[dict] = field(default_factory=list)   # web1's audit lines right after the run
    stopped_in: float = 0.0                                 # seconds from Ctrl-C to the process's exit
    left_blocked: set[str] = field(default_factory=set)     # web hosts the LB could not reach after it
    commit: str = ""                                        # the repository's HEAD when it ran

    @property
    def matrix(self) -> ResultMatrix:
        return ResultMatrix.read_json(self.json)


def behave_command(out: Path, name: str, feature: Path | None, *extra: str, junit: bool = True) -> list[str]:
    """behave on a shipped feature (None) or a test's own (steps/ is found from the first path)."""
    paths = ["features/deploy_webapp.feature"] if feature is None else ["features/", str(feature), "--include", name]
    junit_args = ["--junit", f"--junit-directory={out / 'junit'}"] if junit else ["--no-junit"]
    return [sys.executable, "-m", "behave", *paths, *junit_args, *extra, "-D", f"report={out / name}.json"]


def finished(out: Path, name: str, proc_out: str, rc: int) -> Run:
    return Run(rc, proc_out, out / f"{name}.json", out / f"{name}.html", out / "junit")


@pytest.fixture(scope="module")
def runs(lab, tmp_path_factory) -> dict[str, Run]:
    """The three runs, each on a freshly reset lab (the hosts the run before changed are reset)."""
    base = tmp_path_factory.mktemp("runs")
    out: dict[str, Run] = {}

    lab.reset_changed()
    where = base / "passing"
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    done = subprocess.run(behave_command(where, "deploy_webapp", None), cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    out["passing"] = finished(where, "deploy_webapp", done.stdout + done.stderr, done.returncode)
    log = lab.exec_in("web1", ["cat", "/var/log/orchestrator/audit.jsonl"]).stdout
    out["passing"].commit = head
    out["passing"].host_audit = [json.loads(line) for line in log.splitlines() if line.strip()]

    lab.reset_changed()
    where = base / "failing"
    where.mkdir()
    (where / "broken_release.feature").write_text(BROKEN)
    # the broken restart fails after 5 s without readiness, not the default 30
    done = subprocess.run(behave_command(where, "broken_release", where / "broken_release.feature",
                                         "-D", "service_wait=5"), cwd=ROOT, capture_output=True, text=True, timeout=300)
    out["failing"] = finished(where, "broken_release", done.stdout + done.stderr, done.returncode)

    lab.reset_changed()
    where = base / "interrupted"
    where.mkdir()
    (where / "interrupted.feature").write_text(INTERRUPTED)
    # no JUnit here: behave's --junit captures the output this test watches for
    proc = subprocess.Popen(behave_command(where, "interrupted", where / "interrupted.feature", junit=False), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=interruptible)
    seen = []
    for line in proc.stdout:  # type: ignore[union-attr]
        seen.append(line)
        if "firewall#block:" in line:
            break
    time.sleep(1.0)  # into the health check's wait
    proc.send_signal(signal.SIGINT)
    interrupted = time.monotonic()
    text = "".join(seen) + proc.communicate(timeout=60)[0]
    out["interrupted"] = finished(where, "interrupted", text, proc.returncode)
    out["interrupted"].stopped_in = time.monotonic() - interrupted
    out["interrupted"].left_blocked = {h for h in ("web1", "web2", "web3")
                                       if "deployer-block-10.231.0.2" in lab.exec_in(h, ["iptables", "-S", "INPUT"]).stdout}
    lab.reset_changed()
    return out


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={DESK[0]},{DESK[1]}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def open_report(browser, run: Run, name: str, size: tuple[int, int] = DESK) -> None:
    """Open the page and keep a full-height screenshot of it as a person would scroll it."""
    assert run.html.exists(), run.out
    browser.set_window_size(*size)
    browser.get(run.html.as_uri())
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(size[0], min(max(height + 150, size[1]), 8000))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def visible(browser, css: str) -> list:
    return [e for e in browser.find_elements(By.CSS_SELECTOR, css) if e.is_displayed()]


def no_horizontal_scroll(browser) -> bool:
    return browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")


# ---- the HTML report in a browser ------------------------------------------------------------------
def test_the_report_of_a_passing_run_says_passed_first_and_shows_every_host(runs, browser):
    run = runs["passing"]
    assert run.rc == 0, run.out
    open_report(browser, run, "report-passing")
    verdict = browser.find_element(By.ID, "verdict")
    assert verdict.location["y"] < 50 and "RELEASE GATE PASSED" in verdict.text
    assert not browser.find_elements(By.ID, "failing")
    identity = browser.find_element(By.ID, "identity").text
    assert "features/deploy_webapp.feature" in identity and "@" in identity  # spec, caller user@host
    assert len(run.commit) == 40 and run.commit[:12] in identity
    changes = browser.find_element(By.ID, "changes").text
    assert "package mywebapp 4.2.5-1.el5 -> 4.2.6-3.el5" in changes
    assert [e.get_attribute("data-host") for e in visible(browser, "tr.change-row")] == ["web1", "web2", "web3", "web4"]
    lanes = visible(browser, "#timeline .lane")
    assert any("I update the package mywebapp" in lane.text for lane in lanes)
    steps = browser.find_element(By.ID, "spec").text
    assert "When I block the load balancer" in steps and "Then traffic from the load balancer should be unblocked" in steps


def test_the_report_of_the_broken_release_puts_the_two_failing_hosts_first_with_expected_and_actual(runs, browser):
    run = runs["failing"]
    assert run.rc != 0, run.out
    assert run.matrix.bad_hosts() == ["web1", "web2"], run.out
    open_report(browser, run, "report-failing")
    verdict = browser.find_element(By.ID, "verdict")
    assert "RELEASE GATE FAILED" in verdict.text and "web1, web2" in verdict.text
    failing = browser.find_element(By.ID, "failing")
    assert failing.location["y"] < browser.find_element(By.ID, "spec").location["y"]
    rows = visible(browser, "#failing tr.host-row")
    assert {r.get_attribute("data-host") for r in rows} == {"web1", "web2"}
    web1 = next(r for r in rows if r.get_attribute("data-host") == "web1")
    assert "I restart the service mywebapp" in web1.text and "not ready" in web1.text
    # the hosts that passed come after the failing ones in the table of changes
    order = [e.get_attribute("data-host") for e in visible(browser, "tr.change-row")]
    assert order[:2] == ["web1", "web2"] and set(order[2:]) == {"web3", "web4"}
    # the batches of the update, in time order on the time line
    update = next(lane for lane in visible(browser, "#timeline .lane")
                  if "update the package mywebapp to 4.2.6-3.el5" in lane.text)
    bars = update.find_elements(By.CSS_SELECTOR, ".bar")
    assert len(bars) == 2 and bars[0].location["x"] < bars[1].location["x"]
    assert "batch 1: web3" in update.text and "batch 2: web4" in update.text
    # on a phone: no sideways scrolling, the verdict still first
    open_report(browser, run, "report-failing-phone", PHONE)
    assert no_horizontal_scroll(browser)
    assert visible(browser, "#failing tr.host-row")[0].get_attribute("data-host") == "web1"


def test_ctrl_c_still_recaps_and_names_the_hosts_left_blocked(runs):
    """Ctrl-C used to leave no recap and no report: after_all waited for the health check still
    running on the hosts (up to its 60 s), and the operator's second Ctrl-C cut it short."""
    run = runs["interrupted"]
    assert run.rc != 0 and run.stopped_in < 15, "after_all waited for the hosts"
    assert 'interrupted at "Then the health check on port 8080 should report version 9.9.9' in run.out
    assert "left out of the load balancer: web1, web2 (firewall 10.231.0.2 blocked)" in run.out
    assert 'web1: FAILED at "Then the health check on port 8080 should report version 9.9.9 within 60 seconds": ' \
           'interrupted while running: outcome unknown' in run.out
    assert 'Release gate: FAILED: interrupted at "Then the health check' in run.out and "Traceback" not in run.out
    assert run.matrix.interrupted.startswith('at "Then the health check') and not run.matrix.passed
    assert run.left_blocked == {"web1", "web2"}


def test_the_report_of_an_interrupted_run_says_where_it_stopped(runs, browser):
    run = runs["interrupted"]
    assert run.rc != 0, run.out
    # the console: behave's abort noise is gone, the step says it once, the recap says the rest
    assert "CAPTURED STDERR" not in run.out and "ABORTED" not in run.out, run.out
    assert "interrupted by the operator (Ctrl-C)" in run.out and "USING RUNNER" not in run.out
    open_report(browser, run, "report-interrupted")
    assert "RELEASE GATE FAILED" in browser.find_element(By.ID, "verdict").text
    assert 'Interrupted at "Then the health check on port 8080' in browser.find_element(By.ID, "identity").text
    rows = visible(browser, "#failing tr.host-row")
    assert {r.get_attribute("data-host") for r in rows} == {"web1", "web2"}
    assert "outcome unknown" in rows[0].text
    assert "left out of the load balancer: web1, web2" in browser.find_element(By.ID, "recap").text


def test_orch_report_renders_the_same_page_from_the_json_alone(runs, browser, tmp_path):
    run = runs["failing"]
    again = tmp_path / "again.html"
    done = subprocess.run([sys.executable, "-m", "orchestrator_lib.cli", "report", str(run.json), "-o", str(again)],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert again.read_text() == run.html.read_text()


def test_the_report_prints(runs, browser):
    """Chromium's own print to PDF of the failing run's page (kept beside the screenshots)."""
    browser.get(runs["failing"].html.as_uri())
    pdf = base64.b64decode(browser.print_page())
    assert pdf.startswith(b"%PDF") and pdf.count(b"/Type /Page") + pdf.count(b"/Type/Page") >= 1
    (SCREENSHOTS / "report-failing.pdf").write_bytes(pdf)


# ---- JUnit per host, as a CI reads it ----------------------------------------------------------------
def test_the_junit_file_of_the_broken_release_fails_exactly_the_two_broken_hosts(runs):
    run = runs["failing"]
    xml = JUnitXml.fromfile(str(run.junit / "HOSTS-broken_release.xml"))
    cases = {(case.classname, case.name): case for suite in xml for case in suite}
    outcome = {key: ("failed" if any(isinstance(r, (Failure, Error)) for r in case.result) else
                     "skipped" if any(isinstance(r, Skipped) for r in case.result) else "passed")
               for key, case in cases.items()}
    feature = "Release mywebapp a pair of hosts at a time"
    assert outcome == {
        (f"{feature}.Release 4.2.6-3.el5 on web3, web4 -- @1.1", "web3"): "passed",
        (f"{feature}.Release 4.2.6-3.el5 on web3, web4 -- @1.1", "web4"): "passed",
        (f"{feature}.Release 4.2.7-1.el5 on web1, web2 -- @1.2", "web1"): "failed",
        (f"{feature}.Release 4.2.7-1.el5 on web1, web2 -- @1.2", "web2"): "failed"}
    failure = next(r for r in cases[(f"{feature}.Release 4.2.7-1.el5 on web1, web2 -- @1.2", "web1")].result)
    assert "I restart the service mywebapp" in failure.message and "(line 12)" in failure.message
    assert "not ready" in failure.message
    assert list(run.junit.glob("TESTS-*.xml")), "behave's own per-scenario file is there too"


# ---- the audit logs name the spec --------------------------------------------------------------------
def test_both_audit_logs_name_the_feature_scenario_step_line_and_commit(runs):
    run = runs["passing"]
    commit = run.commit
    update = [e for e in run.host_audit if e.get("agent") == "package" and e.get("action") == "update"]
    assert update, run.host_audit[-3:]
    spec = update[-1]["spec"]
    assert spec == {"file": "features/deploy_webapp.feature", "scenario": "Update the website",
                    "step": "When I update the package mywebapp to 4.2.6-3.el5", "line": 14, "commit": commit}
    controller = [json.loads(line) for line in (ROOT / "reports" / "audit.jsonl").read_text().splitlines()]
    mine = [e for e in controller if e.get("reqid") == update[-1]["reqid"]]
    assert {e["host"] for e in mine} == {"web1", "web2", "web3", "web4"}
    assert {e["status"] for e in mine} >= {"sent", "changed"}
    assert all(e["spec"] == spec for e in mine), "the 'sent' lines and the outcome lines alike"
