"""The seam between orchestrator_lib.controller.deploy and the behave steps: the library imports neither
behave nor PyHamcrest, library errors fail a step in one line, and a Then records every host in
the matrix before it asserts on every host."""
from __future__ import annotations

import subprocess
import sys

import pytest
from behave.model_type import FileLocation
from hamcrest import equal_to

from orchestrator_lib.controller.deploy import DeployError, Unanswered
from orchestrator_lib.behave.binding import StepFailed, deploy_of, one_line_errors
from orchestrator_lib.behave.matchers import check

from tests.unit.test_deploy_fakes import cells, make_deploy


def test_the_deploy_layer_imports_neither_behave_nor_hamcrest():
    code = ("import sys, orchestrator_lib.controller.deploy, orchestrator_lib.controller.deploy.operations, orchestrator_lib.controller.deploy.loadbalancer;"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('behave', 'hamcrest') or m.startswith('orchestrator_lib.behave')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_library_errors_fail_the_step_in_one_line_and_bugs_keep_their_type():
    def step(context, what):
        """A step."""
        if what == "bug":
            raise KeyError(what)
        raise DeployError("the load balancer lb1 is among the hosts to update: narrow the filters")
    wrapped = one_line_errors(step)
    with pytest.raises(StepFailed, match=r"^the load balancer lb1 is among the hosts") as failed:
        wrapped(None, what="user")
    assert failed.value.__cause__ is None and failed.value.__suppress_context__
    with pytest.raises(KeyError):
        wrapped(None, "bug")
    assert wrapped.__doc__ == "A step."
    assert FileLocation.for_function(wrapped).line == step.__code__.co_firstlineno  # behave shows the step's own line


def test_no_deploy_on_the_context_is_a_one_line_failure():
    with pytest.raises(StepFailed, match="no deploy session"):
        deploy_of(object())


def test_check_records_every_host_then_asserts_naming_each_failing_one(tmp_path):
    d = make_deploy(tmp_path)
    values = {"web1": "1.1", "web2": "1.0", "web3": Unanswered("unreachable", "gone")}
    with pytest.raises(AssertionError) as failed:
        check(d, values, equal_to("1.1"), "package version for app", "package#status")
    assert str(failed.value).splitlines() == [
        "package version for app",
        "Expected: on every host: '1.1'",
        "     but: 2 of 3 hosts differ:",
        "          web2: expected '1.1', actual '1.0'",
        "          web3: expected '1.1', actual <unreachable: gone>"]
    assert [(h, c.status.value, c.message) for h, c in cells(d).items()] == [
        ("web1", "ok", "package version for app: 1.1"),
        ("web2", "failed", "package version for app: expected '1.1', actual '1.0'"),
        ("web3", "unreachable", "gone")]
    check(d, {"web1": "1.1"}, "1.1", "package version for app")


def test_run_options_keep_a_repeated_option_for_the_step_to_refuse():
    """`with 2 tries with 3 tries` used to run with 2 tries, silently; parsing cannot fail (a
    converter error is no one-line step failure), so the step's check refuses it."""
    from orchestrator_lib.controller.deploy import StepOptions
    from orchestrator_lib.behave.parsing import parse_run_options
    assert parse_run_options(" in batches of 1,2,50% with 3 tries") == StepOptions("1,2,50%", 3)
    assert parse_run_options("") == StepOptions()
    twice = parse_run_options(" with 2 tries in batches of 2 with 3 tries")
    assert twice == StepOptions("2", 2, ("with 2 tries", "with 3 tries"))
    with pytest.raises(DeployError, match=r"^an option given more than once: 'with 2 tries', 'with 3 tries'"):
        twice.run_options()
    assert parse_run_options(" in batches of 2 in batches of 3").repeated == ("in batches of 2", "in batches of 3")
