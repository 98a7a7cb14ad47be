"""`orch lint`: the deploy spec checked before it runs. A feature that blocks the load balancer
and never unblocks, or updates a package and never asserts the version, runs as happily as a
good one; these rules catch it, one line per finding with file:line:

- every block has a later unblock, every disable/drain a later enable of the same backend, in the
  same scenario (not only in a cleanup scenario: a failed step skips the rest of a scenario, and
  a host that failed must stay out);
- every package update is followed by a version assertion on the same targets (an app revision
  by a version assertion or a health check reporting the version);
- every When that acts on the targets has a Then after it on the same targets;
- a rollout without pre-discovery or a count contract is warned (a host missing from the estate
  would go unnoticed);
- undefined steps are errors.

Features are parsed with behave's own parser and steps matched with behave's own registry, so
lint and behave agree on what a step is. The rules read the step vocabulary of
orchestrator_lib.behave.steps (the patterns below); a step of a team's own is only checked for
being defined."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

ERROR, WARNING = "error", "warning"
CLEANUP = re.compile(r"\bclean[ -]?up\b", re.IGNORECASE)

# ---- the vocabulary, as far as the rules need it --------------------------------------------------
TARGET = re.compile(r"^I want to update (hosts (with|matching|named)|the hosts of group) ")
DISCOVERY = re.compile(r"^(I want to pre-discover how many hosts to update|I expect to update .*)$")
BLOCK = re.compile(r"^I block the load balancer$")
UNBLOCK = re.compile(r"^I unblock the load balancer$")
DISABLE = re.compile(r"^I (disable|drain) the hosts in the load balancer backend (?P<backend>\S+)$")
ENABLE = re.compile(r"^I enable the hosts in the load balancer backend (?P<backend>\S+)$")
UPDATE = re.compile(r"^I update the package (?P<name>\S+)")
DEPLOY = re.compile(r"^I deploy revision (?P<version>\S+) of (?P<name>\S+)")
VERSION_CHECK = re.compile(r"^the package version for (?P<name>\S+) should be \S+$")
HEALTH_VERSION = re.compile(r"^the health check on port \d+ should report version (?P<version>\S+) ")
#: Whens that do not act on the targets: a read-only report, a notification to people
NOT_ACTING = re.compile(r"^(I report the installed version of |I notify )")


@dataclass(frozen=True, order=True)
class Finding:
    file: str
    line: int
    level: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.level}: {self.message}"


@dataclass
class _Step:
    kind: str          # given, when, then
    text: str          # the step's name, without keyword
    line: int
    generation: int    # which target selection it acts on (a Given on targets starts a new one)

    @property
    def shown(self) -> str:
        return f'"{self.kind.capitalize()} {self.text}"'


def _steps(scenario: Any) -> list[_Step]:
    out, generation = [], 0
    for step in scenario.all_steps if hasattr(scenario, "all_steps") else scenario.steps:
        if step.step_type == "given" and TARGET.match(step.name):
            generation += 1
        out.append(_Step(step.step_type, step.name, step.line, generation))
    return out


def _later(steps: list[_Step], start: int, pattern: re.Pattern[str], kind: str,
           same: Any = None, key: str = "") -> _Step | None:
    for later in steps[start + 1:]:
        m = pattern.match(later.text)
        if later.kind == kind and m and (same is None or m.group(key) == same):
            return later
    return None


def _in_cleanup(scenarios: Sequence[Any], pattern: re.Pattern[str]) -> Any:
    """A scenario meant as a cleanup (tagged @cleanup or named so) that has the step."""
    for scenario in scenarios:
        if CLEANUP.search(scenario.name) or any(CLEANUP.search(t) for t in scenario.tags):
            if any(pattern.match(s.name) for s in scenario.steps):
                return scenario
    return None


def lint_scenario(file: str, scenario: Any, siblings: Sequence[Any]) -> list[Finding]:
    steps = _steps(scenario)
    found: list[Finding] = []

    def add(level: str, step: _Step, message: str) -> None:
        found.append(Finding(file, step.line, level, message))

    discovered = False
    warned_discovery = False
    for i, step in enumerate(steps):
        if step.kind == "given" and DISCOVERY.match(step.text):
            discovered = True
        if step.kind != "when":
            continue
        if BLOCK.match(step.text) and not _later(steps, i, UNBLOCK, "when"):
            cleanup = _in_cleanup(siblings, UNBLOCK)
            where = f' (only in the cleanup scenario "{cleanup.name}", line {cleanup.line})' if cleanup else ""
            add(ERROR, step, f"{step.shown} has no later \"When I unblock the load balancer\" in the scenario{where}")
        if m := DISABLE.match(step.text):
            if not _later(steps, i, ENABLE, "when", m.group("backend"), "backend"):
                cleanup = _in_cleanup(siblings, ENABLE)
                where = f' (only in the cleanup scenario "{cleanup.name}", line {cleanup.line})' if cleanup else ""
                add(ERROR, step, f"{step.shown} has no later \"When I enable the hosts in the load balancer backend "
                                 f"{m.group('backend')}\" in the scenario{where}")
        if m := UPDATE.match(step.text):
            check = _later(steps, i, VERSION_CHECK, "then", m.group("name"), "name")
            if check is None or check.generation != step.generation:
                add(ERROR, step, f"{step.shown} is not followed by \"Then the package version for {m.group('name')} "
                                 f"should be ...\" on the same hosts")
        if m := DEPLOY.match(step.text):
            check = (_later(steps, i, VERSION_CHECK, "then", m.group("name"), "name")
                     or _later(steps, i, HEALTH_VERSION, "then", m.group("version"), "version"))
            if check is None or check.generation != step.generation:
                add(ERROR, step, f"{step.shown} is not followed by a version assertion (\"Then the package version "
                                 f"for {m.group('name')} ...\" or a health check reporting version "
                                 f"{m.group('version')}) on the same hosts")
        if NOT_ACTING.match(step.text):
            continue
        if not any(later.kind == "then" and later.generation == step.generation for later in steps[i + 1:]):
            add(ERROR, step, f"{step.shown} acts on hosts but no Then after it checks the same hosts")
        if not discovered and not warned_discovery:
            warned_discovery = True
            add(WARNING, step, f"{step.shown} rolls out without pre-discovery or a count contract before it "
                               f"(\"Given I want to pre-discover how many hosts to update\" or "
                               f"\"Given I expect to update N hosts\")")
    return found


def lint_feature(feature: Any, registry: Any, file: str | None = None) -> list[Finding]:
    """Every finding of one parsed behave Feature (outline rows checked once, by their lines)."""
    file = file or str(feature.filename)
    found: set[Finding] = set()
    scenarios = list(feature.walk_scenarios())
    for scenario in scenarios:
        undefined = set()
        for step in scenario.all_steps:
            if registry.find_match(step) is None:
                undefined.add(step.line)
                found.add(Finding(file, step.line, ERROR, f'undefined step "{step.keyword} {step.name}": '
                                                         f"no step definition matches it"))
        # an undefined step's only finding is that it is undefined
        found.update(f for f in lint_scenario(file, scenario, scenarios) if f.line not in undefined)
    return sorted(found)


def lint_features(features: Iterable[Any], registry: Any) -> list[Finding]:
    return [f for feature in features for f in lint_feature(feature, registry)]


# ---- orch lint PATH...: files, behave's parser, the step directories ------------------------------------
def feature_files(paths: Sequence[str | Path]) -> list[Path]:
    out: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            out.extend(sorted(path.rglob("*.feature")))
        else:
            out.append(path)
    return out


def step_directories(files: Sequence[Path]) -> list[Path]:
    """behave's rule: the `steps/` directory beside the first feature path or in a parent of it."""
    dirs: list[Path] = []
    for file in files[:1]:
        for parent in file.resolve().parents:
            if (parent / "steps").is_dir():
                dirs.append(parent / "steps")
                break
    return dirs


