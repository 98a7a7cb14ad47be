"""A scenario's rollout on real hosts: the policy its tags state (orchestration/rollout.py) applied
to the Whens of the scenario. Each When runs batch by batch (the canaries first); every host that
fails or does not answer is charged to the scenario's ONE failure budget; the analysis steps that
follow a When (`Then after each batch ...`) are measured on each batch before the next one starts.
A failed or errored analysis stops the rollout; an inconclusive one asks the operator at a
terminal and otherwise pauses the run (exit code PAUSED_EXIT; `-D resume` continues it).
The canary judgement (`judge_canaries`) is an analysis too, taken once, after the first batch: the
latency samples of that batch's hosts against those of the hosts the When has not reached yet."""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping

from ..errors import OrchestratorError
from ..inventory import Host
from ..orchestration import HostResult, RunOptions, RunResult, Status
from ..orchestration.judgement import Judgement, Side, judge_latency
from ..orchestration.results import failure_text
from ..orchestration.rollout import (Analysis, AnalysisLimits, FailureBudget, RolloutPolicy, Verdict,
                                     choose_canaries, new_seed, plan_rollout, with_limits)
from ..reporting import Cell, Outcome
from .settings import CHECK_MARGIN

#: deploy.run.Deploy, which imports this module (so it is not imported here)
Deploy = Any

#: behave's exit code when an inconclusive analysis paused the rollout (sysexits' EX_TEMPFAIL:
#: "a temporary failure; the user is invited to retry"): run again with -D resume
PAUSED_EXIT = 75
#: seconds between a host's latency samples (the canary judgement)
SPACING = 0.1


class RolloutStopped(OrchestratorError):
    """The rollout stopped: the budget was exceeded, an analysis failed, or it paused."""


@dataclass(frozen=True)
class AnalysisCheck:
    """An analysis step, known before the When it gates runs: the agent call that measures one
    host, and the limits its own words set (None: the tags' or the default)."""
    text: str
    where: str
    agent: str
    action: str
    args: Mapping[str, Any]
    seconds: float
    failures: int | None = None
    inconclusive: int | None = None
    errors: int | None = None
    compare: float | None = None   # a canary judgement at this significance level (p < compare fails)
    margin: float = 0.0            # ...allowing the canaries to be slower by this fraction


@dataclass
class ScenarioRollout:
    policy: RolloutPolicy = field(default_factory=RolloutPolicy)
    seed: int = 0
    gates: dict[int, list[AnalysisCheck]] = field(default_factory=dict)   # When's step index -> checks
    budget: FailureBudget | None = None
    canaries: list[str] | None = None
    analyses: dict[str, Analysis] = field(default_factory=dict)           # by the check's `where`
    last: dict[str, dict[str, tuple[Verdict, str]]] = field(default_factory=dict)  # where -> host -> last
    steps: list[dict[str, Any]] = field(default_factory=list)             # per When: its batches
    step_index: int = -1
    step_where: str = ""
    step_text: str = ""

    @property
    def active(self) -> bool:
        return not self.policy.empty or bool(self.gates)

    def to_dict(self) -> dict[str, Any]:
        return {"policy": self.policy.to_dict(), "seed": self.seed, "canaries": self.canaries,
                "budget": None if self.budget is None else self.budget.to_dict(), "steps": self.steps,
                "analyses": {w: {"verdict": a.verdict().value, "summary": a.summary(), **a.limits.to_dict(),
                                 **({"judgement": a.judgement} if a.judgement else {})}
                             for w, a in self.analyses.items()}}


def seed_for(settings_seed: int | None) -> int:
    return new_seed() if settings_seed is None else settings_seed


def step_batch(d: Deploy, batch: str | None) -> str | None:
    """The batches a When uses: its own words or the policy's; both, and different, is an error
    naming both lines."""
    policy, r = d.scenario.rollout.policy, d.scenario.rollout
    if batch and policy.batch and batch.replace(" ", "") != policy.batch.replace(" ", ""):
        raise RolloutStopped(f"{r.step_where}: 'in batches of {batch}' disagrees with "
                             f"{policy.sources.get('batch', '@batch(' + policy.batch + ')')}: say the batches once")
    return batch or policy.batch


