"""The run journal: what a deploy run did, host by host and step by step, appended as it happens
to `<reports>/journal/<start>-<run>.jsonl` (one JSON object per line), so a run killed outright
(SIGKILL, a cancelled CI job) still leaves its story behind. A request to a host is recorded
before it is sent and its result when it returns. Every line is written (os.write) before the
run goes on, so a SIGKILL loses nothing the run did (the kernel keeps what was written); the
"sent" line of a request that can change a host, the end of a step that sent one, and the run's
end are also fsync'd, so a power cut loses at most the results of the step in flight, whose
"sent" lines say which hosts it was changing. Result lines are not fsync'd one by one: the
step's end covers them (an fsync per host result was half the journal's cost), and a read-only
step's end is not fsync'd at all (losing it loses nothing a resume needs).

The next run reads the journals back (`JournalRun`): whether a run on the same hosts was
interrupted, where, and which hosts had a request in flight; `-D resume` reads which hosts
completed each scenario, and the rollback step the version each host had before the run.

Records (`kind`): run, scenario, step, sent, result, step_end, scenario_end, end."""
from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from ...protocol import READ_ONLY  # their records are written but not fsync'd
from ..orchestration import HostResult

#: the deploy lock's own requests: in the audit logs, not in the journal (it tells the story of
#: the run's steps; a lease left behind is the lease's business: it expires)
UNJOURNALED = ("lease#",)
#: outcomes (matrix words) after which a host has not completed a scenario
NOT_DONE = frozenset({"failed", "unreachable", "not attempted", "skipped"})
#: journals read back when looking for the last run on some hosts (newest first)
LOOKBACK = 50


def before_of(label: str, result: HostResult) -> tuple[str, Any] | None:
    """(subject, state before) when `result` says what a package was before a change to it:
    package#update/install (`previous`), appmgr#deploy (`before.package`)."""
    data = result.data if isinstance(result.data, dict) else {}
    if label in ("package#update", "package#install") and data.get("name") and "previous" in data:
        return f"package {data['name']}", data["previous"]
    if label == "appmgr#deploy" and isinstance(result.before, dict) and data.get("app"):
        return f"package {data['app']}", result.before.get("package")
    return None


def journal_dir(reports: Path) -> Path:
    return reports / "journal"


class Journal:
    """One run's journal, written from the step threads and the fan-out workers alike. fsyncs
    are group-committed: a worker whose line an fsync already covered does not fsync again."""

    def __init__(self, directory: Path, run: str, *, caller: str, env: str, resumed: str = "") -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.run = run
        started = time.time()
        self.path = directory / f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(started))}-{run}.jsonl"
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._lock, self._sync_lock = threading.Lock(), threading.Lock()
        self._written = self._synced = 0
        self.where: dict[str, str] = {"feature": "", "scenario": "", "step": ""}
        self.befores: dict[tuple[str, str], Any] = {}  # (host, subject) -> state before this run
        self.fsyncs = 0
        self._changing = False  # the step running now sent a changing request
        #: seconds in os.write and os.fsync themselves: fsyncs are serialized (one at a time), so
        #: this is an upper bound of the wall time the journal adds, and no thread waits are counted
        self._write_s = self._fsync_s = 0.0
        self.append("run", sync=True, run=run, caller=caller, env=env, pid=os.getpid(), started=started,
                    resumed=resumed)

    # ---- writing ----------------------------------------------------------------------------------
    def append(self, kind: str, *, sync: bool = False, **fields: Any) -> None:
        line = json.dumps({"kind": kind, "t": round(time.time(), 3), **fields}, default=str, sort_keys=True)
        with self._lock:
            if self._fd < 0:
                return
            started = time.perf_counter()
            os.write(self._fd, (line + "\n").encode())
            self._written += 1
            mine = self._written
            self._write_s += time.perf_counter() - started
        if sync:
            self._sync(mine)

    def _sync(self, upto: int) -> None:
        with self._sync_lock:
            if self._synced >= upto or self._fd < 0:
                return
            covered = self._written
            started = time.perf_counter()
            os.fsync(self._fd)
            self._fsync_s += time.perf_counter() - started
            self.fsyncs += 1
            self._synced = covered

    @property
    def spent(self) -> float:
        return self._write_s + self._fsync_s

    def scenario(self, feature: str, file: str, name: str) -> None:
        self.where = {"feature": file or feature, "scenario": name, "step": ""}
        self.append("scenario", feature=file or feature, scenario=name)

    def step(self, text: str) -> None:
        self.where = {**self.where, "step": text}
        self._changing = False
        self.append("step", step=text)

    def sent(self, reqid: str, label: str, host: str) -> None:
        if label.startswith(UNJOURNALED):
            return
        changing = label not in READ_ONLY
        self._changing = self._changing or changing
        self.append("sent", sync=changing, reqid=reqid, label=label, host=host, step=self.where["step"])

    def result(self, reqid: str, label: str, result: HostResult) -> None:
        if label.startswith(UNJOURNALED):
            return
        self.append("result", reqid=reqid, label=label, host=result.host,
                    status=str(result.status), message=result.message, before=result.before, after=result.after)
        subject = before_of(label, result)
        if subject is not None:
            self.remember_before(result.host, *subject)

    def remember_before(self, host: str, subject: str, before: Any) -> None:
        """The first state a changing request found (`package mywebapp`: 4.2.5-1.el5): what the
        host had before the run, for the rollback step."""
        if before is not None:
            self.befores.setdefault((host, subject), before)
            self.append("before", host=host, subject=subject, before=before)

    def step_end(self, status: str, cells: Mapping[str, str]) -> None:
        """fsync'd after a step that changed hosts (it covers their result lines); a read-only
        step's end lost to a power cut costs nothing: resume re-runs the read-only step."""
        self.append("step_end", sync=self._changing, step=self.where["step"], status=status, hosts=dict(cells))

    def scenario_end(self, status: str, targeted: Iterable[str], outcomes: Mapping[str, Iterable[str]],
                     carried: Iterable[str] = ()) -> None:
        """`outcomes`: every outcome each host had in the scenario; `carried`: hosts a resumed run
        skipped because an earlier run completed them (still completed, for the next resume)."""
        targeted = list(targeted)
        completed = [h for h in targeted if not NOT_DONE & set(outcomes.get(h, ()))]
        self.append("scenario_end", sync=True, feature=self.where["feature"], scenario=self.where["scenario"],
                    status=status, targeted=targeted, completed=list(dict.fromkeys([*carried, *completed])))

    def end(self, passed: bool) -> None:
        self.append("end", sync=True, passed=passed)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


