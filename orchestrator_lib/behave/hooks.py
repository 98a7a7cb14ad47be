"""behave's hooks for deploys, part of the installed package so any repository can use them: its
features/environment.py is one line, `from orchestrator_lib.behave.hooks import *`.

One run = one Session (its SSH connections shared by every step), one result matrix, one
release gate. Settings come from userdata (-D): env, lab=keep|down, plan, report, backend, ...
"""
from __future__ import annotations

__all__ = ["before_all", "before_feature", "before_scenario", "before_step", "after_step",
           "after_scenario", "after_all"]

import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from orchestrator_lib.behave.console import ABORT_END, INTERRUPTED, DropOneLine
from orchestrator_lib.behave.binding import step_registry
from orchestrator_lib.behave.needs import needs_of
from orchestrator_lib.controller.deploy import Deploy, Settings
from orchestrator_lib.controller.deploy.guard import RunGuard
from orchestrator_lib.controller.deploy.preflight import Needs
from orchestrator_lib.controller.deploy.rollout import PAUSED_EXIT, AnalysisCheck
from orchestrator_lib.controller.orchestration.rollout import RolloutPolicy, parse_tags
from orchestrator_lib.controller.errors import OrchestratorError
from orchestrator_lib.controller.inventory import Inventory, load_inventory
from orchestrator_lib.controller.reporting import ResultMatrix
from orchestrator_lib.controller.reporting.html import write_html
from orchestrator_lib.controller.reporting.identity import spec_revision
from orchestrator_lib.controller.reporting.progress import Progress
from orchestrator_lib.controller.reporting.junit import write_junit
from orchestrator_lib.controller.reporting.matrix import GOOD_SCENARIO
from orchestrator_lib.controller.session import Session
from orchestrator_lib.controller.transports.ssh_agent import default_caller
from orchestrator_lib.lab import refuse_if_down

FAIL_FAST_TAG = "fail_fast"
#: a scenario that runs only after a failure, for the hosts that failed (and only them)
ROLLBACK_TAG = "rollback"
#: seconds an interrupted run waits for its SSH session to close (closing waits for every request
#: still running on a host, up to its own timeout: minutes for a package update)
CLOSE_WAIT_INTERRUPTED = 2.0
UNDEFINED = "undefined step: no step definition matches it (behave --steps-catalog lists the vocabulary)"


class SetupFailed(OrchestratorError):
    """The run could not start (bad estate, lab not up, ...): one line, no traceback."""


class GateFailed(OrchestratorError):
    """behave would exit 0, yet the gate failed: a host ended a step badly in a step that
    passed, or no scenario ran at all (no feature, a typo'd `Scenario:`, tags that match none)."""


class LintFailed(OrchestratorError):
    """The features broke a lint rule (orch lint): the run stops before touching a host."""


class ReportFailed(OrchestratorError):
    """The JSON report could not be written (the recap is printed anyway)."""


class UndefinedStep(Exception):
    """What behave's JUnit reporter names for an undefined step (behave leaves it None)."""


class Interrupted(Exception):
    """What behave's JUnit reporter names for the step the operator interrupted."""


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
        self.setup_reported = False           # before_feature raised run.error: behave fails the run
        self.started = False                  # before_all finished (an abort after it is an interruption)
        self.configured = False               # the -D options were accepted (else no report is written)
        self.junit_dir: Path | None = None    # where the per-host JUnit files go (with behave's own)
        self.commits: dict[str, str] = {}     # feature file -> git commit of its repository ("" if none)
        self.steps: list[Any] = []            # the current scenario's steps (background included)


