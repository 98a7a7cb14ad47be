"""`Deploy`: what every step of one behave run shares (settings, the Session with its SSH
connections, the result matrix) and the scenario's own state (targets, load balancer, message
facts, plan). Its verbs are the only way steps reach hosts, so each one records its cells in the
matrix, prints its tally, and turns library errors into one-line step failures."""
from __future__ import annotations

import contextlib
import ipaddress
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, TextIO

from hamcrest import assert_that

from orchestrator_lib.discovery import CountContract
from orchestrator_lib.errors import OrchestratorError
from orchestrator_lib.inventory import Host, Inventory
from orchestrator_lib.orchestration import HostResult, RunResult
from orchestrator_lib.reporting import Cell, Outcome, ResultMatrix
from orchestrator_lib.session import Session

from .matchers import Unanswered, describe, on_every_host
from .parsing import RunOptions
from .settings import Settings
from .targets import Target

INDENT = "      "


class StepFailed(AssertionError):
    """behave prints an AssertionError's message alone (any other exception gets a traceback)."""


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Library errors are the user's to fix and already one line: show just that line."""
    try:
        yield
    except OrchestratorError as e:
        raise StepFailed(str(e)) from None


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
    planned: dict[tuple[str, str], Any] = field(default_factory=dict)  # plan: (host, subject) -> state


def values_of(run: RunResult, value: Callable[[HostResult], Any]) -> dict[str, Any]:
    """{host: value(result)} for hosts that answered, Unanswered for the others."""
    return {h: value(r) if r.ok else Unanswered.of(r) for h, r in run.results.items()}


def failure_text(run: RunResult) -> str:
    bad = [r for r in run.results.values() if not r.ok]
    lines = [f"{run.label} did not succeed on {', '.join(r.host for r in bad)} "
             f"({len(bad)} of {len(run.results)} hosts):"]
    lines += [f"  {r.host}: {r.status}: {r.message}" for r in bad]
    return "\n".join(lines)


