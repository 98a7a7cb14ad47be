"""The step library: importing this package registers every step with behave. A repository's
step file is one line, `from orchestrator_lib.behave.steps import *`, which also gives it the
decorators and helpers for steps of its own (`given`/`when`/`then` that fail a step in one line on
a library error, `deploy_of(context)`, `check`)."""
from orchestrator_lib.behave import parsing  # noqa: F401  (registers the parameter types)
from orchestrator_lib.behave.binding import deploy_of, given, then, when
from orchestrator_lib.behave.matchers import check
from orchestrator_lib.behave.steps import analysis, discovery, health, loadbalancer, notify, package, service  # noqa: F401

__all__ = ["check", "deploy_of", "given", "then", "when"]
