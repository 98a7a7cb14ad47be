"""`Deploy`: one deploy run over a Session. It holds what every step of the run shares (settings,
the Session with its SSH connections, the result matrix) and the scenario's own state (targets,
load balancer, message facts, plan). Its verbs are the only way a deploy reaches hosts, so each
one records its cells in the matrix, prints its tally, and fails with a one-line `DeployError`
that names the hosts.

Checks (the Thens) read one value per host here and leave the verdict to the caller:
`record_check` takes a predicate and the wanted value in words, and the caller then asserts (the
behave steps use PyHamcrest; this layer imports neither)."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Mapping, TextIO

from ...protocol import READ_ONLY
from ..discovery import CountContract, Filter
from ..errors import OrchestratorError
from ..inventory import Host, Inventory
from ..orchestration import HostResult, RunOptions, RunResult, Status, parse_batch_size
from ..orchestration.results import failure_text  # noqa: F401 -- the deploy verbs' one wording
from ..reporting import Cell, Outcome, ResultMatrix
from ..reporting.progress import OFF, Progress
from ..session import Interrupted, Session
from ..orchestration.rollout import RolloutPolicy
from .rollout import AnalysisCheck, ScenarioRollout, batches_for, describe_batches, run_rollout, seed_for
from .settings import Settings
from .targets import Target

#: what goes before a note, so it sits under behave's (indented) step line
INDENT = "      "


class DeployError(OrchestratorError):
    """A deploy step cannot go on (a host failed, a setting is missing): the operator's to read,
    a line that names the hosts, sometimes followed by one line per host."""


@dataclass(frozen=True)
class StepOptions:
    """" in batches of 2 with 2 tries" as a When wrote it (the step parser cannot fail)."""
    batch: str | None = None
    tries: int = 1
    repeated: tuple[str, ...] = ()   # an option the step gave more than once, each time

    def run_options(self, timeout: float = 300.0) -> RunOptions:
        """The fan-out's options, checked (by RunOptions: the one check) before any host is asked,
        so plan mode and the real run fail alike; a repeat is never silently dropped."""
        if self.repeated:
            raise DeployError(f"an option given more than once: {', '.join(repr(r) for r in self.repeated)} "
                              f"(say each option once)")
        return RunOptions(parse_batch_size(self.batch) if self.batch else None, self.tries, timeout=timeout)

    def __str__(self) -> str:
        parts = [f"in batches of {self.batch}"] if self.batch else []
        return " ".join(parts + ([f"with {self.tries} tries"] if self.tries != 1 else []))


@dataclass(frozen=True)
class Unanswered:
    """The value of a host that gave none (unreachable, or its check itself failed)."""
    status: str
    message: str

    @classmethod
    def of(cls, result: HostResult) -> "Unanswered":
        return cls(str(result.status), result.message)

    def __repr__(self) -> str:
        return f"<{self.status}: {self.message}>" if self.message else f"<{self.status}>"


@dataclass(frozen=True)
class LoadBalancer:
    address: str
    host: Host | None = None    # the estate's host at that address, when it is one

    @property
    def name(self) -> str:
        return self.host.name if self.host else self.address


@dataclass
class ScenarioState:
    feature: str = ""
    name: str = ""
    target: Target = field(default_factory=Target)
    lb: LoadBalancer | None = None
    backend: str = ""
    facts: dict[str, str] = field(default_factory=dict)              # {version} etc. for messages
    planned: dict[tuple[str, str], Any] = field(default_factory=dict)  # plan: (host, subject) -> state after
    rollout: ScenarioRollout = field(default_factory=ScenarioRollout)
    needs: Any = None                    # preflight.Needs: what the scenario's steps will use
    only: tuple[str, ...] | None = None  # a @rollback scenario: the hosts that failed, and only them
    skip: tuple[str, ...] = ()           # -D resume: hosts the resumed run completed this scenario on
    order: tuple[str, ...] = ()          # -D resume: the resumed run's order of hosts
    resume_from: str = ""                # -D resume: that run's id
    told_skip: bool = False


class ScenarioDone(DeployError):
    """Nothing is left to do in this scenario (-D resume: every host completed it): skip it."""


def values_of(run: RunResult, value: Callable[[HostResult], Any]) -> dict[str, Any]:
    """{host: value(result)} for hosts that answered, Unanswered for the others."""
    return {h: value(r) if r.ok else Unanswered.of(r) for h, r in run.results.items()}


def fill_message(template: str, facts: Mapping[str, str]) -> str:
    """`template` with its {placeholders} filled from `facts`; a wrong one is a one-line error."""
    try:
        return template.format_map(facts)
    except KeyError as e:
        raise DeployError(f"unknown placeholder {{{e.args[0]}}} in {template!r} "
                          f"(known: {', '.join(sorted(facts))})") from None
    except (ValueError, IndexError) as e:
        raise DeployError(f"bad message template {template!r}: {e}") from None


class Deploy:
    def __init__(self, settings: Settings, session: Session, matrix: ResultMatrix,
                 out: TextIO | None = None) -> None:
        self.settings, self.session, self.matrix = settings, session, matrix
        self.out = out
        self.seed = seed_for(settings.seed)  # one per run: the report records it, -D seed= replays it
        self.scenario = ScenarioState()
        #: live per-host progress of a long request (the hooks choose it for the output)
        self.progress = Progress(OFF)
        #: guard.RunGuard: lock, journal, pre-flight, resume (set by whoever runs the deploy)
        self.guard: Any = None

    @property
    def plan(self) -> bool:
        return self.settings.plan

    @property
    def inventory(self) -> Inventory:
        return self.session.inventory

    def begin_scenario(self, feature: str, name: str, policy: RolloutPolicy | None = None,
                       gates: dict[int, list[AnalysisCheck]] | None = None) -> None:
        """A new scenario, with the rollout policy its tags state and the analysis steps that
        gate its Whens (by the When's step index)."""
        self.scenario = ScenarioState(feature, name)
        self.scenario.rollout = ScenarioRollout(policy or RolloutPolicy(), self.seed, dict(gates or {}))
        self.record_rollout()

    def begin_step(self, index: int, where: str, text: str) -> None:
        r = self.scenario.rollout
        r.step_index, r.step_where, r.step_text = index, where, text

    def record_rollout(self) -> None:
        """The scenario's rollout (policy, seed, canaries, batches, budget, analyses) in the report."""
        if self.scenario.rollout.active and self.matrix.scenarios:
            self.matrix.scenarios[-1].rollout = self.scenario.rollout.to_dict()

    def step_options(self, options: StepOptions, timeout: float = 300.0) -> RunOptions:
        """A When's fan-out options, checked before any host is asked, with the policy's batches
        when the step says none (a tag and the step that disagree: one line naming both). Plan
        mode says the batches it would use."""
        checked = options.run_options(timeout)
        r = self.scenario.rollout
        if not r.active:
            if self.plan and checked.batch_size is not None:  # the step's own words: its batches too
                self.say(f"plan: batches {describe_batches(batches_for(self, self.hosts(), checked))}")
            return checked
        from .rollout import step_batch
        batch = step_batch(self, options.batch)
        merged = replace(checked, batch_size=parse_batch_size(batch) if batch else None)
        if self.plan:
            hosts = self.hosts()
            self.say(f"plan: batches {describe_batches(batches_for(self, hosts, merged))}"
                     + (f"; {r.policy.describe()}" if not r.policy.empty else ""))
        return merged

    def say(self, line: str) -> None:
        """Under the step's line in behave's output, and in the step's notes in the report."""
        out = self.out or sys.stdout
        out.write(INDENT + line.replace("\n", "\n" + INDENT) + "\n")
        out.flush()
        self.matrix.note(line)

    # ---- which hosts ----------------------------------------------------------------------------
    def narrow(self, *, identities: Iterable[str] = (), facts: Iterable[str] = (),
               classes: Iterable[str] = (), compounds: Iterable[str] = ()) -> None:
        """More filters for the scenario's hosts (AND with those given before). A name that
        matches nothing (a mistyped host, fact or class) fails this Given, not a later step."""
        identities, facts, classes, compounds = map(tuple, (identities, facts, classes, compounds))
        self.session.select(Filter.parse(identities=identities, facts=facts, classes=classes, compound=compounds))
        self.scenario.target.narrow(identities=identities, facts=facts, classes=classes, compounds=compounds)

    def narrow_to_group(self, group: str) -> None:
        """Only the hosts a group of the estate file lists."""
        self.narrow(identities=[h.name for h in self.inventory.group(group)])

    def hosts(self) -> list[Host]:
        """The scenario's hosts: the pre-discovered ones, else what the filters select now; less
        those that failed within the scenario's failure budget (they leave the scenario)."""
        hosts = self._targeted()
        budget = self.scenario.rollout.budget
        return [h for h in hosts if h.name not in budget.failed] if budget is not None else hosts

    def _targeted(self) -> list[Host]:
        target = self.scenario.target
        pinned = target.pinned_hosts()
        if pinned is not None:
            return self._narrowed(pinned)
        flt = target.require_some_filter()
        hosts = self.session.select(flt)
        if not hosts:
            raise DeployError(f"no host matches {flt.describe()} in {self.inventory.path.name}")
        if target.contract is not None:
            target.contract.check(len(hosts), [h.name for h in hosts])
        return self._narrowed(hosts)

    def _narrowed(self, hosts: list[Host]) -> list[Host]:
        """The scenario's hosts as a @rollback scenario (only the failed ones) or a resumed run
        (without those completed, in the resumed run's order) sees them."""
        sc = self.scenario
        if sc.only is not None:
            hosts = [h for h in hosts if h.name in sc.only]
        if not sc.skip and not sc.order:
            return hosts
        skipped = [h.name for h in hosts if h.name in sc.skip]
        rank = {name: i for i, name in enumerate(sc.order)}
        hosts = sorted((h for h in hosts if h.name not in sc.skip), key=lambda h: rank.get(h.name, len(rank)))
        if not sc.told_skip:
            sc.told_skip = True
            self.say(f"resume from run {sc.resume_from}: skipping {', '.join(skipped) or 'no host'} "
                     f"(completed this scenario there); running {', '.join(h.name for h in hosts) or 'no host'}")
        if not hosts:
            raise ScenarioDone(f"resume: every host completed this scenario in run {sc.resume_from}")
        return hosts

    def pre_discover(self, contract: CountContract | None) -> list[Host]:
        """Select, check the count, ping every host (and the load balancer): a host that does not
        answer fails the step by name. What was found is then the contract for the scenario."""
        lb = self.scenario.lb
        flt = self.scenario.target.require_some_filter()
        hosts = self.session.discover(flt, contract, live=False)
        also = [lb.host] if lb is not None and lb.host is not None and lb.host not in hosts else []
        if self.session.transport_name == "nats":  # a broadcast carrying the filter; then the LB alone
            pinged = self.session.broadcast_ping(flt, hosts)
            self.matrix.record_run(pinged)
            self.say(pinged.tally())
            self.session.require_answers(pinged, hosts)
            if also:
                pinged = self.call(also, "rpcutil", "ping")
        else:
            pinged = self.call(hosts + also, "rpcutil", "ping")  # one round: the LB alongside
            # the targets' own tally and cells: the LB is no host of the scenario, nor counted as one
            targets = RunResult(pinged.label, {h.name: pinged.results[h.name] for h in hosts}, pinged.elapsed)
            self.matrix.record_run(targets)
            self.say(targets.tally())
            self.session.require_answers(pinged, hosts)
        if also:
            answer = pinged.results[also[0].name]
            if not answer.ok:  # in the matrix then, so the gate names it
                self.matrix.record(answer.host, Cell.from_host_result(answer, pinged.label))
                raise DeployError(f"the load balancer {also[0].name} did not answer: {answer.message}")
            self.say(f"load balancer {also[0].name} answered")
        self.scenario.target.pin(hosts, contract or CountContract.exactly(len(hosts)))
        self.say(f"discovered {len(hosts)} host{'s' if len(hosts) != 1 else ''}: {', '.join(h.name for h in hosts)}")
        return hosts

    # ---- acting -----------------------------------------------------------------------------------
    def call(self, hosts: list[Host], agent: str, action: str, args: Mapping[str, Any] | None = None,
             options: RunOptions = RunOptions(), subject: str = "",
             describe_result: Callable[[HostResult], Cell] | None = None, *, dry_run: bool = False) -> RunResult:
        """The request; on Ctrl-C what it had done on each host (finished, still running, not
        started) goes into the matrix first, so the recap names them. Before a request that can
        change a host, the guard takes the deploy lock and runs the pre-flight checks."""
        if self.guard is not None and not self.plan and f"{agent}#{action}" not in READ_ONLY:
            self.guard.before_change()
        try:
            with self.progress.track(f"{agent}#{action}", [h.name for h in hosts]) as on_result:
                return self.session.call(hosts, agent, action, args, options, dry_run=dry_run, on_result=on_result)
        except Interrupted as e:
            self.matrix.record_run(e.result, subject, describe_result)
            self.say(e.result.tally())
            raise

    def act(self, hosts: list[Host], agent: str, action: str, args: Mapping[str, Any] | None = None, *,
            subject: str = "", options: RunOptions = RunOptions(),
            describe_result: Callable[[HostResult], Cell] | None = None) -> RunResult:
        """A When: run the action (in plan mode, a dry run: each host says what it would change),
        record every host, print the tally, fail naming the hosts it did not succeed on. Under a
        rollout policy, batch by batch with the scenario's budget and analyses: see rollout.py."""
        if self.scenario.rollout.active and not self.plan:
            return run_rollout(self, hosts, agent, action, args, options, subject, describe_result)
        run = self.call(hosts, agent, action, args, options, subject, describe_result, dry_run=self.plan)
        return self.conclude(run, subject, describe_result)

    def conclude(self, run: RunResult, subject: str = "",
                 describe_result: Callable[[HostResult], Cell] | None = None) -> RunResult:
        if self.plan and subject:
            run = self._after_earlier_plans(run, subject)
        self.matrix.record_run(run, subject, describe_result)
        self.say(run.tally())
        if not run.ok:
            raise DeployError(failure_text(run))
        return run

    # ---- plan mode ---------------------------------------------------------------------------------
    def _after_earlier_plans(self, run: RunResult, subject: str) -> RunResult:
        """A dry run sees the host as it is, not as the scenario's earlier (dry) steps would leave
        it: a host whose `subject` an earlier step would change to a state other than this step's
        `after` would change again (block, then unblock: the unblock would change too)."""
        results = dict(run.results)
        for host, r in run.results.items():
            earlier = self.scenario.planned.get((host, subject))
            if r.status is Status.OK and earlier is not None and earlier != r.after:
                results[host] = r = replace(r, status=Status.WOULD_CHANGE, before=earlier,
                                            message=f"would change {subject}: {earlier} -> {r.after}")
            if r.status is Status.WOULD_CHANGE:
                self.scenario.planned[(host, subject)] = r.after
        return RunResult(run.label, results, run.elapsed)

    def plan_skips_check(self, what: str) -> bool:
        """Then steps check real state; in plan mode nothing was changed, so they are not run."""
        if self.plan:
            self.say(f"plan: not checked ({what})")
        return self.plan

    # ---- checking ---------------------------------------------------------------------------------
    def record_check(self, values: Mapping[str, Any], matches: Callable[[Any], bool], expected: str,
                     what: str, label: str = "") -> None:
        """A Then's cells: each host ok, failed (`expected`, in words, and the actual value) or as
        it did not answer. `matches` judges one host's value; the caller asserts afterwards."""
        for host, value in values.items():
            if isinstance(value, Unanswered):
                self.matrix.record(host, Cell(Outcome(value.status), value.message, label))
            elif matches(value):
                self.matrix.record(host, Cell(Outcome.OK, f"{what}: {value}", label, expected=expected,
                                              actual=repr(value)))
            else:
                self.matrix.record(host, Cell(Outcome.FAILED, f"{what}: expected {expected}, actual {value!r}",
                                              label, expected=expected, actual=repr(value)))

    def wait_for(self, read: Callable[[], dict[str, Any]], until: Callable[[Any], bool], seconds: float,
                 interval: float = 0.05) -> dict[str, Any]:
        """Read until every host's value satisfies `until` or `seconds` passed; the last reading
        either way."""
        deadline = time.monotonic() + seconds
        while True:
            values = read()
            if (values and all(until(v) for v in values.values())) or time.monotonic() >= deadline:
                return values
            time.sleep(interval)

    # ---- messages ---------------------------------------------------------------------------------
    def message_facts(self) -> dict[str, str]:
        hosts = self.hosts()
        return {"count": str(len(hosts)), "hosts": ", ".join(h.name for h in hosts),
                "env": self.inventory.name, "feature": self.scenario.feature,
                "scenario": self.scenario.name, **self.scenario.facts}

    def fill(self, template: str) -> str:
        return fill_message(template, self.message_facts())
