"""What a scenario's steps will need, read from their text before the first one runs, for the
pre-flight checks (orchestrator_lib.controller.deploy.preflight): the package versions it
installs, the HAProxy backends and load balancer it uses, whether it notifies anyone. The
patterns follow the step vocabulary in steps/ (a unit test runs them on the shipped features)."""
from __future__ import annotations

import re
from typing import Any

from orchestrator_lib.controller.deploy.preflight import Needs

PACKAGE = re.compile(r"^I (?:update|downgrade) the package (\S+) to (\S+)")
REVISION = re.compile(r"^I deploy revision (\S+) of (\S+)")
BACKEND = re.compile(r"in the load balancer backend (\S+)")
LOAD_BALANCER = re.compile(r"\bthe load balancer\b")
NOTIFY = re.compile(r"^I notify ")


def needs_of(scenario: Any) -> Needs:
    """`scenario`: behave's Scenario (its background steps included)."""
    packages: list[tuple[str, str]] = []
    backends: list[str] = []
    notify = load_balancer = False
    for step in scenario.all_steps:
        if step.step_type == "given":
            continue
        if m := PACKAGE.match(step.name):
            packages.append((m.group(1), m.group(2)))
        elif m := REVISION.match(step.name):
            packages.append((m.group(2), m.group(1)))
        if m := BACKEND.search(step.name):
            backends.append(m.group(1))
        load_balancer = load_balancer or bool(LOAD_BALANCER.search(step.name))
        notify = notify or bool(NOTIFY.match(step.name))
    return Needs(tuple(dict.fromkeys(packages)), tuple(dict.fromkeys(backends)), notify, load_balancer)
