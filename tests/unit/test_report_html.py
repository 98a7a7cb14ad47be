"""The HTML report and the per-host JUnit from a matrix alone (the browser tests in
tests/integration/test_reports.py open real runs' pages): what each section holds, escaping,
the time line's bars per batch, and `orch report` errors in one line."""
from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET

from orchestrator_lib import cli
from orchestrator_lib.controller.reporting import Cell, Outcome, ResultMatrix
from orchestrator_lib.controller.reporting.html import lanes, render
from orchestrator_lib.controller.reporting.junit import to_xml


def matrix() -> ResultMatrix:
    m = ResultMatrix("local")
    base = time.time()  # the steps are stamped with the clock as they start
    m.identity.caller, m.identity.started, m.identity.duration = "ops@ctl", base, 12.0
    m.start_feature("features/r.feature", "Release <b>", ["why"], ["fail_fast"])
    m.start_scenario("Roll out", "Release <b>", "features/r.feature", line=3)
    m.start_step("When", "I update the package app to 2", line=4)
    for host, batch, status in (("web1", 0, Outcome.CHANGED), ("web2", 1, Outcome.FAILED), ("web3", 2, Outcome.NOT_ATTEMPTED)):
        started = {"started": base + 1.0 + 2 * batch, "duration": 1.5, "batch": batch} if batch < 2 else {}
        m.record(host, Cell(status, f"{host} {status}", "package#update", "package app", "1", "2", **started))
    m.end_step("failed", "package#update did not succeed on web2, web3")
    m.start_step("Then", "the package version for app should be 2", line=5)
    m.end_step("skipped")
    m.end_scenario("failed", hosts=["web1", "web2", "web3"])
    m.start_scenario("Roll back", "Release <b>", "features/r.feature", line=8)
    m.start_step("When", "I roll back", line=9)
    m.record("web1", Cell(Outcome.ROLLED_BACK, "rolled back", "package#update", "package app", "2", "1"))
    m.end_step("passed")
    m.end_scenario("passed")
    return m


def test_the_page_leads_with_the_verdict_then_the_failing_hosts_and_escapes_the_spec():
    page = render(matrix())
    assert page.index("RELEASE GATE FAILED") < page.index('id="failing"') < page.index('id="spec"')
    assert "Release &lt;b&gt;" in page and "Release <b>" not in page
    assert 'data-host="web2"' in page and 'data-host="web3"' in page
    assert "st-rolled-back" in page and "ops@ctl" in page and "<script" not in page


def test_the_time_line_has_a_bar_per_batch_in_time_order_and_none_for_hosts_never_attempted():
    lane, rollback = lanes(matrix())  # the skipped Then has none
    assert rollback.step == "When I roll back" and [b.status for b in rollback.bars] == ["rolled back"]
    assert [b.label for b in lane.bars] == ["batch 1: web1", "batch 2: web2"]
    assert lane.bars[0].left < lane.bars[1].left and [b.status for b in lane.bars] == ["changed", "failed"]


def test_junit_has_a_case_per_scenario_and_host_and_fails_the_bad_ones_with_their_step_and_line():
    root = to_xml(matrix(), "Release").getroot()
    cases = {(c.get("classname"), c.get("name")): c for c in root.iter("testcase")}
    assert set(cases) == {("Release <b>.Roll out", h) for h in ("web1", "web2", "web3")} | {("Release <b>.Roll back", "web1")}
    web2 = cases[("Release <b>.Roll out", "web2")].find("failure")
    assert web2 is not None and '"When I update the package app to 2" (line 4): failed: web2 failed' == web2.get("message")
    assert cases[("Release <b>.Roll out", "web3")].find("failure") is not None
    # web1 changed in "Roll out", but the scenario failed (on the others): it is marked failed too
    assert cases[("Release <b>.Roll out", "web1")].find("failure") is not None
    assert cases[("Release <b>.Roll back", "web1")].find("failure") is None
    ET.tostring(root)  # well-formed


def test_orch_report_renders_from_json_and_refuses_a_file_that_is_not_a_report(tmp_path, capsys):
    source = tmp_path / "run.json"
    matrix().write_json(source)
    assert cli.main(["report", str(source)]) == 0
    assert (tmp_path / "run.html").read_text() == render(ResultMatrix.read_json(source))
    (tmp_path / "bad.json").write_text(json.dumps({"passed": True}))
    assert cli.main(["report", str(tmp_path / "bad.json")]) == 2
    assert "not a deploy report" in capsys.readouterr().err
