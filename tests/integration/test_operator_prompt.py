"""The operator's prompt after an inconclusive analysis, as a person meets it (issue 16): behave in a
real terminal (a tmux pane of a tmux server of this test's own), against the lab, CI unset. The
test reads the pane until the question shows, types the answer, and checks the exit code and what
the hosts were left in: abort stops after the batch, continue finishes the rollout."""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator_lib.controller.reporting import ResultMatrix

from tests.integration.test_features import NEW, OLD, ROOT, version
from tests.integration.test_rollout import SILENCE

PROMPT = """\
@batch(2)
Feature: prompt
  Scenario: update, checking each batch's health
    Given I want to update hosts named web1, web2, web3, web4
    When I update the package mywebapp to {new}
    Then after each batch the health check on port 8080 should pass within 1 second
"""
QUESTION = "Continue the rollout? [c]ontinue / [a]bort:"


class Terminal:
    """One tmux server (its own socket), one pane per run."""

    def __init__(self, tmp_path: Path) -> None:
        self.socket = tmp_path / "tmux.sock"

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-S", str(self.socket), *args], check=True, capture_output=True,
                              text=True, timeout=10).stdout

    def start(self, name: str, command: str) -> None:
        self.tmux("new-session", "-d", "-s", name, "-x", "160", "-y", "50", "bash", "-c", command)

    def screen(self, name: str) -> str:
        return self.tmux("capture-pane", "-p", "-J", "-t", name, "-S", "-200")

    def wait_for(self, name: str, text: str, seconds: float = 90) -> str:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            shown = self.screen(name)
            if text in shown:
                return shown
            time.sleep(0.2)
        raise AssertionError(f"{text!r} never showed; the pane:\n{self.screen(name)}")

    def close(self) -> None:
        if self.socket.exists():
            subprocess.run(["tmux", "-S", str(self.socket), "kill-server"], capture_output=True, timeout=10)


@pytest.fixture
def terminal(tmp_path):
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (scripts/setup installs it)")
    t = Terminal(tmp_path)
    yield t
    t.close()


def run_and_answer(terminal: Terminal, tmp_path: Path, name: str, answer: str) -> tuple[int, str, ResultMatrix]:
    feature = tmp_path / "prompt.feature"
    feature.write_text(PROMPT.format(new=NEW))
    report, rc_file = tmp_path / f"{name}.json", tmp_path / f"{name}.rc"
    behave = [sys.executable, "-m", "behave", "features/", str(feature), "--include", "prompt",
              "-D", "lint=off", "-D", f"report={report}"]
    # as a person runs it: no CI in the environment (the pytest run under CI sets it), a terminal
    command = (f"cd {shlex.quote(str(ROOT))} && env -u CI PYTHONPATH={shlex.quote(os.environ.get('PYTHONPATH', ''))} "
               f"{shlex.join(behave)}; echo $? > {shlex.quote(str(rc_file))}; sleep 600")  # the pane stays to be read
    terminal.start(name, command)
    shown = terminal.wait_for(name, QUESTION)
    assert "analysis inconclusive after batch 1 of 2" in shown, shown
    terminal.tmux("send-keys", "-t", name, answer, "Enter")
    deadline = time.monotonic() + 90
    while not rc_file.exists() or not rc_file.read_text().strip():
        assert time.monotonic() < deadline, terminal.screen(name)
        time.sleep(0.2)
    return int(rc_file.read_text()), terminal.screen(name), ResultMatrix.read_json(report)


def test_the_operator_aborts_then_continues_an_inconclusive_rollout_at_a_terminal(fresh_lab, terminal, tmp_path):
    fresh_lab.exec_in("web2", ["iptables", "-I", *SILENCE])      # web2's own health URL gives no answer
    rc, screen, matrix = run_and_answer(terminal, tmp_path, "abort", "a")
    assert rc == 1, screen                                        # a failure: not 0, not the pause code 75
    assert "aborted by the operator after an inconclusive analysis" in screen, screen
    assert not matrix.paused and "Traceback" not in screen
    assert [version(fresh_lab, h) for h in ("web1", "web2", "web3", "web4")] == [NEW, NEW, OLD, OLD]

    rc, screen, matrix = run_and_answer(terminal, tmp_path, "continue", "c")
    assert "the operator chose to continue" in screen, screen
    assert rc == 0, screen
    assert [version(fresh_lab, h) for h in ("web1", "web2", "web3", "web4")] == [NEW] * 4
    assert not matrix.paused and matrix.passed
