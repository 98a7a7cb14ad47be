"""What keeps a deploy safe on a bad day, around the steps of a run: the journal (every request
recorded before it is sent, every step's outcome as it ends), the deploy lock (leases taken
before the first change, released at the end), pre-flight (before each scenario's first change),
resume (`-D resume`: skip the hosts the last run of the feature completed) and the memory of
what each host had before the run (for the rollback step).

`Deploy` calls `before_change()` before any request that can change a host; the behave hooks
call `begin_scenario()` and `finish()`. Plan mode takes no lease and keeps no journal."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..errors import OrchestratorError
from ..inventory import Host
from ..reporting import Cell, Outcome
from ..reporting.journal import Journal, JournalRun, journal_dir, last_run_of, last_run_on
from ..transports.ssh_agent import new_reqid
from . import preflight
from .lock import DeployLock
from .rollout import budget_of
from .run import Deploy


class RunGuard:
    def __init__(self, d: Deploy) -> None:
        self.d = d
        self.run = new_reqid()[:12]
        self.directory = journal_dir(d.session.reports_dir)
        self.active = not d.plan and d.settings.safeguards
        self.journal: Journal | None = None
        self.lock: DeployLock | None = None
        self.feature = ""                               # the feature file running now
        self.resumed: dict[str, JournalRun | None] = {}  # feature file -> the run resumed
        self.checked: set[int] = set()                  # scenarios (by index) pre-flight passed
        self.told_interrupted = False
        #: seconds the run spent in the lock and pre-flight (the journal counts its own writes)
        self.spent = 0.0
        if not self.active:
            return
        self.journal = Journal(self.directory, self.run, caller=d.session.caller, env=d.inventory.name)
        d.session.journal = self.journal
        d.matrix.listener = self.journal
        self.lock = DeployLock(d.session, self.run, ttl=d.settings.lease_ttl, feature=lambda: self.feature,
                               say=d.say)

    # ---- scenarios ------------------------------------------------------------------------------
    def begin_scenario(self, file: str, name: str) -> None:
        """Resume: the hosts the resumed run completed this scenario on are skipped, the others
        run in that run's order."""
        self.feature = file
        if not self.d.settings.resume:
            return
        if file not in self.resumed:
            self.resumed[file] = last_run_of(self.directory, file, exclude=self.run)
            source = self.resumed[file]
            if source is None:
                self.d.say(f"resume: no earlier run of {file} in {self.directory}: running it in full")
            elif source.ended and source.passed:
                self.d.say(f"resume: the last run of {file} ({source.run}, {source.when()}) passed: running it in full")
        source = self.resumed[file]
        if source is None or (source.ended and source.passed):
            return
        scenario = source.scenarios.get((file, name))
        if scenario is None or not scenario.ended:
            return
        self.d.scenario.resume_from = source.run
        self.d.scenario.skip = tuple(scenario.completed)
        self.d.scenario.order = tuple(scenario.targeted)

    # ---- before the first change ----------------------------------------------------------------
    def before_change(self) -> None:
        if not self.active:
            return
        started = time.perf_counter()
        try:
            self._before_change()
        finally:
            self.spent += time.perf_counter() - started

    def _before_change(self) -> None:
        try:
            targets = self.d.hosts()
        except OrchestratorError:  # no targets chosen (a notify-only feature): nothing to lease
            targets = []
        assert self.lock is not None
        key = id(self.d.scenario)
        if key in self.checked:
            self._charge_unanswered(self.lock.acquire(targets, self._budget_left(targets)))
            return
        self.checked.add(key)
        # the lease and pre-flight at once (one round trip instead of two); a lock held by
        # another run is said first: who holds it matters more than what else is missing
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="preflight") as pool:
            checked = pool.submit(preflight.check, self.d, targets, self.d.scenario.needs or preflight.Needs())
            missing = self.lock.acquire(targets, self._budget_left(targets))
            summary = checked.result()
        self._charge_unanswered(missing)
        self._tell_interrupted(targets)
        if summary:
            self.d.say(summary)

    def _budget_left(self, targets: list[Host]) -> int:
        """How many hosts that do not answer the lock the scenario's @max_fail budget can take."""
        if self.d.scenario.rollout.policy.max_fail is None or not targets:
            return 0
        budget = budget_of(self.d, targets)
        return max(0, budget.allowed - budget.used)

    def _charge_unanswered(self, missing: list[Host]) -> None:
        """Hosts that did not answer the lock, within the budget: charged to it as unreachable, so
        they leave the scenario before its first change (they would fail each step anyway)."""
        if not missing:
            return
        budget = budget_of(self.d, self.d.hosts())
        names = budget.charge([h.name for h in missing], "the deploy lock (did not answer)")
        for name in names:
            self.d.matrix.record(name, Cell(Outcome.UNREACHABLE, "did not answer the deploy lock", "lease#acquire"))
        self.d.say(f"deploy lock: {', '.join(names)} did not answer: charged to the failure budget "
                   f"({budget.used} of {budget.allowed} used) and left out of this scenario")
        self.d.record_rollout()

    def _tell_interrupted(self, targets: list[Host]) -> None:
        """Once per run: the last other run on these hosts, if it never ended (killed), and where."""
        if self.told_interrupted or not targets:
            return
        self.told_interrupted = True
        last = last_run_on(self.directory, [h.name for h in targets], exclude=self.run)
        if last is not None and not last.ended:
            self.d.say(f"an earlier deploy on these hosts was interrupted: {last.interrupted_line()}")

    # ---- rollback ---------------------------------------------------------------------------------
    def before_the_run(self, host: str, subject: str) -> Any:
        """What `host` had of `subject` (`package mywebapp`) before this run (or before the run it
        resumes), from the journals; None when no change of it was recorded."""
        if self.journal is not None and (host, subject) in self.journal.befores:
            return self.journal.befores[(host, subject)]
        source = self.resumed.get(self.feature)
        if source is not None:
            return source.befores.get((host, subject))
        return None

    # ---- the end --------------------------------------------------------------------------------
    def finish(self, passed: bool, aborted: bool = False) -> None:
        """Release the leases (on Ctrl-C without waiting behind running requests) and close the
        journal with its end record (with the seconds the safeguards cost the run). Never raises:
        the recap must still be printed."""
        started = time.perf_counter()
        try:
            if self.lock is not None:
                self.lock.release(resident=not aborted)
        except Exception as e:  # a host gone: its lease expires on its own
            self.d.say(f"deploy lock: could not release every lease ({type(e).__name__}: {e}); they expire")
        if self.journal is not None:
            self.spent += time.perf_counter() - started
            cost = {"lock_and_preflight_s": round(self.spent, 4), "journal_s": round(self.journal.spent, 4),
                    "fsyncs": self.journal.fsyncs}
            self.journal.append("end", sync=True, passed=passed and not aborted, interrupted=aborted, cost=cost)
            self.journal.close()
