"""The release gate's evidence: what every step of a deploy did on every host (host x scenario x
step). The behave hooks build it while a feature runs; it is written as JSON for CI and summed
up as a recap for the operator ("web3 failed here; web1 changed this"). Tests and tools read it
back with `ResultMatrix.from_dict`.

A deploy passes the gate only when every scenario passed and no host ended a step failed,
unreachable or not attempted.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator

from ...protocol import BAD, OUT_OF_LB, Status
from ..orchestration import HostResult, RunResult
from .identity import RunIdentity


#: What one step did on one host: the protocol's status vocabulary (skipped: the step did not run).
Outcome = Status
#: subjects of the cells that take a host out of the load balancer or put it back
LB_SUBJECTS = ("firewall ", "haproxy ")
#: behave's scenario statuses that do not fail the gate (skipped: deselected, or after a failure
#: that already failed it).
GOOD_SCENARIO = frozenset({"passed", "skipped"})


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def _show(value: Any) -> str:
    if value is None:
        return "absent"
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    return str(value)


#: what behave puts before an assertion's message
_ASSERT_PREFIXES = ("ASSERT FAILED: ", "Assertion Failed: ")


#: at most this many lines of a step's error go into the recap's scenario line
REASON_LINES = 5


def _reason(text: str) -> str:
    """A step's error in one line: a Then's subject with what differed on which host (PyHamcrest's
    "Expected:" restates the step), a When's hosts with their errors, a bug's exception line."""
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    if not lines:
        return ""
    if lines[0].startswith("Traceback"):
        return lines[-1]
    for prefix in _ASSERT_PREFIXES:
        lines[0] = lines[0].removeprefix(prefix)
    lines = [lines[0]] + [ln.removeprefix("but: ") for ln in lines[1:] if not ln.startswith("Expected:")]
    more = len(lines) - REASON_LINES
    if more > 0:
        lines = lines[:REASON_LINES] + [f"and {more} more"]
    out = lines[0]
    for line in lines[1:]:
        out += (" " if out.endswith(":") else ": " if out == lines[0] else "; ") + line
    return out.rstrip(":")


@dataclass
class Cell:
    """One host in one step. `subject` names what `before`/`after` describe ("package mywebapp"),
    so the recap can tell a lasting change from one a later step undid (block, then unblock)."""
    status: Outcome
    message: str = ""
    label: str = ""     # the agent action behind it, "package#update"
    subject: str = ""
    before: Any = None
    after: Any = None
    expected: str = ""            # a check's wanted value, in words ("" for an action)
    actual: str = ""              # what the host had instead
    started: float | None = None  # epoch s, when the host's request started (the time line)
    duration: float | None = None
    batch: int | None = None      # 0-based batch of the request

    @classmethod
    def from_host_result(cls, result: HostResult, label: str = "", subject: str = "") -> "Cell":
        return cls(result.status, result.message, label, subject, result.before, result.after,
                   **timing_of(result))

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status.value, "message": self.message, "label": self.label,
                "subject": self.subject, "before": self.before, "after": self.after,
                "expected": self.expected, "actual": self.actual, "started": self.started,
                "duration": self.duration, "batch": self.batch}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Cell":
        return cls(Outcome(d["status"]), d.get("message", ""), d.get("label", ""), d.get("subject", ""),
                   d.get("before"), d.get("after"), d.get("expected", ""), d.get("actual", ""),
                   d.get("started"), d.get("duration"), d.get("batch"))


def timing_of(result: HostResult) -> dict[str, Any]:
    """The time-line fields of a Cell from a host's result (none for a host never attempted)."""
    if result.started is None:
        return {}
    return {"started": result.started, "duration": result.duration, "batch": result.batch}


