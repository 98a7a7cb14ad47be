"""Who ran which spec when: the run's identity, so a report (and the audit log) can be tied to
the exact text of the feature that was run. The spec's revision is the git commit of the
repository the feature file lives in, marked "+ local changes" when the file differs from it."""
from __future__ import annotations

import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: seconds a `git` call may take before the revision is reported as unknown
GIT_TIMEOUT = 5.0


@dataclass(frozen=True)
class SpecRevision:
    """The git commit of the repository holding a spec file, "" when it is in none."""
    commit: str = ""
    dirty: bool = False      # the file has changes the commit does not have

    def __str__(self) -> str:
        if not self.commit:
            return "not in a git repository"
        return self.commit[:12] + (" + local changes" if self.dirty else "")


def _git(cwd: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True, timeout=GIT_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def spec_revision(spec: str | Path) -> SpecRevision:
    """The commit HEAD points at in the repository of `spec`, and whether `spec` has local changes."""
    path = Path(spec).resolve()
    where = path if path.is_dir() else path.parent
    if not where.is_dir():
        return SpecRevision()
    commit = _git(where, "rev-parse", "HEAD")
    if not commit:
        return SpecRevision()
    changes = _git(where, "status", "--porcelain", "--", str(path))
    return SpecRevision(commit, bool(changes))


@dataclass
class RunIdentity:
    """The header of a report: caller, spec files with their revision, start and duration."""
    caller: str = ""
    specs: list[str] = field(default_factory=list)   # feature files, as behave named them
    commit: str = ""                                 # of the first spec's repository, "" if none
    dirty: bool = False
    started: float | None = None                     # epoch seconds
    duration: float | None = None                    # seconds, measured (None while running)

    def add_spec(self, spec: str) -> None:
        if spec in self.specs:
            return
        self.specs.append(spec)
        if len(self.specs) == 1:
            revision = spec_revision(spec)
            self.commit, self.dirty = revision.commit, revision.dirty

    @property
    def revision(self) -> str:
        return str(SpecRevision(self.commit, self.dirty))

    @property
    def started_text(self) -> str:
        if self.started is None:
            return "unknown"
        return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(self.started))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "RunIdentity":
        d = d or {}
        return cls(str(d.get("caller", "")), list(d.get("specs", [])), str(d.get("commit", "")),
                   bool(d.get("dirty", False)), d.get("started"), d.get("duration"))