def load_registry(step_dirs: Sequence[Path]) -> Any:
    """behave's step registry with the project's step library and the steps directories' own."""
    from behave import step_registry
    from behave.runner_util import exec_file

    import orchestrator_lib.behave.steps  # noqa: F401  (registers the library's steps)
    for directory in step_dirs:
        for path in sorted(directory.glob("*.py")):
            exec_file(str(path), {})
    return step_registry.registry


class LintInputError(Exception):
    """A path that does not exist or a feature behave cannot parse: one line."""


def lint_paths(paths: Sequence[str | Path]) -> list[Finding]:
    from behave.parser import ParserError, parse_file

    files = feature_files(paths)
    missing = [str(p) for p in map(Path, paths) if not p.exists()]
    if missing:
        raise LintInputError(f"no such file or directory: {', '.join(missing)}")
    registry = load_registry(step_directories(files))
    found: list[Finding] = []
    for file in files:
        try:
            feature = parse_file(str(file))
        except ParserError as e:
            found.append(Finding(str(file), int(getattr(e, "line", 0) or 0), ERROR,
                                 f"behave cannot parse it: {' '.join(str(e).split())}"))
            continue
        if feature is None:
            found.append(Finding(str(file), 1, ERROR, "no Feature in this file"))
            continue
        found.extend(lint_feature(feature, registry, str(file)))
    return found
