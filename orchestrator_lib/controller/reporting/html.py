"""The run as a change record a person reads: one self-contained HTML file (no script, no file
it loads) rendered with Jinja2 from the result matrix alone, so `orch report x.json` renders
the same page later. The gate's verdict first, then the failing hosts with expected and actual,
the spec as written with each step's per-host outcome, what changed, and the batches on a time
line. Templates are package data in `templates/`."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import json

import jinja2

from ..errors import OrchestratorError
from .matrix import BAD, Cell, Outcome, ResultMatrix, ScenarioRecord, StepRecord, _show

#: outcomes in the order a step's summary names them (worst first); any other status a newer
#: run records (e.g. "rolled back") is shown after these, as it is named
ORDER = ("failed", "unreachable", "not attempted", "rolled back", "changed", "would change", "ok", "skipped")
#: a time-line bar is never drawn narrower than this (% of the run), so a 10 ms step is visible
MIN_BAR = 0.6


def css_class(status: str) -> str:
    return "st-" + status.replace(" ", "-")


def _rank(status: str) -> int:
    return ORDER.index(status) if status in ORDER else len(ORDER)


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    if value < 60:
        return f"{value:.1f} s" if value < 10 else f"{value:.0f} s"
    minutes, seconds = divmod(int(round(value)), 60)
    return f"{minutes} min {seconds:02d} s"


@dataclass
class Problem:
    """One bad cell of a failing host."""
    scenario: str
    step: str
    line: int
    status: str
    expected: str
    actual: str


@dataclass
class HostRow:
    host: str
    bad: bool
    problems: list[Problem] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)
    transient: list[str] = field(default_factory=list)


@dataclass
class Bar:
    label: str          # "batch 1: web1, web2"
    status: str         # the worst outcome in it
    left: float         # % of the run
    width: float
    seconds: str


@dataclass
class Lane:
    step: str
    scenario: str
    bars: list[Bar]


def _cell_problem(scenario: ScenarioRecord, step: StepRecord, cell: Cell) -> Problem:
    actual = cell.actual or cell.message
    return Problem(scenario.name, step.text, step.line, cell.status.value, cell.expected, actual)


def host_rows(matrix: ResultMatrix) -> list[HostRow]:
    """Every host of the run, the ones that ended a step badly first (in run order)."""
    rows: dict[str, HostRow] = {h: HostRow(h, False) for h in matrix.hosts}
    for scenario, step, host, cell in matrix.cells():
        if cell.status in BAD:
            rows[host].bad = True
            rows[host].problems.append(_cell_problem(scenario, step, cell))
    for host, row in rows.items():
        recap = matrix.recap(host)
        row.changes = recap.lasting + recap.would_change
        row.transient = recap.transient
    return sorted(rows.values(), key=lambda r: not r.bad)


def outcome_groups(step: StepRecord) -> list[tuple[str, list[tuple[str, Cell]]]]:
    """[(status, [(host, cell), ...]), ...], worst status first."""
    groups: dict[str, list[tuple[str, Cell]]] = {}
    for host, cell in step.cells.items():
        groups.setdefault(cell.status.value, []).append((host, cell))
    return sorted(groups.items(), key=lambda g: _rank(g[0]))


def cell_title(cell: Cell) -> str:
    """What a host's chip says on hover and in print: the message, and before -> after."""
    parts = [cell.message] if cell.message else []
    if cell.status in (Outcome.CHANGED, Outcome.WOULD_CHANGE, Outcome.ROLLED_BACK) and cell.before != cell.after:
        parts.append(f"{cell.subject + ': ' if cell.subject else ''}{_show(cell.before)} -> {_show(cell.after)}")
    if cell.expected and cell.status not in (Outcome.OK,):
        parts.append(f"expected {cell.expected}, actual {cell.actual}")
    return "; ".join(parts)


def time_span(matrix: ResultMatrix) -> tuple[float, float] | None:
    """(start, end) in epoch seconds of everything timed in the run, None if nothing was."""
    starts, ends = [], []
    if matrix.identity.started is not None:
        starts.append(matrix.identity.started)
        if matrix.identity.duration is not None:
            ends.append(matrix.identity.started + matrix.identity.duration)
    for scenario in matrix.scenarios:
        for step in scenario.steps:
            if step.started is not None:
                starts.append(step.started)
                ends.append(step.started + (step.elapsed or 0.0))
            for cell in step.cells.values():
                if cell.started is not None:
                    starts.append(cell.started)
                    ends.append(cell.started + (cell.duration or 0.0))
    if not starts:
        return None
    return min(starts), max(ends + starts)


