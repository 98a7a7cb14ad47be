"""JUnit XML a CI shows per host: one test case per scenario x host (classname
`feature.scenario`, name the host), so GitLab or Jenkins lists "web3 failed" rather than only
"Update the website failed". A failing host's failure message names the step, its line and the
expected and actual values; behave's own per-scenario file is written beside it by behave."""
from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from pathlib import Path

from .matrix import BAD, Cell, Outcome, ResultMatrix, ScenarioRecord, StepRecord, _reason

#: the test case of a scenario that failed before it had any host (bad target, setup error)
NO_HOST = "(no host)"


def _where(step: StepRecord) -> str:
    return f'"{step.text}"' + (f" (line {step.line})" if step.line else "")


def failure_of(scenario: ScenarioRecord, host: str) -> tuple[str, str] | None:
    """(message, detail) of the first step that ended badly on `host`, None if none did."""
    for step in scenario.steps:
        cell = step.cells.get(host)
        if cell is None or cell.status not in BAD:
            continue
        return _describe(step, cell), "\n".join(filter(None, [step.error, *step.notes]))
    return None


def _describe(step: StepRecord, cell: Cell) -> str:
    if cell.expected:
        return f"{_where(step)}: {cell.status}: expected {cell.expected}, actual {cell.actual or cell.message}"
    return f"{_where(step)}: {cell.status}: {cell.message}".rstrip(": ")


def scenario_failure(scenario: ScenarioRecord) -> tuple[str, str] | None:
    """A scenario that failed without a bad host cell (an undefined step, a Given): its own error."""
    if scenario.status in ("passed", "skipped", "untested"):
        return None
    for step in scenario.steps:
        if step.error:
            return f"{_where(step)}: {_reason(step.error)}", step.error
    return f"scenario {scenario.status}", scenario.reason


def _seconds(scenario: ScenarioRecord, host: str) -> float:
    return sum(s.cells[host].duration or 0.0 for s in scenario.steps if host in s.cells)


def to_xml(matrix: ResultMatrix, suite_name: str) -> ET.ElementTree:
    suites = ET.Element("testsuites", name=suite_name)
    suite = ET.SubElement(suites, "testsuite", name=suite_name,
                          timestamp=time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(matrix.identity.started))
                          if matrix.identity.started else "")
    counts = {"tests": 0, "failures": 0, "skipped": 0}
    total = 0.0
    for scenario in matrix.scenarios:
        classname = f"{scenario.feature}.{scenario.name}".strip()
        hosts = scenario.hosts or [NO_HOST]
        whole = scenario_failure(scenario)
        for host in hosts:
            seconds = _seconds(scenario, host)
            total += seconds
            case = ET.SubElement(suite, "testcase", classname=classname, name=host, time=f"{seconds:.3f}",
                                 file=scenario.file, line=str(scenario.line or ""))
            counts["tests"] += 1
            failed = failure_of(scenario, host) or whole
            cells = [s.cells[host] for s in scenario.steps if host in s.cells]
            if failed is not None:
                message, detail = failed
                ET.SubElement(case, "failure", message=message, type="failed").text = detail
                counts["failures"] += 1
            elif scenario.status == "skipped" or (cells and all(c.status is Outcome.SKIPPED for c in cells)):
                ET.SubElement(case, "skipped", message=scenario.reason or "not run")
                counts["skipped"] += 1
    suite.set("tests", str(counts["tests"]))
    suite.set("failures", str(counts["failures"]))
    suite.set("errors", "0")
    suite.set("skipped", str(counts["skipped"]))
    suite.set("time", f"{total:.3f}")
    ET.indent(suites)
    return ET.ElementTree(suites)


def write_junit(matrix: ResultMatrix, path: Path, suite_name: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    to_xml(matrix, suite_name).write(path, encoding="utf-8", xml_declaration=True)
    return path