def canaries_of(d: Deploy, hosts: list[Host]) -> list[Host]:
    """The scenario's canaries, chosen once (from the run's seed) and kept for all its Whens."""
    r = d.scenario.rollout
    if r.policy.canary is None:
        return []
    if r.canaries is None:
        chosen = choose_canaries(hosts, r.policy.canary, r.seed, lambda h: h.name, lambda h, f: h.facts.get(f))
        r.canaries = [h.name for h in chosen]
        d.say(f"canaries: {', '.join(r.canaries)} (@canary({r.policy.canary}), seed {r.seed}; "
              f"-D seed={r.seed} chooses them again)")
        d.record_rollout()
    return [h for h in hosts if h.name in r.canaries]


def batches_for(d: Deploy, hosts: list[Host], options: RunOptions) -> list[list[Host]]:
    """`options` as Deploy.step_options made them (the policy's batches already in)."""
    return plan_rollout(hosts, options.batch_size, canaries_of(d, hosts))


def describe_batches(batches: list[list[Host]]) -> str:
    return " | ".join(", ".join(h.name for h in b) for b in batches)


def budget_of(d: Deploy, hosts: list[Host]) -> FailureBudget:
    r = d.scenario.rollout
    if r.budget is None:
        r.budget = FailureBudget(r.policy.max_fail, len(hosts))
    return r.budget


# ---- analysis ---------------------------------------------------------------------------------------
def classify(result: HostResult) -> tuple[Verdict, str]:
    """One host's measurement. Passed; failed (it answered, wrongly); inconclusive (no data: the
    host or its service did not answer, or the check timed out); error (the check could not run)."""
    if result.ok:
        return Verdict.PASSED, result.message
    if result.status is Status.UNREACHABLE:
        return Verdict.INCONCLUSIVE, f"no answer: {result.message}"
    if result.message.startswith("timed out"):
        return Verdict.INCONCLUSIVE, result.message
    last = result.data.get("last")
    if not isinstance(last, dict):
        return Verdict.ERROR, result.message
    if "status" in last and last.get("status") is None:
        return Verdict.INCONCLUSIVE, f"no data: {last.get('error') or result.message}"
    if last.get("state") == "UNKNOWN":
        return Verdict.INCONCLUSIVE, f"no data: {last.get('output') or result.message}"
    return Verdict.FAILED, result.message


def analysis_of(d: Deploy, check: AnalysisCheck) -> Analysis:
    r = d.scenario.rollout
    if check.where not in r.analyses:
        limits = with_limits(r.policy, failures=check.failures, inconclusive=check.inconclusive, errors=check.errors)
        r.analyses[check.where] = Analysis(limits)
    return r.analyses[check.where]


def measure(d: Deploy, check: AnalysisCheck, hosts: list[Host]) -> Verdict:
    """Measure `hosts` once (the check loops on each host up to its seconds) and judge the
    analysis so far."""
    analysis = analysis_of(d, check)
    last = d.scenario.rollout.last.setdefault(check.where, {})
    if hosts:
        run = d.call(hosts, check.agent, check.action, dict(check.args),
                     RunOptions(timeout=check.seconds + CHECK_MARGIN))
        for host, result in run.results.items():
            verdict, detail = classify(result)
            analysis.measure(host, verdict, detail)
            last[host] = (verdict, detail)
    return analysis.verdict()


def ask_operator(question: str) -> bool | None:
    """True: continue, False: abort, None: nobody to ask (no terminal, or CI): pause. behave
    captures the steps' output, so the question goes to the terminal itself."""
    if os.environ.get("CI") or not sys.stdin.isatty():
        return None
    try:
        # unbuffered bytes: a text "r+" open of a terminal needs a seekable file and always raised
        # (io.UnsupportedOperation, an OSError), so the question was never asked
        with open("/dev/tty", "rb+", buffering=0) as tty:
            while True:
                tty.write(f"\n{question} [c]ontinue / [a]bort: ".encode())
                answer = tty.readline().decode(errors="replace").strip().lower()
                if answer in ("c", "continue"):
                    return True
                if answer in ("a", "abort", ""):
                    return False
    except OSError:
        return None


