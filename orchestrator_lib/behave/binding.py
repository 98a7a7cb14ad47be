"""The run's `Deploy` (orchestrator_lib.controller.deploy) bound to behave: the hooks put it on behave's
context, `deploy_of` gets it back, and `given` / `when` / `then` register a step as behave's own
decorators do, turning the library's errors (already one line, the user's to fix) into a failed
step that shows just that line. Any other exception is a bug and keeps its traceback."""
from __future__ import annotations

import functools
from typing import Any, Callable

import behave

from orchestrator_lib.controller.deploy import Deploy
from orchestrator_lib.controller.deploy.run import ScenarioDone
from orchestrator_lib.controller.errors import OrchestratorError

Step = Callable[..., None]


class StepFailed(AssertionError):
    """behave prints an AssertionError's message alone (any other exception gets a traceback)."""


def one_line_errors(step: Step) -> Step:
    @functools.wraps(step)  # behave follows __wrapped__ for the step's location; the docstring stays
    def run(context: Any, *args: Any, **kwargs: Any) -> None:
        try:
            step(context, *args, **kwargs)
        except ScenarioDone as e:  # -D resume: every host completed this scenario before
            context.scenario.skip(str(e))
        except OrchestratorError as e:
            raise StepFailed(str(e)) from None
    return run


def _registrar(behave_decorator: Callable[[str], Callable[[Step], Step]]) -> Callable[[str], Callable[[Step], Step]]:
    def decorator(pattern: str) -> Callable[[Step], Step]:
        def register(step: Step) -> Step:
            return behave_decorator(pattern)(one_line_errors(step))
        return register
    return decorator


given = _registrar(behave.given)
when = _registrar(behave.when)
then = _registrar(behave.then)


def deploy_of(context: Any) -> Deploy:
    """The run's Deploy, which the before_all hook puts on behave's context."""
    d = getattr(context, "deploy", None)
    if d is None:
        raise StepFailed("no deploy session: the hooks (orchestrator_lib.behave.hooks, imported by environment.py) did not set one up")
    return d


def step_registry(context: Any = None) -> Any:
    """The registry behave's runner matches steps with (its own; behave.step_registry.registry may
    have been replaced by an empty one by the time features run)."""
    registry = getattr(getattr(context, "_runner", None), "step_registry", None)
    if registry is None:
        from behave.runner import the_step_registry as registry
    return registry