def before_all(context: Any) -> None:
    run = context.run = Run()
    context.deploy = None
    run.matrix.identity.started = time.time()
    run.matrix.identity.caller = default_caller()
    if getattr(context.config, "junit", False):
        run.junit_dir = Path(context.config.junit_directory)
    run.matrix.env = str(context.config.userdata.get("env", ""))  # the one asked for, should -D fail
    try:
        run.settings = Settings.from_userdata(context.config.userdata)
        run.configured = True
        run.matrix.env, run.matrix.plan = run.settings.env, run.settings.plan
        if run.settings.lint == "on":
            lint(context)
        inventory = load_inventory(run.settings.env)  # parsed once: the lab check and the session share it
        run.lab = ensure_lab(inventory)
        session = Session(inventory, preflight=refuse_if_down, transport=run.settings.transport or None)
        run.matrix.identity.caller = session.caller
        context.deploy = run.deploy = Deploy(run.settings, session, run.matrix)
        run.deploy.progress = Progress.for_output(quiet=bool(getattr(context.config, "quiet", False)))
        run.deploy.guard = RunGuard(run.deploy)
    except OrchestratorError as e:
        run.error = run.matrix.error = str(e)
    except OSError as e:  # the journal cannot be written: no deploy without it
        run.error = run.matrix.error = f"cannot write the run's journal: {e}"
    except KeyboardInterrupt:  # behave aborts the run; after_all still reports it
        run.matrix.interrupt("while the run was starting")
        raise
    run.started = True
    if run.settings.plan and not run.error:
        _say("PLAN MODE: every step is a dry run on the hosts; nothing will be changed on any host\n")


def lint(context: Any) -> None:
    """`orch lint` on the features this run is about to run, before any host is touched: warnings
    are printed, errors fail the run (-D lint=off runs it anyway)."""
    from orchestrator_lib.behave.lint import ERROR, lint_features
    runner = context._runner  # the registry behave matches with (behave resets the module's global)
    findings = lint_features(runner.features, runner.step_registry)
    for finding in findings:
        _say(f"lint: {finding}")
    errors = [f for f in findings if f.level == ERROR]
    if errors:
        raise LintFailed(f"the spec has {len(errors)} lint error{'s' if len(errors) != 1 else ''} "
                         f"(the first: {errors[0]}); fix them, or run with -D lint=off")


def before_feature(context: Any, feature: Any) -> None:
    run: Run = context.run
    run.feature_files.append(feature.filename)
    run.matrix.start_feature(feature.filename, feature.name, list(feature.description), list(feature.tags))
    run.commits[feature.filename] = spec_revision(feature.filename).commit
    if run.error:  # fails the feature (and so the run) with one line
        error = SetupFailed(run.error)
        mark_not_run(feature, error)
        run.setup_reported = True
        raise error


def mark_not_run(feature: Any, error: Exception) -> None:
    """behave's JUnit reporter writes a testcase per scenario, and a scenario of a feature whose
    hook failed is only "untested" (no error, no failure): mark each one as failed by `error`."""
    for scenario in feature.walk_scenarios():
        scenario.hook_failed = True
        scenario.store_exception_context(error)
        scenario.error_message = str(error)


def before_scenario(context: Any, scenario: Any) -> None:
    run: Run = context.run
    run.matrix.start_scenario(scenario.name.strip(), scenario.feature.name, scenario.feature.filename, scenario.line)
    rollback = ROLLBACK_TAG in scenario.effective_tags
    if scenario.feature.filename in run.failed_fast and not rollback:
        scenario.skip(f"@{FAIL_FAST_TAG}: an earlier scenario of this feature failed")
    if run.deploy is None:
        return
    run.steps = list(scenario.all_steps)
    run.deploy.begin_scenario(scenario.feature.name, scenario.name)
    try:
        run.deploy.begin_scenario(scenario.feature.name, scenario.name, policy_of(scenario),
                                  analysis_gates(run.deploy, run.steps, context))
    except OrchestratorError as e:  # a bad policy tag or analysis step: this scenario fails, in one line
        run.matrix.scenarios[-1].reason = str(e)
        raise SetupFailed(str(e)) from None
    if run.deploy.guard is not None:
        run.deploy.guard.begin_scenario(scenario.feature.filename, scenario.name)
    run.deploy.scenario.needs = Needs() if rollback else needs_of(scenario)
    if rollback:
        failed = run.matrix.failed_hosts(scenario.feature.filename)
        if not failed:
            scenario.skip(f"@{ROLLBACK_TAG}: no host failed")
        else:
            run.deploy.scenario.only = tuple(failed)
            _say(f"  @{ROLLBACK_TAG}: for the hosts that failed: {', '.join(failed)}")


def policy_of(scenario: Any) -> RolloutPolicy:
    """The rollout policy of the scenario's tags over its feature's (each tag with its file:line)."""
    def tags(owner: Any) -> list[tuple[str, str]]:
        return [(str(t), f"{owner.filename}:{getattr(t, 'line', owner.line)}") for t in owner.tags]
    return parse_tags(tags(scenario)).over(parse_tags(tags(scenario.feature)))


