"""behave's hooks for deploys. The repository root's environment.py imports these: behave reads
hooks from environment.py next to steps/ (the root), and an environment.py directly in
features/ would make behave look for features/steps/ instead.

One run = one Session (its SSH connections shared by every step), one result matrix, one
release gate. Settings come from userdata (-D): env, lab=keep|down, plan, report, backend, ...
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from orchestrator_lib.deploy import Deploy, Settings
from orchestrator_lib.errors import OrchestratorError
from orchestrator_lib.inventory import Inventory, load_inventory
from orchestrator_lib.reporting import ResultMatrix
from orchestrator_lib.session import Session

FAIL_FAST_TAG = "fail_fast"


class SetupFailed(OrchestratorError):
    """The run could not start (bad estate, lab not up, ...): one line, no traceback."""


class GateFailed(OrchestratorError):
    """Every scenario passed, yet the matrix holds a host that ended a step badly."""


def _say(line: str) -> None:
    print(line, flush=True)


def ensure_lab(inventory: Inventory) -> Any:
    """A lab estate that is not running is brought up (a lab with only some hosts stopped is
    left as it is: a stopped host is something the deploy must notice, not repair)."""
    if not inventory.lab:
        return None
    from orchestrator_lib.lab import Lab
    lab = Lab(inventory)
    if lab.is_up() or any(host.running for host in lab.status()):
        return lab
    if os.geteuid() != 0:
        raise SetupFailed(f"the lab of {inventory.path.name} is not running and bringing it up needs root: "
                          f"run `sudo python3 -m orchestrator_lib.lab up {inventory.name}`")
    lab.up(progress=_say)
    return lab


class Run:
    """What the hooks keep for the whole run (on behave's root context layer)."""

    def __init__(self) -> None:
        self.settings = Settings()
        self.matrix = ResultMatrix()
        self.deploy: Deploy | None = None
        self.lab: Any = None
        self.error = ""
        self.feature_files: list[str] = []
        self.failed_fast: set[str] = set()    # feature files whose @fail_fast already tripped


def before_all(context: Any) -> None:
    run = context.run = Run()
    context.deploy = None
    try:
        run.settings = Settings.from_userdata(context.config.userdata)
        run.matrix.env, run.matrix.plan = run.settings.env, run.settings.plan
        run.lab = ensure_lab(load_inventory(run.settings.env))
        session = Session(run.settings.env)
        context.deploy = run.deploy = Deploy(run.settings, session, run.matrix)
    except OrchestratorError as e:
        run.error = run.matrix.error = str(e)
    if run.settings.plan and not run.error:
        _say("PLAN MODE: read-only checks only; nothing will be changed on any host\n")


def before_feature(context: Any, feature: Any) -> None:
    run: Run = context.run
    run.feature_files.append(feature.filename)
    if run.error:  # fails the feature (and so the run) with one line
        raise SetupFailed(run.error)


def before_scenario(context: Any, scenario: Any) -> None:
    run: Run = context.run
    run.matrix.start_scenario(scenario.name, scenario.feature.name, scenario.feature.filename)
    if scenario.feature.filename in run.failed_fast:
        scenario.skip(f"@{FAIL_FAST_TAG}: an earlier scenario of this feature failed")
    if run.deploy is not None:
        run.deploy.begin_scenario(scenario.feature.name, scenario.name)


def before_step(context: Any, step: Any) -> None:
    context.run.matrix.start_step(step.keyword, step.name)


def after_step(context: Any, step: Any) -> None:
    context.run.matrix.end_step(step.status.name, step.error_message or "")


def after_scenario(context: Any, scenario: Any) -> None:
    run: Run = context.run
    matrix = run.matrix
    for step in list(scenario.all_steps)[len(matrix.scenarios[-1].steps):]:  # never started: skipped
        matrix.start_step(step.keyword, step.name)
        matrix.end_step(step.status.name)
    targeted: list[str] = []
    if run.deploy is not None and run.deploy.scenario.target.pinned is not None:
        targeted = [h.name for h in run.deploy.scenario.target.pinned]
    matrix.end_scenario(scenario.status.name, getattr(scenario, "skip_reason", "") or "", targeted)
    if scenario.status.has_failed() and FAIL_FAST_TAG in scenario.feature.tags:
        run.failed_fast.add(scenario.feature.filename)


def after_all(context: Any) -> None:
    run: Run | None = getattr(context, "run", None)
    if run is None:
        return
    if run.deploy is not None:
        run.deploy.session.close()
    paths = write_reports(run)
    print_recap(run, paths)
    if run.lab is not None and run.settings.lab == "down":
        run.lab.down(progress=_say)
    # behave fails the run on a failed step, hook error or undefined step; the gate also
    # fails it when a host ended badly in a step that passed (it should not, but never pass it).
    all_passed = all(s.status in ("passed", "skipped") for s in run.matrix.scenarios)
    if not run.matrix.passed and all_passed and not run.error and run.matrix.scenarios:
        raise GateFailed(run.matrix.gate_line())


def write_reports(run: Run) -> list[Path]:
    template = run.settings.report_template
    files = list(dict.fromkeys(run.feature_files)) or [""]
    if "{feature}" not in template:
        path = Path(template)
        run.matrix.write_json(path)
        return [path]
    paths = []
    for file in files:
        path = Path(template.format(feature=Path(file).stem or "run"))
        matrix = run.matrix.only(file) if file else run.matrix
        matrix.write_json(path)
        paths.append(path)
    return paths


def print_recap(run: Run, paths: list[Path]) -> None:
    matrix = run.matrix
    title = "Plan recap" if matrix.plan else "Deploy recap"
    n_sc, n_hosts = len(matrix.scenarios), len(matrix.hosts)
    _say(f"\n{title} (env {matrix.env}): {n_sc} scenario{'s' if n_sc != 1 else ''}, "
         f"{n_hosts} host{'s' if n_hosts != 1 else ''}")
    for line in matrix.recap_lines():
        _say(f"  {line}")
    _say(matrix.gate_line())
    _say("Report: " + ", ".join(str(p) for p in paths))
