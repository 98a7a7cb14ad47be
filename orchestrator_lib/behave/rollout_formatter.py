"""`behave --dry-run -f rollout`: the batches each step would use, read from the tags and the
steps alone (no hook runs and no host is asked under --dry-run, so the hosts are not known: the
batches are said in words; `-D plan` lists them by host). A tag and a step that disagree are
reported here too, as the real run would fail them."""
from __future__ import annotations

from typing import Any

from behave.formatter.base import Formatter

from orchestrator_lib.controller.errors import OrchestratorError
from orchestrator_lib.controller.orchestration.rollout import RolloutPolicy


def batches_in_words(policy: RolloutPolicy, batch: str | None) -> str:
    parts = []
    if policy.canary is not None:
        per = f" per value of {policy.canary.by}" if policy.canary.by else ""
        parts.append(f"canaries first ({policy.canary.count} host{'s' if policy.canary.count != 1 else ''}{per}, "
                     f"from the run's seed)")
    parts.append(f"then batches of {batch}" if parts and batch else f"batches of {batch}" if batch
                 else "then the rest at once" if parts else "all hosts at once")
    if policy.max_fail is not None:
        parts.append(f"one failure budget @max_fail({policy.max_fail}) over the scenario")
    return ", ".join(parts)


class RolloutFormatter(Formatter):
    name = "rollout"
    description = "the rollout policy and the batches each step would use (with --dry-run)"

    def scenario(self, scenario: Any) -> None:
        from orchestrator_lib.behave.binding import step_registry
        from orchestrator_lib.behave.hooks import policy_of
        registry = step_registry()
        out = self.open()
        out.write(f"\n{scenario.keyword}: {scenario.name}  # {scenario.filename}:{scenario.line}\n")
        try:
            policy = policy_of(scenario)
        except OrchestratorError as e:
            out.write(f"  error: {e}\n")
            return
        if not policy.empty:
            out.write(f"  policy: {policy.describe()} ({'; '.join(policy.sources.values())})\n")
        last_when = ""
        for step in scenario.all_steps:
            match = registry.find_match(step)
            text = f"{step.keyword} {step.name}"
            if step.step_type == "when":
                last_when = f"line {step.line}"
            if match is None:
                continue
            arguments = {a.name: a.value for a in match.arguments if a.name}
            builder = getattr(match.func, "analysis", None)
            if builder is not None:
                if getattr(builder, "once", False):
                    out.write(f"  {text}\n    -> judged once, after the first batch (the canaries) of the When at "
                              f"{last_when or '(none)'}, against the hosts it has not reached yet\n")
                else:
                    out.write(f"  {text}\n    -> measured after each batch of the When at {last_when or '(none: once)'}\n")
                continue
            options = arguments.get("options")
            if options is None and not (step.step_type == "when" and not policy.empty):
                continue
            batch = getattr(options, "batch", None)
            if batch and policy.batch and batch.replace(" ", "") != policy.batch.replace(" ", ""):
                out.write(f"  {text}\n    -> error: {step.filename}:{step.line}: 'in batches of {batch}' disagrees "
                          f"with {policy.sources['batch']}\n")
                continue
            out.write(f"  {text}\n    -> {batches_in_words(policy, batch or policy.batch)}\n")

    def close(self) -> None:
        self.close_stream()