def analysis_gates(deploy: Deploy, steps: list[Any], context: Any = None) -> dict[int, list[AnalysisCheck]]:
    """The `Then after each batch ...` steps, known before the When each gates (the last When
    before it) runs: behave's registry says which step definition each step is."""
    registry = step_registry(context)
    gates: dict[int, list[AnalysisCheck]] = {}
    last_when = None
    for index, step in enumerate(steps):
        if step.step_type == "when":
            last_when = index
        match = registry.find_match(step)
        builder = getattr(getattr(match, "func", None), "analysis", None)
        if builder is None or last_when is None:
            continue
        arguments = {a.name: a.value for a in match.arguments if a.name}
        check = builder(deploy, f"{step.keyword} {step.name}", f"{step.filename}:{step.line}", **arguments)
        gates.setdefault(last_when, []).append(check)
    return gates


def before_step(context: Any, step: Any) -> None:
    run: Run = context.run
    run.matrix.start_step(step.keyword, step.name, step.line)
    if run.deploy is not None:
        # by place, not identity: behave may hand the hooks another object for the same step
        index = next((i for i, s in enumerate(run.steps) if (s.filename, s.line) == (step.filename, step.line)), -1)
        run.deploy.begin_step(index, f"{step.filename}:{step.line}", f"{step.keyword} {step.name}")
        # every request of the step carries the spec into both audit logs
        scenario = run.matrix.scenarios[-1] if run.matrix.scenarios else None
        file = step.filename or (scenario.file if scenario else "")
        run.deploy.session.spec = {"file": str(file), "scenario": scenario.name if scenario else "",
                                   "step": f"{step.keyword} {step.name}", "line": step.line,
                                   **({"commit": run.commits[file]} if run.commits.get(file) else {})}


def after_step(context: Any, step: Any) -> None:
    matrix = context.run.matrix
    if getattr(context, "aborted", False) and step.status.has_failed():
        matrix.interrupt(f'at "{step.keyword} {step.name}"')
        step.store_exception_context(Interrupted(INTERRUPTED))  # JUnit: not an empty KeyboardInterrupt
        matrix.end_step(step.status.name, INTERRUPTED)
        return
    matrix.end_step(step.status.name, step.error_message or "")


def after_scenario(context: Any, scenario: Any) -> None:
    run: Run = context.run
    matrix = run.matrix
    for step in list(scenario.all_steps)[len(matrix.scenarios[-1].steps):]:  # never started: skipped
        matrix.start_step(step.keyword, step.name, step.line, timed=False)
        matrix.end_step(step.status.name, name_undefined(step))
    targeted: list[str] = []
    if run.deploy is not None and run.deploy.scenario.target.pinned is not None:
        targeted = [h.name for h in run.deploy.scenario.target.pinned]
    matrix.end_scenario(scenario.status.name, getattr(scenario, "skip_reason", "") or "", targeted)
    if scenario.status.has_failed() and FAIL_FAST_TAG in scenario.feature.tags:
        run.failed_fast.add(scenario.feature.filename)


def name_undefined(step: Any) -> str:
    """behave runs no hook for an undefined step and leaves its error empty: name it, for the
    matrix (returned) and for behave's JUnit reporter (the step's exception and message)."""
    if step.status.name != "undefined":
        return ""
    step.store_exception_context(UndefinedStep(f'undefined step "{step.keyword} {step.name}": no step '
                                               f'definition matches it'))
    step.error_message = UNDEFINED
    return UNDEFINED