@dataclass
class StepRecord:
    keyword: str
    name: str
    status: str = "untested"           # behave's word: passed, failed, error, skipped, ...
    error: str = ""
    cells: dict[str, Cell] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # tally lines, plan lines
    line: int = 0                      # in the feature file (0: unknown)
    started: float | None = None       # epoch s
    elapsed: float | None = None       # s, measured

    @property
    def text(self) -> str:
        return f"{self.keyword} {self.name}"

    def to_dict(self) -> dict[str, Any]:
        return {"keyword": self.keyword, "name": self.name, "status": self.status, "error": self.error,
                "notes": list(self.notes), "hosts": {h: c.to_dict() for h, c in self.cells.items()},
                "line": self.line, "started": self.started, "elapsed": self.elapsed}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "StepRecord":
        return cls(d["keyword"], d["name"], d.get("status", "untested"), d.get("error", ""),
                   {h: Cell.from_dict(c) for h, c in d.get("hosts", {}).items()}, list(d.get("notes", [])),
                   int(d.get("line") or 0), d.get("started"), d.get("elapsed"))


@dataclass
class ScenarioRecord:
    name: str
    feature: str = ""
    file: str = ""
    status: str = "untested"
    reason: str = ""                   # why it was skipped, when it was
    steps: list[StepRecord] = field(default_factory=list)
    rollout: dict[str, Any] = field(default_factory=dict)  # policy, seed, canaries, batches, budget, analyses
    line: int = 0                      # in the feature file (0: unknown)

    @property
    def hosts(self) -> list[str]:
        return list(dict.fromkeys(h for s in self.steps for h in s.cells))

    @property
    def error(self) -> str:
        """The first failed step and its one-line error, "" when none failed."""
        for step in self.steps:
            if step.error:
                return f'"{step.text}": {_reason(step.error)}'
        return ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "feature": self.feature, "file": self.file, "status": self.status,
                "reason": self.reason, "error": self.error, "hosts": self.hosts,
                "steps": [s.to_dict() for s in self.steps], "line": self.line,
                **({"rollout": self.rollout} if self.rollout else {})}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ScenarioRecord":
        return cls(d["name"], d.get("feature", ""), d.get("file", ""), d.get("status", "untested"),
                   d.get("reason", ""), [StepRecord.from_dict(s) for s in d.get("steps", [])], d.get("rollout", {}),
                   int(d.get("line") or 0))


@dataclass
class FeatureRecord:
    """A feature as written: its title, description and tags (its scenarios are in the matrix)."""
    name: str
    description: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": list(self.description), "tags": list(self.tags)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FeatureRecord":
        return cls(str(d.get("name", "")), list(d.get("description", [])), list(d.get("tags", [])))


@dataclass
class HostRecap:
    """One host's story in a run, in words."""
    host: str
    lasting: list[str] = field(default_factory=list)       # changes still in place at the end
    transient: list[str] = field(default_factory=list)     # changed, then changed back
    would_change: list[str] = field(default_factory=list)  # plan mode
    problems: list[str] = field(default_factory=list)      # failed / unreachable / not attempted
    rolled_back: list[str] = field(default_factory=list)   # what a @rollback scenario put back
    skipped: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def line(self) -> str:
        parts = [f"{p}" for p in self.problems]
        if self.rolled_back:
            parts.append("ROLLED BACK " + "; ".join(self.rolled_back))
        if self.lasting:
            parts.append("changed " + "; ".join(self.lasting))
        if self.would_change:
            parts.append("would change " + "; ".join(self.would_change))
        if self.transient:
            parts.append("transient " + "; ".join(self.transient))
        if not (self.lasting or self.would_change or self.problems):
            parts.insert(0, "no lasting change")
        if self.skipped:
            parts.append(f"{self.skipped} step{'s' if self.skipped != 1 else ''} skipped")
        return f"{self.host}: " + " | ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "lasting": self.lasting, "transient": self.transient,
                "would_change": self.would_change, "problems": self.problems,
                "rolled_back": self.rolled_back, "skipped": self.skipped}