def lanes(matrix: ResultMatrix) -> list[Lane]:
    """One lane per step that reached hosts, one bar per batch (from its hosts' own start and
    duration), as a percentage of the run so the page needs no script to draw it."""
    span = time_span(matrix)
    if span is None:
        return []
    start, end = span
    total = max(end - start, 1e-6)
    out = []
    for scenario in matrix.scenarios:
        for step in scenario.steps:
            batches: dict[int, list[tuple[str, Cell]]] = {}
            for host, cell in step.cells.items():
                if cell.started is not None:
                    batches.setdefault(cell.batch or 0, []).append((host, cell))
            if not batches:
                if step.started is None or not step.cells or step.status in ("skipped", "untested"):
                    continue
                # a check or a request cut short (Ctrl-C): no per-host times, the step's own then
                worst = min((c.status.value for c in step.cells.values()), key=_rank)
                left = (step.started - start) / total * 100
                width = max(MIN_BAR, (step.elapsed or 0.0) / total * 100)
                out.append(Lane(step.text, scenario.name, [Bar(", ".join(step.cells), worst, round(min(left, 100 - MIN_BAR), 2),
                                                               round(min(width, 100 - left), 2), _seconds(step.elapsed or 0.0))]))
                continue
            bars = []
            several = len(batches) > 1
            for number in sorted(batches):
                members = batches[number]
                b_start = min(c.started for _, c in members)  # type: ignore[type-var]
                b_end = max(c.started + (c.duration or 0.0) for _, c in members)  # type: ignore[operator]
                worst = min((c.status.value for _, c in members), key=_rank)
                hosts = ", ".join(h for h, _ in members)
                label = f"batch {number + 1}: {hosts}" if several else hosts
                left = (b_start - start) / total * 100
                width = max(MIN_BAR, (b_end - b_start) / total * 100)
                bars.append(Bar(label, worst, round(min(left, 100 - MIN_BAR), 2), round(min(width, 100 - left), 2),
                                _seconds(b_end - b_start)))
            out.append(Lane(step.text, scenario.name, bars))
    return out


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    try:
        return jinja2.FileSystemBytecodeCache()
    except (OSError, RuntimeError):  # no usable cache directory: compile every time, as before
        return None


def environment() -> jinja2.Environment:
    # Compiling the template is ~35 ms of every run's report; jinja's bytecode cache keeps it compiled
    # (keyed by the template's checksum) in a directory of this user's own, which jinja creates 0700
    # and refuses to use if anyone else owns it.
    env = jinja2.Environment(loader=jinja2.PackageLoader("orchestrator_lib.controller.reporting", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]), trim_blocks=True,
                             lstrip_blocks=True, undefined=jinja2.StrictUndefined,
                             bytecode_cache=_bytecode_cache())
    env.filters["css"] = css_class
    env.filters["seconds"] = _seconds
    env.globals.update(outcome_groups=outcome_groups, cell_title=cell_title)
    return env


def render(matrix: ResultMatrix) -> str:
    span = time_span(matrix)
    identity = matrix.identity
    duration = identity.duration if identity.duration is not None else (span[1] - span[0] if span else None)
    by_file: dict[str, list[ScenarioRecord]] = {}
    for scenario in matrix.scenarios:
        by_file.setdefault(scenario.file, []).append(scenario)
    rows = host_rows(matrix)
    return environment().get_template("report.html.j2").render(
        matrix=matrix, identity=identity, duration=duration, gate=matrix.gate_line(), passed=matrix.passed,
        failing=[r for r in rows if r.bad], rows=rows, features=by_file, lanes=lanes(matrix),
        recap=matrix.recap_lines(), span_seconds=(span[1] - span[0]) if span else None)


def write_html(matrix: ResultMatrix, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(matrix), encoding="utf-8")
    return path


def html_path_for(json_path: Path) -> Path:
    """The HTML report's default place: next to the JSON, same name."""
    return json_path.with_suffix(".html")


class ReportError(OrchestratorError):
    """A report file that cannot be read back: one line naming it."""


def load_matrix(path: Path) -> ResultMatrix:
    """An earlier run's JSON matrix, or a one-line error naming the file and what is wrong."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise ReportError(f"{path}: cannot read: {e.strerror or e}") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise ReportError(f"{path}: not a JSON report: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("scenarios"), list):
        raise ReportError(f"{path}: not a deploy report (no 'scenarios' list)")
    try:
        return ResultMatrix.from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ReportError(f"{path}: not a deploy report this version can read: {type(e).__name__}: {e}") from None


def render_file(json_path: Path, html_path: Path | None = None) -> Path:
    """`orch report`: the HTML page of an earlier run, next to its JSON unless told otherwise."""
    matrix = load_matrix(json_path)
    target = html_path or html_path_for(Path(json_path))
    try:
        return write_html(matrix, target)
    except OSError as e:
        raise ReportError(f"{target}: cannot write: {e.strerror or e}") from None