def after_all(context: Any) -> None:
    """The report and the recap first, whatever happened (an interrupted run too), then the
    session and the lab; then fail the run if the gate failed and behave would not."""
    run: Run | None = getattr(context, "run", None)
    if run is None:
        return
    aborted = bool(getattr(context, "aborted", False))
    if aborted and run.started:  # behave aborts after before_all only on Ctrl-C (or SystemExit) in a hook
        run.matrix.interrupt("before the first scenario" if not run.matrix.scenarios else "between steps")
    if run.matrix.identity.started is not None:
        run.matrix.identity.duration = time.time() - run.matrix.identity.started
    guard = getattr(run.deploy, "guard", None)
    if guard is not None:  # leases given back, journal closed
        guard.finish(run.matrix.passed, aborted)
    paths, report_error = write_reports_safely(run)
    print_recap(run, paths, report_error)
    if aborted:  # the recap said where it stopped: behave's closing "ABORTED: By user." is noise
        sys.stdout = DropOneLine(sys.stdout, ABORT_END)
    close_session(run, aborted)
    if run.lab is not None and run.settings.lab == "down":
        run.lab.down(progress=_say)
    # behave fails the run on a failed step, hook error, undefined step or interruption; the gate
    # also fails it when nothing ran, or a host ended badly in a step that passed.
    behave_fails = aborted or run.setup_reported or any(s.status not in GOOD_SCENARIO for s in run.matrix.scenarios)
    if run.matrix.paused:
        exit_paused()
    if behave_fails:
        return
    if not run.matrix.passed:
        raise GateFailed(run.matrix.gate_line())
    if report_error:
        raise ReportFailed(f"Report {report_error}")


#: the recap goes to the terminal even under --junit (behave captures a hook's output, and shows
#: it only when the hook fails)
after_all.capture = False  # type: ignore[attr-defined]


def exit_paused() -> None:
    """An inconclusive analysis paused the rollout: behave's own exit code would be 1, as for a
    failure; CI must tell "paused, resume me" apart, so the process exits PAUSED_EXIT once behave
    has written its reports (hooks cannot set behave's exit code; an atexit handler runs last)."""
    import atexit
    import sys

    def leave() -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(PAUSED_EXIT)
    atexit.register(leave)


def close_session(run: Run, aborted: bool) -> None:
    """Closing waits for the requests still running on hosts; an interrupted run waits briefly,
    then leaves the connections to drop at exit (a second Ctrl-C would lose nothing now)."""
    if run.deploy is None:
        return
    if not aborted:
        run.deploy.session.close()
        return
    closer = threading.Thread(target=run.deploy.session.close, name="close-session", daemon=True)
    closer.start()
    closer.join(CLOSE_WAIT_INTERRUPTED)
    if closer.is_alive():
        _say("Not waiting for requests still running on hosts: their connections drop as behave exits")


def write_reports_safely(run: Run) -> tuple[list[Path], str]:
    """The report paths, and "" or why none was written (one line): never to the default path
    when the -D options were refused, and never an error that would hide the recap."""
    if not run.configured:
        return [], "not written: the -D options were refused"
    try:
        return write_reports(run), ""
    except OSError as e:
        return [], f"not written: -D report={run.settings.report_template}: {e}"


def write_reports(run: Run) -> list[Path]:
    template = run.settings.report_template
    files = list(dict.fromkeys(run.feature_files)) or [""]
    if "{feature}" not in template:
        path = Path(template)
        run.matrix.write_json(path)
        stem = Path(files[0]).stem if len(files) == 1 and files[0] else "run"
        paths = [path, write_html(run.matrix, run.settings.html_path(path, stem))]
    else:
        paths = []
        for file in files:
            stem = Path(file).stem or "run"
            path = Path(template.format(feature=stem))
            matrix = run.matrix.only(file) if file else run.matrix
            matrix.write_json(path)
            paths += [path, write_html(matrix, run.settings.html_path(path, stem))]
    if run.junit_dir is not None:  # one file per feature, beside behave's TESTS-<feature>.xml
        for file in files:
            matrix = run.matrix.only(file) if file else run.matrix
            name = run.matrix.features[file].name if file in run.matrix.features else "deploy"
            paths.append(write_junit(matrix, run.junit_dir / f"HOSTS-{Path(file).stem or 'run'}.xml", name))
    return paths


def print_recap(run: Run, paths: list[Path], report_error: str = "") -> None:
    matrix = run.matrix
    title = "Plan recap" if matrix.plan else "Deploy recap"
    n_sc, n_hosts = len(matrix.scenarios), len(matrix.hosts)
    env = f" (env {matrix.env})" if matrix.env else ""
    _say(f"\n{title}{env}: {n_sc} scenario{'s' if n_sc != 1 else ''}, "
         f"{n_hosts} host{'s' if n_hosts != 1 else ''}")
    for line in matrix.recap_lines():
        _say(f"  {line}")
    _say(matrix.gate_line())
    _say(f"Report: {report_error}" if report_error else "Report: " + ", ".join(str(p) for p in paths))