def judge_canaries(d: Deploy, check: AnalysisCheck, canaries: list[Host], others: list[Host]) -> Verdict:
    """Latency samples from the first batch's hosts and the hosts not updated yet, in one fan-out
    (so both sides see the same load on the controller and the network), judged by
    judgement.judge_latency. A canary that gives no samples makes it inconclusive (or error, when
    its check could not run); another host that gives none is left out, and said so. A judgement
    that errs is taken again, as Argo measures again, until the error limit is exceeded."""
    analysis = analysis_of(d, check)
    last = d.scenario.rollout.last.setdefault(check.where, {})
    label = "canaries " + ", ".join(h.name for h in canaries)
    while True:
        verdict, detail, per_host = _sample_and_judge(d, check, canaries, others)
        analysis.measure(label, verdict, detail)
        if verdict is not Verdict.ERROR or analysis.errors_in_a_row > analysis.limits.errors:
            break
        d.say(f"canary judgement: {verdict}: {detail}; taking it again")
    last.update(per_host)
    d.say(f"canary judgement after batch 1 ({check.where}): {verdict}: {detail}")
    return analysis.verdict()


def _sample_and_judge(d: Deploy, check: AnalysisCheck, canaries: list[Host],
                      others: list[Host]) -> tuple[Verdict, str, dict[str, tuple[Verdict, str]]]:
    analysis = analysis_of(d, check)
    if not canaries:
        analysis.judgement = {}
        return Verdict.INCONCLUSIVE, "no data: no host of the first batch succeeded", {}
    # every host's connection and resident agent ready first, so no host samples while another
    # is still being connected (on a shared machine that would slow the first ones' samples)
    d.call(canaries + others, "rpcutil", "ping", {}, RunOptions(timeout=CHECK_MARGIN))
    run = d.call(canaries + others, check.agent, check.action, dict(check.args), RunOptions(timeout=check.seconds + CHECK_MARGIN))
    samples: dict[str, list[float]] = {}
    notes, missing = [], []
    for host, result in run.results.items():
        got = result.data.get("samples_ms") if isinstance(result.data, dict) else None
        if isinstance(got, list) and got:
            samples[host] = [float(x) for x in got]
            if not result.ok:
                notes.append(f"{host}: {result.message}")
        elif isinstance(got, list):  # the action ran, and no request was answered as expected
            missing.append((host, Verdict.INCONCLUSIVE, result.message))
            notes.append(f"{host} gave no samples: {result.message}")
        else:
            verdict, why = classify(result)
            missing.append((host, Verdict.INCONCLUSIVE if verdict is Verdict.FAILED else verdict, why))
            notes.append(f"{host} gave no samples: {why}")
    canary_names = {h.name for h in canaries}
    lost = [(h, v, why) for h, v, why in missing if h in canary_names]
    mine = {h.name: samples[h.name] for h in canaries if h.name in samples}
    theirs = {h.name: samples[h.name] for h in others if h.name in samples}
    if lost:  # a canary not judged is no judgement of the canaries
        verdict = Verdict.ERROR if any(v is Verdict.ERROR for _, v, _ in lost) else Verdict.INCONCLUSIVE
        judgement = Judgement(verdict, f"no judgement: {', '.join(h for h, _, _ in lost)} (canary) gave no samples",
                              check.compare, Side(mine), Side(theirs), None, tuple(notes), check.margin)
    else:
        judgement = judge_latency(mine, theirs, check.compare, notes, check.margin)
    verdict, detail = judgement.verdict, judgement.detail
    if notes:
        detail += f"; {'; '.join(notes)}"
    analysis.judgement = judgement.to_dict()
    per_host: dict[str, tuple[Verdict, str]] = {h.name: (verdict, detail) for h in canaries}
    for h in others:
        if h.name in samples:
            side = judgement.others.to_dict()["hosts"][h.name]
            per_host[h.name] = (Verdict.PASSED, f"compared with: median {side['median_ms']:.2f} ms of "
                                                f"{side['samples']} samples")
    return verdict, detail, per_host