class Deploy:
    def __init__(self, settings: Settings, session: Session, matrix: ResultMatrix,
                 out: TextIO | None = None) -> None:
        self.settings, self.session, self.matrix = settings, session, matrix
        self.out = out
        self.scenario = ScenarioState()

    @property
    def plan(self) -> bool:
        return self.settings.plan

    @property
    def inventory(self) -> Inventory:
        return self.session.inventory

    def begin_scenario(self, feature: str, name: str) -> None:
        self.scenario = ScenarioState(feature, name)

    def say(self, line: str) -> None:
        """Under the step's line in behave's output, and in the step's notes in the report."""
        out = self.out or sys.stdout
        out.write(INDENT + line.replace("\n", "\n" + INDENT) + "\n")
        out.flush()
        self.matrix.note(line)

    # ---- which hosts ----------------------------------------------------------------------------
    def hosts(self) -> list[Host]:
        """The scenario's hosts: the pre-discovered ones, else what the filters select now."""
        target = self.scenario.target
        pinned = target.pinned_hosts()
        if pinned is not None:
            return pinned
        with user_errors():
            flt = target.require_some_filter()
            hosts = self.session.select(flt)
            if not hosts:
                raise OrchestratorError(f"no host matches {flt.describe()} in {self.inventory.path.name}")
            if target.contract is not None:
                target.contract.check(len(hosts), [h.name for h in hosts])
        return hosts

    def pre_discover(self, contract: CountContract | None) -> list[Host]:
        """Select, check the count, ping every host (and the load balancer): a host that does not
        answer fails the step by name. What was found is then the contract for the scenario."""
        since = len(self.session.history)
        try:
            with user_errors():
                flt = self.scenario.target.require_some_filter()
                hosts = self.session.discover(flt, contract, live=True)
        finally:
            self._record_new_runs(since)
        lb = self.scenario.lb
        if lb is not None and lb.host is not None and lb.host not in hosts:
            run = self.call([lb.host], "rpcutil", "ping")
            self.matrix.record_run(run)
            if not run.ok:
                raise StepFailed(f"the load balancer {lb.name} did not answer: {run.results[lb.name].message}")
        self.scenario.target.pin(hosts, contract or CountContract.exactly(len(hosts)))
        self.say(f"discovered {len(hosts)} host{'s' if len(hosts) != 1 else ''}: {', '.join(h.name for h in hosts)}")
        return hosts

    def _record_new_runs(self, since: int) -> None:
        for run in self.session.history[since:]:
            self.matrix.record_run(run)
            self.say(run.tally())

    # ---- the load balancer ------------------------------------------------------------------------
    def set_lb_address(self, address: str) -> None:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise StepFailed(f"the load balancer's address {address!r} is not an IP address") from None
        host = next((h for h in self.inventory.hosts.values() if h.address == address), None)
        self.scenario.lb = LoadBalancer(address, host)

    def set_lb_host(self, name: str) -> None:
        with user_errors():
            host = self.inventory.host(name)
        self.scenario.lb = LoadBalancer(host.address, host)

    def lb(self) -> LoadBalancer:
        if self.scenario.lb is None:
            raise StepFailed("no load balancer given: add 'Given the load balancer is NAME' "
                             "(or 'has ip address ADDRESS') to the Background")
        return self.scenario.lb

    def lb_host(self) -> Host:
        lb = self.lb()
        if lb.host is None:
            raise StepFailed(f"the load balancer {lb.address} is not a host of {self.inventory.path.name}: "
                             f"its HAProxy cannot be asked")
        return lb.host

    def backend(self, named: str | None = None) -> str:
        backend = named or self.scenario.backend or self.settings.backend or str(self.inventory.lab.get("backend", ""))
        if not backend:
            raise StepFailed("no HAProxy backend known: add 'Given the load balancer backend is NAME' "
                             "or run with -D backend=NAME")
        return backend

    # ---- acting -----------------------------------------------------------------------------------
    def call(self, hosts: list[Host], agent: str, action: str, args: Mapping[str, Any] | None = None,
             options: RunOptions = RunOptions(), timeout: float = 300.0) -> RunResult:
        with user_errors():
            return self.session.call(hosts, agent, action, args, batch_size=options.batch_size(),
                                     tries=options.tries, timeout=timeout)

    def act(self, hosts: list[Host], agent: str, action: str, args: Mapping[str, Any] | None = None, *,
            subject: str = "", options: RunOptions = RunOptions(), timeout: float = 300.0,
            describe_result: Callable[[HostResult], Cell] | None = None) -> RunResult:
        """A When: run the action, record every host, print the tally, fail naming the hosts it
        did not succeed on."""
        return self.conclude(self.call(hosts, agent, action, args, options, timeout), subject, describe_result)

    def conclude(self, run: RunResult, subject: str = "",
                 describe_result: Callable[[HostResult], Cell] | None = None) -> RunResult:
        self.matrix.record_run(run, subject, describe_result)
        self.say(run.tally())
        if not run.ok:
            raise StepFailed(failure_text(run))
        return run

    # ---- plan mode --------------------------------------------------------------------------------
    def plan_change(self, label: str, subject: str, current: Mapping[str, Any], wanted: Any, *,
                    always: bool = False) -> None:
        """A When in plan mode: compare each host's current state (as earlier planned steps
        would have left it) with the state the step wants, and record "would change"."""
        would: list[str] = []
        for host, now in current.items():
            if isinstance(now, Unanswered):
                self.matrix.record(host, Cell(Outcome(now.status), now.message, label, subject))
                continue
            now = self.scenario.planned.get((host, subject), now)
            target = wanted(host) if callable(wanted) else wanted
            if always or now != target:
                self.matrix.record(host, Cell(Outcome.WOULD_CHANGE, f"would change {subject}", label, subject, now, target))
                self.scenario.planned[(host, subject)] = target
                would.append(host)
            else:
                self.matrix.record(host, Cell(Outcome.OK, f"{subject} already {target}", label, subject, now, now))
        names = f" ({', '.join(would)})" if would else ""
        self.say(f"plan {label}: would change {subject} on {len(would)} of {len(current)} hosts{names}")
        bad = {h: v for h, v in current.items() if isinstance(v, Unanswered)}
        if bad:
            raise StepFailed(f"plan {label}: no state from " + "; ".join(f"{h}: {v!r}" for h, v in bad.items()))

    def plan_skips_check(self, what: str) -> bool:
        """Then steps check real state; in plan mode nothing was changed, so they are not run."""
        if self.plan:
            self.say(f"plan: not checked ({what})")
        return self.plan

    # ---- asserting --------------------------------------------------------------------------------
    def check(self, values: Mapping[str, Any], matcher: Any, what: str, label: str = "") -> None:
        """A Then: record each host (ok, failed, unreachable) and assert with PyHamcrest."""
        every = on_every_host(matcher)
        for host, value in values.items():
            if isinstance(value, Unanswered):
                self.matrix.record(host, Cell(Outcome(value.status), value.message, label))
            elif every.matcher.matches(value):
                self.matrix.record(host, Cell(Outcome.OK, f"{what}: {value}", label))
            else:
                self.matrix.record(host, Cell(Outcome.FAILED, f"{what}: expected {describe(every.matcher)}, "
                                                              f"actual {value!r}", label))
        assert_that(values, every, what)

    def wait_for(self, read: Callable[[], dict[str, Any]], matcher: Any, seconds: float,
                 interval: float = 0.25) -> dict[str, Any]:
        """Read until every host matches or `seconds` passed; the last reading either way."""
        every = on_every_host(matcher)
        deadline = time.monotonic() + seconds
        while True:
            values = read()
            if every.matches(values) or time.monotonic() >= deadline:
                return values
            time.sleep(interval)

    # ---- messages ---------------------------------------------------------------------------------
    def message_facts(self) -> dict[str, str]:
        hosts = self.hosts()
        return {"count": str(len(hosts)), "hosts": ", ".join(h.name for h in hosts),
                "env": self.inventory.name, "feature": self.scenario.feature,
                "scenario": self.scenario.name, **self.scenario.facts}

    def fill(self, template: str) -> str:
        facts = self.message_facts()
        try:
            return template.format_map(facts)
        except KeyError as e:
            raise StepFailed(f"unknown placeholder {{{e.args[0]}}} in {template!r} "
                             f"(known: {', '.join(sorted(facts))})") from None
        except (ValueError, IndexError) as e:
            raise StepFailed(f"bad message template {template!r}: {e}") from None


def deploy_of(context: Any) -> Deploy:
    """The run's Deploy, which the before_all hook puts on behave's context."""
    d = getattr(context, "deploy", None)
    if d is None:
        raise StepFailed("no deploy session: the hooks (environment.py) did not set one up")
    return d
