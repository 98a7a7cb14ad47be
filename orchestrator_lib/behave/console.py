"""What behave prints around a deploy, made true and quiet. pyproject.toml's [tool.behave] names
these (`runner`, and `pretty` in [tool.behave.formatters]); a team's repository does the same.

- behave 1.3 prints "USING RUNNER: behave.runner:Runner" before every run: noise for an
  operator, so the runner drops exactly that line.
- behave's pretty formatter prints the feature's title a second time when the feature has a
  Background (it replays the feature as if it were the background's header): not any more.
- On Ctrl-C behave showed a "CAPTURED STDERR: ABORTED: KeyboardInterrupt" block under the step
  and "ABORTED: By user." at the end; the step now says "interrupted by the operator (Ctrl-C)"
  once, and the recap says where the run stopped and what it left behind.
- In CI (`CI` set) the JUnit files are on by default, as with --junit (--no-junit turns them off):
  behave's own per-scenario file and the hooks' per-host one.
"""
from __future__ import annotations

import os
import sys
from typing import Any, TextIO

from behave.formatter.pretty import PrettyFormatter as BehavePretty
from behave.runner import Runner

USING_RUNNER = "USING RUNNER: "
#: what behave writes on Ctrl-C: "ABORTED: KeyboardInterrupt" on stderr during the step (shown
#: under it as CAPTURED STDERR), this as the step's error, and ABORT_END at the very end
ABORT_ERROR = "ABORTED: By user (KeyboardInterrupt)."
ABORT_END = "\nABORTED: By user."
INTERRUPTED = "interrupted by the operator (Ctrl-C)"


class DropOneLine:
    """sys.stdout while behave is about to print one line of noise (`prefix`): drops that line,
    passes anything else, and puts stdout back once it has gone."""

    def __init__(self, stream: TextIO, prefix: str = USING_RUNNER) -> None:
        self.stream, self.prefix = stream, prefix
        self.dropping = False

    def write(self, text: str) -> int:
        if text.startswith(self.prefix):
            self.dropping = True
            return len(text)
        if self.dropping and text == "\n":
            self.dropping = False
            sys.stdout = self.stream
            return len(text)
        return self.stream.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def junit_wanted(config: Any, argv: list[str]) -> bool:
    """--junit, or CI set and no --no-junit on the command line."""
    if getattr(config, "junit", False):
        return True
    return bool(os.environ.get("CI")) and "--no-junit" not in argv


class DeployRunner(Runner):
    def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        if not getattr(config, "junit", False) and junit_wanted(config, sys.argv[1:]):
            from behave.reporter.junit import JUnitReporter
            # JUnit only: capturing stdout as behave's --junit does would hide the tallies and the
            # progress lines from the CI log (they are the log's per-host record)
            config.junit = True
            config.reporters.append(JUnitReporter(config))
        if not isinstance(sys.stdout, DropOneLine):
            sys.stdout = DropOneLine(sys.stdout)

    def abort(self, reason: Any = None) -> None:
        """Ctrl-C: the run stops as behave's does, without its "ABORTED: KeyboardInterrupt" line on
        stderr (the step and the recap say it)."""
        if reason == "KeyboardInterrupt" and self.context is not None:
            self.aborted = True
            return
        super().abort(reason)

    def run(self) -> Any:
        if isinstance(sys.stdout, DropOneLine):  # behave printed nothing there after all
            sys.stdout = sys.stdout.stream
        return super().run()


class PrettyFormatter(BehavePretty):
    """behave's pretty output, with the feature's title printed once."""

    def feature(self, feature: Any) -> None:
        super().feature(feature)
        self.statement = None  # behave's background() would replay it as a second "Feature: ..." line

    def result(self, step: Any) -> None:
        if step.error_message == ABORT_ERROR:
            step.error_message = INTERRUPTED
        super().result(step)
