"""Analysis between batches (`Then after each batch ...`): the check is measured on every batch
of the When before it, before the next batch starts, with four outcomes: passed, failed (stops
the rollout), inconclusive (no data: asks the operator at a terminal, else pauses the run) and
error (the check could not run). The canary judgement (`after the canaries the health check
latency ...`) is one such analysis, taken once after the first batch. Limits in words: `with a failure limit of 1`,
`with an inconclusive limit of 1`, `with an error limit of 2` (defaults 0, 0, 4; tags
@failure_limit(N) @inconclusive_limit(N) @error_limit(N) set them for a feature or scenario)."""
from __future__ import annotations

from typing import Any, Callable

from orchestrator_lib.behave import parsing  # noqa: F401  (registers the parameter types)
from orchestrator_lib.behave.binding import deploy_of, then
from orchestrator_lib.controller.deploy import rollout

#: a builder: (deploy, the step's text, file:line, the step's arguments) -> AnalysisCheck
Builder = Callable[..., rollout.AnalysisCheck]


def analysis_gate(builder: Builder) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Marks a step as an analysis, so the hooks find it (behave's registry) before the When it
    gates runs; `then` copies the mark onto the registered step."""
    def mark(step: Callable[..., None]) -> Callable[..., None]:
        step.analysis = builder  # type: ignore[attr-defined]
        return step
    return mark


def _finish(context: Any, builder: Builder, **arguments: Any) -> None:
    d = deploy_of(context)
    r = d.scenario.rollout
    check = builder(d, r.step_text, r.step_where, **arguments)
    if d.plan_skips_check(f"analysis {r.step_where}"):
        return
    rollout.finish_analysis(d, check)


def _health(d, text, where, port, field=None, value=None, seconds=60, unit="", limits=None):
    return rollout.health_check(d, text, where, port, seconds, field, value, **(limits or {}))


def _load(d, text, where, threshold, seconds, unit="", limits=None):
    return rollout.load_check(text, where, threshold, seconds, **(limits or {}))


def _command(d, text, where, command, seconds, unit="", limits=None):
    return rollout.command_check(text, where, command, seconds, **(limits or {}))


def _judge(d, text, where, port, samples, alpha, margin=0.0, limits=None):
    return rollout.latency_judgement(d, text, where, port, samples, alpha, margin, **(limits or {}))


_judge.once = True  # type: ignore[attr-defined]  # taken once, after the first batch (rollout_formatter says so)


@then("after the canaries the health check latency on port {port:d} should not be worse than the other "
      "hosts'{margin:Margin} ({samples:d} samples, p < {alpha:g}){limits:Limits}")
@analysis_gate(_judge)
def step_canary_latency(context, port, margin, samples, alpha, limits):
    """The canary judgement: after the first batch of the When before it (the canaries under
    @canary), `samples` timed GETs of http://127.0.0.1:PORT/health on each of its hosts and on
    each host not reached yet, compared by a one-sided Mann-Whitney U test (scipy, the
    `analysis` extra): p < alpha fails; too few samples, or no scipy, is inconclusive.
    `... the other hosts' by more than 20% (...)` lets the canaries be up to 20% slower."""
    _finish(context, _judge, port=port, samples=samples, alpha=alpha, margin=margin, limits=limits)


@then("after each batch the health check on port {port:d} should report {field:Word} {value:Word} "
      "within {seconds:d} {unit:Seconds}{limits:Limits}")
@analysis_gate(_health)
def step_after_each_batch_reports(context, port, field, value, seconds, unit, limits):
    """After each batch of the When before it, GET http://127.0.0.1:PORT/health on the batch's
    hosts until it reports `field` = value (no answer at all: inconclusive)."""
    _finish(context, _health, port=port, field=field, value=value, seconds=seconds, limits=limits)


@then("after each batch the health check on port {port:d} should pass within {seconds:d} {unit:Seconds}{limits:Limits}")
@analysis_gate(_health)
def step_after_each_batch_passes(context, port, seconds, unit, limits):
    """After each batch, the health URL on the batch's hosts answers 200."""
    _finish(context, _health, port=port, seconds=seconds, limits=limits)


@then("after each batch the load average should be below {threshold:g} within {seconds:d} {unit:Seconds}{limits:Limits}")
@analysis_gate(_load)
def step_after_each_batch_load(context, threshold, seconds, unit, limits):
    """After each batch, the batch's hosts' 1-minute load average drops below the threshold."""
    _finish(context, _load, threshold=threshold, seconds=seconds, limits=limits)


@then('after each batch the command "{command}" should pass within {seconds:d} {unit:Seconds}{limits:Limits}')
@analysis_gate(_command)
def step_after_each_batch_command(context, command, seconds, unit, limits):
    """After each batch, a command or NRPE check on the batch's hosts exits 0 (3, UNKNOWN: no data)."""
    _finish(context, _command, command=command, seconds=seconds, limits=limits)
