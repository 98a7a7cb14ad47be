"""A scripted stand-in for the host (`core.System`) shared by the agent tests, plus tests of it.

Nothing in the agent tests may touch the machine the tests run on: FakeSystem answers commands
from rules and raises on any command nobody scripted, so a forgotten rule fails loudly instead of
running apt-get or iptables here.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest

from orchestrator_lib.host import audit, core, policy

Answer = tuple[int, str, str] | core.CmdResult | Callable[[str], Any]
WRITE_COMMANDS = re.compile(r"^(apt-get (install|remove|purge|update)|dpkg (-i|--install|--remove|-r|-P)|"
                            r"dnf -y|sv .*(start|stop|restart|up|down|hup|term|kill)|systemctl (start|stop|restart|reload)|"
                            r"service \S+ (start|stop|restart|reload)|i?p?6?tables .* -[IDA] |nft (add|insert|delete))")


@dataclass
class Rule:
    pattern: re.Pattern
    answer: Answer
    times: int | None = None   # None: forever


@dataclass
class FakeSystem(core.System):
    files: dict[str, str] = field(default_factory=dict)
    tools: set[str] = field(default_factory=set)
    processes: set[str] = field(default_factory=set)
    load: Any = (0.1, 0.1, 0.1)
    clock: float = 1000.0
    wall: float = 1_700_000_000.0
    rules: list[Rule] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    envs: list[dict | None] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)
    on_sleep: Callable[[float], None] | None = None

    def on(self, pattern: str, answer: Answer = (0, "", ""), times: int | None = None) -> "FakeSystem":
        """Answer commands matching `pattern` (re.search on the shell-quoted command line).
        Later rules win, so a test can override an earlier default."""
        self.rules.append(Rule(re.compile(pattern), answer, times))
        return self

    def run(self, cmd, input=None, timeout=60.0, env=None) -> core.CmdResult:
        line = cmd if isinstance(cmd, str) else shlex.join(cmd)
        self.calls.append(line)
        self.envs.append(env)
        for rule in reversed(self.rules):
            if rule.times == 0 or not rule.pattern.search(line):
                continue
            if rule.times is not None:
                rule.times -= 1
            answer = rule.answer(line) if callable(rule.answer) else rule.answer
            return answer if isinstance(answer, core.CmdResult) else core.CmdResult(*answer)
        raise AssertionError(f"unexpected command on the fake host: {line}")

    def writes(self) -> list[str]:
        return [c for c in self.calls if WRITE_COMMANDS.search(c)]

    def exists(self, path: str) -> bool:
        return path in self.files or any(f.startswith(path.rstrip("/") + "/") for f in self.files)

    def read_text(self, path: str) -> str | None:
        return self.files.get(path)

    def listdir(self, path: str) -> list[str] | None:
        prefix = path.rstrip("/") + "/"
        names = {f[len(prefix):].split("/")[0] for f in self.files if f.startswith(prefix)}
        return sorted(n for n in names if n and n != ".keep") if names or path in self.files else None

    def symlink(self, target: str, path: str) -> None:
        self.calls.append(f"ln -s {target} {path}")
        self.files[path] = f"-> {target}"

    def which(self, name: str) -> str | None:
        return f"/usr/bin/{name}" if name in self.tools else None

    def process_running(self, comm: str) -> bool:
        return comm in self.processes

    def loadavg(self) -> tuple[float, float, float]:
        return self.load() if callable(self.load) else self.load

    def time(self) -> float:
        return self.wall + self.clock

    def monotonic(self) -> float:
        return self.clock

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.clock += max(seconds, 0)
        if self.on_sleep:
            self.on_sleep(seconds)


DEBIAN_OS_RELEASE = """PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
"""

ROCKY_OS_RELEASE = """NAME="Rocky Linux"
VERSION="9.3 (Blue Onyx)"
ID="rocky"
ID_LIKE="rhel centos fedora"
VERSION_ID="9.3"
PRETTY_NAME="Rocky Linux 9.3 (Blue Onyx)"
"""


def debian(**kw: Any) -> FakeSystem:
    files = {"/etc/os-release": DEBIAN_OS_RELEASE, **kw.pop("files", {})}
    return FakeSystem(files=files, **kw)


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """Audit log and policy file in tmp_path, never /var/log or /etc of this machine."""
    monkeypatch.setattr(audit, "AUDIT_PATH", str(tmp_path / "audit.jsonl"))
    monkeypatch.setattr(policy, "POLICY_PATH", str(tmp_path / "policy.json"))
    monkeypatch.delenv(audit.AUDIT_ENV, raising=False)
    monkeypatch.delenv("SSH_USER_AUTH", raising=False)
    return tmp_path


def call(fake: FakeSystem, agent: str, action: str, dry_run: bool = False, **args: Any) -> core.Reply:
    """Dispatch one action against the fake host (policy and audit are tested separately)."""
    with core.use_system(fake):
        return core.dispatch(core.Request(agent=agent, action=action, args=args, reqid="r1", caller="t@c",
                                          dry_run=dry_run))


# --------------------------------------------------------------------------- tests of the fake

def test_unscripted_command_fails_loudly():
    fake = FakeSystem()
    with pytest.raises(AssertionError, match="unexpected command"):
        fake.run(["apt-get", "install", "-y", "x"])


def test_later_rules_win_and_times_expire():
    fake = FakeSystem().on("^echo", (0, "first", "")).on("^echo", (0, "second", ""), times=1)
    assert fake.run(["echo"]).stdout == "second"
    assert fake.run(["echo"]).stdout == "first"
    assert fake.writes() == []


def test_write_detection():
    fake = FakeSystem().on(".")
    fake.run(["apt-get", "install", "-y", "x=1"])
    fake.run(["dpkg-query", "-W", "x"])
    assert fake.writes() == ["apt-get install -y x=1"]