# ---- the rollout of one When --------------------------------------------------------------------------
def run_rollout(d: Deploy, hosts: list[Host], agent: str, action: str, args: Mapping[str, Any] | None,
                options: RunOptions, subject: str,
                describe_result: Callable[[HostResult], Cell] | None,
                ask: Callable[[str], bool | None] = ask_operator) -> RunResult:
    """Batch by batch; after each, the budget and the analyses decide whether the next one starts."""
    r = d.scenario.rollout
    batches = batches_for(d, hosts, options)
    budget = budget_of(d, hosts)
    gates = r.gates.get(r.step_index, [])
    label = f"{agent}#{action}"
    one = replace(options, batch_size=None)
    results: dict[str, HostResult] = {}
    record = {"step": r.step_text, "where": r.step_where, "batches": [[h.name for h in b] for b in batches],
              "stopped": ""}
    r.steps.append(record)
    judged = [c for c in gates if c.compare is not None]
    if judged and len(batches) < 2:
        raise RolloutStopped(f"{judged[0].where}: the canary judgement compares the first batch of "
                             f"\"{r.step_text}\" with the hosts it has not reached yet, but it runs on all "
                             f"{len(hosts)} hosts in one batch: give it @canary(...) or batches; nothing was changed")
    started, stop = time.monotonic(), ""
    for number, batch in enumerate(batches, 1):
        run = d.call(batch, agent, action, args, one, subject, describe_result)
        results.update(run.results)
        d.say(f"batch {number} of {len(batches)}: {run.tally()}")
        bad = [h for h, res in run.results.items() if not res.ok]
        budget.charge(bad, f"{r.step_text} (batch {number})")
        if bad and (budget.max_fail is None or budget.exceeded):
            stop = (f"failure budget exceeded: {budget.used} hosts failed, {budget.allowed} allowed "
                    f"(@max_fail({budget.max_fail}) of {budget.total} hosts)" if budget.max_fail is not None
                    else f"{len(bad)} host{'s' if len(bad) != 1 else ''} failed in batch {number} (no @max_fail budget)")
            break
        passed = [h for h in batch if run.results[h.name].ok]
        rest = [h for later in batches[number:] for h in later]
        stop = gate(d, gates, passed, number, len(batches), ask, rest)
        if stop:
            break
    left = [h.name for h in hosts if h.name not in results]
    for name in left:
        results[name] = HostResult(name, Status.NOT_ATTEMPTED, f"not attempted: {stop}")
    merged = RunResult(label, {h.name: results[h.name] for h in hosts}, time.monotonic() - started)
    d.matrix.record_run(merged, subject, describe_result)
    record["stopped"] = stop
    if budget.max_fail is not None:
        d.say(budget.describe())
    d.record_rollout()
    if stop:
        text = failure_text(merged) if not merged.ok else f"{label} stopped"
        raise RolloutStopped(f"rollout stopped after batch {_done(batches, left)} of {len(batches)}: {stop}\n{text}")
    dropped = [h for h, res in merged.results.items() if not res.ok]
    if dropped:
        d.say(f"within the failure budget: {', '.join(dropped)} failed and leave the rest of this scenario")
    return merged


def _done(batches: list[list[Host]], left: list[str]) -> int:
    return sum(1 for b in batches if any(h.name not in left for h in b))


def gate(d: Deploy, gates: list[AnalysisCheck], hosts: list[Host], number: int, total: int,
         ask: Callable[[str], bool | None], rest: list[Host] = ()) -> str:
    """Run the analyses on a batch: "" to go on, else why the rollout stops. A canary judgement
    is taken after the first batch only (`rest`: the hosts the When has not reached yet)."""
    for check in gates:
        if check.compare is not None:
            if number > 1:
                continue
            verdict = judge_canaries(d, check, hosts, list(rest))
        else:
            verdict = measure(d, check, hosts)
        analysis = analysis_of(d, check)
        d.say(f"analysis after batch {number} of {total} ({check.where}): {verdict}: {analysis.summary()}")
        if verdict in (Verdict.FAILED, Verdict.ERROR):
            return f"analysis {verdict} ({check.where}: {analysis.summary()})"
        if verdict is Verdict.INCONCLUSIVE:
            answer = ask(f"analysis inconclusive after batch {number} of {total} ({check.where}): "
                         f"{analysis.summary()}. Continue the rollout?")
            if answer is True:
                analysis.limits = AnalysisLimits(analysis.limits.failures,
                                                 analysis.counts[Verdict.INCONCLUSIVE], analysis.limits.errors)
                analysis.accepted.update(h for h, (v, _) in d.scenario.rollout.last.get(check.where, {}).items()
                                         if v is Verdict.INCONCLUSIVE)
                d.say("the operator chose to continue")
                continue
            if answer is False:
                return f"aborted by the operator after an inconclusive analysis ({check.where})"
            d.matrix.paused = d.matrix.paused or f'at "{d.scenario.rollout.step_text}" after batch {number} of {total}: ' \
                                                 f"analysis inconclusive ({check.where})"
            return (f"paused: analysis inconclusive ({check.where}: {analysis.summary()}); "
                    f"exit code {PAUSED_EXIT}; run again with -D resume to continue")
    return ""


