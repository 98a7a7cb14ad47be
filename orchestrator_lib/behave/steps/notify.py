"""Telling people: a webhook on the estate's notification hosts, the next one if the first fails."""
from orchestrator_lib.controller.deploy import operations as ops
from orchestrator_lib.behave import parsing  # noqa: F401  (registers the parameter types)
from orchestrator_lib.behave.binding import deploy_of, when


@when('I notify {recipient:Word} that "{message}"')
def step_notify(context, recipient, message):
    """Placeholders: {count} {hosts} {version} {env} {feature} {scenario}, e.g.
    `"updated {count} hosts to {version}"` ({version}: the last one updated or deployed)."""
    ops.notify(deploy_of(context), recipient, message)