@dataclass
class ResultMatrix:
    env: str = ""
    plan: bool = False
    scenarios: list[ScenarioRecord] = field(default_factory=list)
    error: str = ""                    # a failure outside any scenario (setup), one line
    interrupted: str = ""              # where the operator stopped the run (Ctrl-C), "" if not
    paused: str = ""                   # where an inconclusive analysis paused the rollout, "" if not
    identity: RunIdentity = field(default_factory=RunIdentity)
    features: dict[str, FeatureRecord] = field(default_factory=dict)   # by file
    #: told of each scenario and step as it starts and ends (the run's journal); not reported
    listener: Any = field(default=None, repr=False, compare=False)

    # ---- building, as the run goes ----------------------------------------------------------
    def start_feature(self, file: str, name: str, description: list[str] | None = None,
                      tags: list[str] | None = None) -> None:
        self.features[file] = FeatureRecord(name, list(description or []), list(tags or []))
        self.identity.add_spec(file)

    def start_scenario(self, name: str, feature: str = "", file: str = "", line: int = 0) -> ScenarioRecord:
        self.scenarios.append(ScenarioRecord(name, feature, file, line=line))
        if self.listener is not None:
            self.listener.scenario(feature, file, name)
        return self.scenarios[-1]

    def start_step(self, keyword: str, name: str, line: int = 0, *, timed: bool = True) -> StepRecord:
        if not self.scenarios:
            self.start_scenario("(outside any scenario)")
        self.scenarios[-1].steps.append(StepRecord(keyword, name, line=line,
                                                   started=time.time() if timed else None))
        if self.listener is not None:
            self.listener.step(f"{keyword} {name}")
        return self.scenarios[-1].steps[-1]

    @property
    def current_step(self) -> StepRecord | None:
        return self.scenarios[-1].steps[-1] if self.scenarios and self.scenarios[-1].steps else None

    def record(self, host: str, cell: Cell) -> None:
        """Set a host's cell in the current step; a later record for the same host replaces it
        unless the earlier one was a failure (a failure is never hidden)."""
        step = self.current_step
        if step is None:
            step = self.start_step("", "(outside any step)")
        old = step.cells.get(host)
        if old is not None and old.status in BAD and cell.status not in BAD:
            return
        step.cells[host] = cell

    def record_run(self, run: RunResult, subject: str = "",
                   describe: Callable[[HostResult], Cell] | None = None) -> None:
        """One cell per host of an orchestration run (`describe` may reword a host's result)."""
        for result in run.results.values():
            cell = describe(result) if describe else Cell.from_host_result(result, run.label, subject)
            self.record(result.host, cell)

    def note(self, line: str) -> None:
        if self.current_step is not None:
            self.current_step.notes.append(line)

    def end_step(self, status: str, error: str = "") -> None:
        step = self.current_step
        if step is not None:
            step.status, step.error = status, error
            if step.started is not None and step.elapsed is None:
                step.elapsed = max(0.0, time.time() - step.started)
            if self.listener is not None:
                self.listener.step_end(status, {h: c.status.value for h, c in step.cells.items()})

    def interrupt(self, where: str) -> None:
        """The run was stopped (Ctrl-C) `where` ('at "When ..."'): it fails the gate, and the
        recap says so (the first place counts)."""
        self.interrupted = self.interrupted or where

    def end_scenario(self, status: str, reason: str = "", hosts: list[str] | tuple[str, ...] = ()) -> None:
        """Close the scenario: steps that never ran get SKIPPED for every host it targeted
        (`hosts`, else every host it has a cell for), so each host x step has a cell."""
        if not self.scenarios:
            return
        scenario = self.scenarios[-1]
        scenario.status, scenario.reason = status, reason
        targeted = list(hosts) or scenario.hosts
        for step in scenario.steps:
            if step.status in ("skipped", "untested"):
                for host in targeted:
                    step.cells.setdefault(host, Cell(Outcome.SKIPPED, "not run: an earlier step failed"))
        if self.listener is not None:
            outcomes: dict[str, list[str]] = {}
            for step in scenario.steps:
                for host, cell in step.cells.items():
                    outcomes.setdefault(host, []).append(cell.status.value)
            self.listener.scenario_end(status, targeted, outcomes)

    # ---- reading ------------------------------------------------------------------------------
    @property
    def hosts(self) -> list[str]:
        return list(dict.fromkeys(h for sc in self.scenarios for h in sc.hosts))

    def cells(self) -> Iterator[tuple[ScenarioRecord, StepRecord, str, Cell]]:
        for scenario in self.scenarios:
            for step in scenario.steps:
                for host, cell in step.cells.items():
                    yield scenario, step, host, cell

    def failed_hosts(self, file: str) -> list[str]:
        """Hosts that ended a step FAILED in the feature file `file`, first failure first."""
        return list(dict.fromkeys(h for sc, _, h, c in self.cells() if sc.file == file and c.status is Outcome.FAILED))

    def bad_hosts(self) -> list[str]:
        return list(dict.fromkeys(h for _, _, h, c in self.cells() if c.status in BAD))

    @property
    def passed(self) -> bool:
        """The gate: something ran, every scenario passed, every targeted host ended every step well."""
        return (not self.error and not self.interrupted and not self.paused and any(s.status == "passed" for s in self.scenarios)
                and all(s.status in GOOD_SCENARIO for s in self.scenarios) and not self.bad_hosts())

    def recap(self, host: str) -> HostRecap:
        """Changes are grouped by subject in run order: a subject that ends where it started
        (blocked, then unblocked) is transient; one that does not is a lasting change."""
        out = HostRecap(host)
        chains: dict[str, list[Any]] = {}
        for _, step, h, cell in self.cells():
            if h != host:
                continue
            if cell.status in BAD:
                where = f' at "{step.text}"'
                out.problems.append(f"{cell.status.value.upper()}{where}: {cell.message}".rstrip(": "))
            elif cell.status is Outcome.SKIPPED:
                out.skipped += 1
            elif cell.status in (Outcome.CHANGED, Outcome.WOULD_CHANGE, Outcome.ROLLED_BACK):
                if cell.status is Outcome.ROLLED_BACK:  # a change too: its subject's chain goes back
                    out.rolled_back.append(f"{cell.subject or cell.label} {_show(cell.before)} -> {_show(cell.after)}")
                if not cell.subject:
                    what = f"{cell.label}: {cell.message}" if cell.label else cell.message
                    (out.would_change if cell.status is Outcome.WOULD_CHANGE else out.lasting).append(what)
                    continue
                kind = Outcome.CHANGED if cell.status is Outcome.ROLLED_BACK else cell.status
                chain = chains.setdefault(f"{kind.value}\0{cell.subject}", [cell.before])
                if not _same(chain[-1], cell.before):
                    chain.append(cell.before)
                chain.append(cell.after)
        for key, chain in chains.items():
            status, subject = key.split("\0", 1)
            words = f"{subject} " + " -> ".join(_show(v) for v in chain)
            transient = _same(chain[0], chain[-1]) and len(chain) > 2
            if status == Outcome.WOULD_CHANGE.value:
                out.would_change.append(words + (" (transient)" if transient else ""))
            elif transient:
                out.transient.append(words)
            else:
                out.lasting.append(words)
        return out

    def out_of_load_balancer(self) -> dict[str, list[str]]:
        """{"firewall 10.231.0.2 blocked": [hosts]}: hosts the run last saw out of the load
        balancer (blocked, disabled, drained), so an operator knows whom to put back."""
        last: dict[tuple[str, str], Any] = {}
        for _, _, host, cell in self.cells():
            if cell.subject.startswith(LB_SUBJECTS) and cell.status in (Outcome.OK, Outcome.CHANGED):
                last[(host, cell.subject)] = cell.after
        out: dict[str, list[str]] = {}
        for (host, subject), state in last.items():
            if state in OUT_OF_LB:
                out.setdefault(f"{subject} {state}", []).append(host)
        return out

    def recap_lines(self) -> list[str]:
        lines = []
        if self.error:
            lines.append(f"error: {self.error}")
        if self.interrupted:
            lines.append(f"interrupted {self.interrupted}: the run stopped there; what that step had started "
                         f"on hosts was abandoned, its outcome unknown")
        if self.paused:
            lines.append(f"paused {self.paused}: run again with -D resume to continue the rollout")
        for scenario in self.scenarios:
            if scenario.status not in GOOD_SCENARIO:
                why = scenario.error or scenario.reason or scenario.status
                lines.append(f'scenario "{scenario.name}" {scenario.status}: {why}')
            elif scenario.status == "skipped" and scenario.reason:
                lines.append(f'scenario "{scenario.name}" skipped: {scenario.reason}')
        lines.extend(self.recap(h).line() for h in self.hosts)
        out = {} if self.plan else self.out_of_load_balancer()
        if out:
            lines.append("left out of the load balancer: " + "; ".join(
                f"{', '.join(hosts)} ({state})" for state, hosts in out.items()))
        return lines

    def gate_line(self) -> str:
        n_sc, n_hosts = len(self.scenarios), len(self.hosts)
        hosts = f"{n_hosts} host{'s' if n_hosts != 1 else ''}"
        if self.plan:
            would = sum(1 for *_, c in self.cells() if c.status is Outcome.WOULD_CHANGE)
            verdict = "complete" if self.passed else "INCOMPLETE"
            why = "" if self.passed else f" ({'; '.join(self.failures())})"
            return (f"Plan {verdict}: {would} change{'s' if would != 1 else ''} would be made on {hosts}; "
                    f"nothing was changed{why}")
        if self.passed:
            return f"Release gate: PASSED: {n_sc} scenario{'s' if n_sc != 1 else ''} passed on {hosts}"
        return "Release gate: FAILED: " + "; ".join(self.failures())

    def failures(self) -> list[str]:
        """Why the gate fails, in words (empty when it passes)."""
        n_sc = len(self.scenarios)
        bad_sc = [s for s in self.scenarios if s.status not in GOOD_SCENARIO]
        why = []
        if self.error:
            why.append("the run could not start")
        if self.interrupted:
            why.append(f"interrupted {self.interrupted}")
        if self.paused:
            why.append(f"paused {self.paused}")
        if bad_sc:
            why.append(f"{len(bad_sc)} of {n_sc} scenarios did not pass")
        if self.bad_hosts():
            why.append(f"failed on {', '.join(self.bad_hosts())}")
        if not self.scenarios and not (self.error or self.interrupted):
            why.append("no scenario ran")
        if not why and not any(s.status == "passed" for s in self.scenarios):
            why.append("no scenario passed")
        return why

    def only(self, file: str) -> "ResultMatrix":
        """The part of the matrix about one feature file."""
        features = {f: r for f, r in self.features.items() if f == file}
        identity = replace(self.identity, specs=[file] if file else list(self.identity.specs))
        return ResultMatrix(self.env, self.plan, [s for s in self.scenarios if s.file == file], self.error,
                            self.interrupted, self.paused, identity, features)

    # ---- JSON ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"env": self.env, "plan": self.plan, "passed": self.passed, "gate": self.gate_line(),
                "error": self.error, "interrupted": self.interrupted, "paused": self.paused, "hosts": self.hosts,
                "recap": {h: self.recap(h).to_dict() for h in self.hosts},
                "identity": self.identity.to_dict(),
                "features": {f: r.to_dict() for f, r in self.features.items()},
                "scenarios": [s.to_dict() for s in self.scenarios]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ResultMatrix":
        return cls(d.get("env", ""), bool(d.get("plan")), [ScenarioRecord.from_dict(s) for s in d.get("scenarios", [])],
                   d.get("error", ""), d.get("interrupted", ""), d.get("paused", ""),
                   RunIdentity.from_dict(d.get("identity")),
                   {f: FeatureRecord.from_dict(r) for f, r in (d.get("features") or {}).items()})

    def write_json(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, default=str) + "\n")

    @classmethod
    def read_json(cls, path: Path) -> "ResultMatrix":
        return cls.from_dict(json.loads(Path(path).read_text()))