def finish_analysis(d: Deploy, check: AnalysisCheck) -> None:
    """The analysis step itself: its verdict so far, with each host's last measurement as its cell.
    If no When measured it batch by batch, it measures every host now (one batch)."""
    r = d.scenario.rollout
    if check.where not in r.analyses and check.compare is not None:
        raise RolloutStopped(f"{check.where}: no canary judgement was taken: it is taken after the first batch "
                             f"of the When before it, and no When before it ran")
    if check.where not in r.analyses:
        measure(d, check, d.hosts())
    analysis = r.analyses[check.where]
    for host, (verdict, detail) in r.last.get(check.where, {}).items():
        status = {Verdict.PASSED: Outcome.OK, Verdict.FAILED: Outcome.FAILED}.get(verdict, Outcome.FAILED)
        if verdict is Verdict.INCONCLUSIVE and host in analysis.accepted:  # the operator's call, said so
            status, detail = Outcome.OK, f"{detail} (the operator chose to continue)"
        d.matrix.record(host, Cell(status, f"{verdict}: {detail}", f"{check.agent}#{check.action}"))
    verdict = analysis.verdict()
    d.say(f"analysis {verdict}: {analysis.summary()}")
    d.record_rollout()
    if verdict is not Verdict.PASSED:
        raise RolloutStopped(f"analysis {verdict}: {analysis.summary()}")


# ---- the analysis checks the step vocabulary offers ------------------------------------------------------
def health_check(d: Deploy, text: str, where: str, port: int, seconds: float, field: str | None = None,
                 value: str | None = None, **limits: int | None) -> AnalysisCheck:
    """GET the health URL on each host of the batch until it answers 200 (with `field` = `value`)."""
    args: dict[str, Any] = {"url": d.settings.health_url(port), "deadline": seconds, "interval": 1, "timeout": 2}
    if field:
        args |= {"field": field, "expect": value}
    return AnalysisCheck(text, where, "health", "http", args, seconds, **limits)


def latency_judgement(d: Deploy, text: str, where: str, port: int, samples: int, alpha: float,
                      margin: float = 0.0, **limits: int | None) -> AnalysisCheck:
    """`samples` timed GETs of the health URL on the canaries and on the hosts not updated yet,
    SPACING apart (a host's samples then span a second or more, so a passing burst of load
    weighs on few of them), judged at significance `alpha`, allowing the canaries to be slower by
    the fraction `margin` (one line naming the step when a number is out of range)."""
    if not 2 <= samples <= 1000:
        raise RolloutStopped(f"{where}: {samples} samples: take from 2 to 1000 per host")
    if not 0 < alpha < 1:
        raise RolloutStopped(f"{where}: p < {alpha:g}: the significance level must be between 0 and 1")
    if not 0 <= margin <= 10:
        raise RolloutStopped(f"{where}: by more than {margin:.0%}: give 0% to 1000%")
    timeout = 2.0
    args = {"url": d.settings.health_url(port), "samples": samples, "timeout": timeout, "interval": SPACING}
    return AnalysisCheck(text, where, "health", "latency", args, (samples + 1) * (timeout + SPACING),
                         compare=alpha, margin=margin, **limits)


def load_check(text: str, where: str, threshold: float, seconds: float, **limits: int | None) -> AnalysisCheck:
    """Each host's 1-minute load average below `threshold`."""
    return AnalysisCheck(text, where, "health", "load", {"threshold": threshold, "deadline": seconds, "interval": 1},
                         seconds, **limits)


def command_check(text: str, where: str, command: str, seconds: float, **limits: int | None) -> AnalysisCheck:
    """Any command or NRPE check (exit 0 OK; 1 WARNING and 2 CRITICAL fail; 3 UNKNOWN is no data)."""
    return AnalysisCheck(text, where, "health", "command", {"command": command, "deadline": seconds, "interval": 1,
                                                            "timeout": seconds}, seconds, **limits)