@dataclass
class ScenarioRun:
    feature: str
    name: str
    targeted: list[str] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)
    ended: bool = False


@dataclass
class JournalRun:
    """A journal read back."""
    path: Path
    run: str = ""
    caller: str = ""
    env: str = ""
    started: float = 0.0
    ended: bool = False
    passed: bool = False
    features: list[str] = field(default_factory=list)
    last_step: str = ""                                   # 'feature: scenario: step' last started
    in_flight: dict[str, str] = field(default_factory=dict)   # host -> label sent, no result
    hosts: list[str] = field(default_factory=list)       # every host a request was sent to
    scenarios: dict[tuple[str, str], ScenarioRun] = field(default_factory=dict)
    befores: dict[tuple[str, str], Any] = field(default_factory=dict)
    cost: dict[str, Any] = field(default_factory=dict)       # what the safeguards cost the run

    @classmethod
    def read(cls, path: Path) -> "JournalRun":
        out = cls(path)
        feature = scenario = ""
        pending: dict[tuple[str, str], str] = {}
        try:
            text = path.read_text(errors="replace")
        except OSError:
            return out
        for line in text.splitlines():
            try:
                r = json.loads(line)
            except ValueError:
                continue  # a line torn by the kill: everything before it stands
            kind = r.get("kind")
            if kind == "run":
                out.run, out.caller, out.env = r.get("run", ""), r.get("caller", ""), r.get("env", "")
                out.started = float(r.get("started", 0))
            elif kind == "scenario":
                feature, scenario = r.get("feature", ""), r.get("scenario", "")
                out.features = list(dict.fromkeys([*out.features, feature]))
                out.scenarios.setdefault((feature, scenario), ScenarioRun(feature, scenario))
                out.last_step = f"{Path(feature).name}: {scenario}"
            elif kind == "step":
                out.last_step = f"{Path(feature).name}: {scenario}: {r.get('step', '')}"
            elif kind == "sent":
                pending[(r.get("reqid", ""), r.get("host", ""))] = r.get("label", "")
                out.hosts = list(dict.fromkeys([*out.hosts, r.get("host", "")]))
            elif kind == "result":
                pending.pop((r.get("reqid", ""), r.get("host", "")), None)
            elif kind == "before":
                out.befores.setdefault((r.get("host", ""), r.get("subject", "")), r.get("before"))
            elif kind == "scenario_end":
                sc = out.scenarios.setdefault((r.get("feature", ""), r.get("scenario", "")),
                                              ScenarioRun(r.get("feature", ""), r.get("scenario", "")))
                sc.targeted, sc.completed, sc.ended = list(r.get("targeted", [])), list(r.get("completed", [])), True
            elif kind == "end":  # a run stopped by Ctrl-C ends, but as interrupted
                out.ended, out.passed = not r.get("interrupted"), bool(r.get("passed"))
                out.cost = r.get("cost") or {}
        for (_, host), label in pending.items():
            out.in_flight.setdefault(host, label)
        return out

    def when(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.started))

    def interrupted_line(self) -> str:
        """One line: who ran what, where it stopped, which hosts had a request in flight."""
        flight = (", ".join(f"{h} ({label})" for h, label in self.in_flight.items())
                  if self.in_flight else "none")
        return (f"run {self.run} by {self.caller} started {self.when()} was interrupted at "
                f'"{self.last_step}"; requests in flight on: {flight} (journal {self.path.name})')


def recent(directory: Path, exclude: str = "", limit: int = LOOKBACK) -> list[Path]:
    """The newest journals first (their names start with the start time)."""
    try:
        paths = sorted((p for p in directory.glob("*.jsonl") if not p.name.endswith(f"-{exclude}.jsonl") or not exclude),
                       reverse=True)
    except OSError:
        return []
    return paths[:limit]


def last_run_on(directory: Path, hosts: Iterable[str], exclude: str = "") -> JournalRun | None:
    """The latest other run that sent anything to any of `hosts`."""
    wanted = set(hosts)
    for path in recent(directory, exclude):
        run = JournalRun.read(path)
        if wanted & set(run.hosts):
            return run
    return None


def last_run_of(directory: Path, feature: str, exclude: str = "") -> JournalRun | None:
    """The latest other run of the feature file `feature` (as behave names it)."""
    for path in recent(directory, exclude):
        run = JournalRun.read(path)
        if feature in run.features:
            return run
    return None
