"""The host as the agent's actions see it: `System`, the one door through which actions reach the
host (commands, files, clock). Tests swap it for a fake (`use_system`), so every backend is
exercised without touching the machine the tests run on. Stdlib only; imports nothing else here."""
from __future__ import annotations

import os
import time
from collections import namedtuple

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~2 ms per run)
if TYPE_CHECKING:
    from typing import Sequence

    Command = Sequence[str] | str


class CmdResult(namedtuple("CmdResult", "rc stdout stderr")):
    """What a command did: exit status and its output (rc 127: not found; 124: timed out)."""
    __slots__ = ()

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def line(self) -> str:
        """The first useful line of output, for a one-line failure message."""
        for text in (self.stderr, self.stdout):
            for ln in text.splitlines():
                if ln.strip():
                    return ln.strip()
        return f"exit status {self.rc}"


class System:
    """The real host. Every effect an action has goes through one of these methods."""

    def run(self, cmd: Command, input: str | None = None, timeout: float = 60.0,
            env: dict[str, str] | None = None) -> CmdResult:
        import subprocess
        argv = ["/bin/sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        full_env = {**os.environ, **env} if env else None
        try:
            p = subprocess.run(argv, input=input, capture_output=True, timeout=timeout,
                               env=full_env, encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return CmdResult(127, "", f"{argv[0]}: command not found")
        except subprocess.TimeoutExpired as e:
            from shlex import join
            out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
            return CmdResult(124, out, f"timed out after {timeout:g} s: {join(argv)}")
        return CmdResult(p.returncode, p.stdout, p.stderr)

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def read_text(self, path: str) -> str | None:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return None

    def listdir(self, path: str) -> list[str] | None:
        """The names in a directory; None when it cannot be read (absent, not a directory)."""
        try:
            return os.listdir(path)
        except OSError:
            return None

    def symlink(self, target: str, path: str) -> None:
        os.symlink(target, path)

    def which(self, name: str) -> str | None:
        from shutil import which
        return which(name)

    def process_running(self, comm: str) -> bool:
        """True if a process with this command name runs (as seen in our PID namespace)."""
        try:
            pids = [p for p in os.listdir("/proc") if p.isdigit()]
        except OSError:
            return False
        for pid in pids:
            try:
                with open(f"/proc/{pid}/comm") as f:
                    if f.read().strip() == comm:
                        return True
            except OSError:
                continue
        return False

    def loadavg(self) -> tuple[float, float, float]:
        return os.getloadavg()

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


SYSTEM: System = System()


class use_system:
    """`with use_system(fake):` runs actions against `fake` for the duration of the block.
    (A class, not @contextlib.contextmanager: contextlib alone would add ~0.7 ms to every run.)"""

    def __init__(self, system: System) -> None:
        self.system = system

    def __enter__(self) -> System:
        global SYSTEM
        self.saved, SYSTEM = SYSTEM, self.system
        return self.system

    def __exit__(self, *exc: object) -> None:
        global SYSTEM
        SYSTEM = self.saved


def run(cmd: Command, input: str | None = None, timeout: float = 60.0,
        env: dict[str, str] | None = None) -> CmdResult:
    """Run a command on the host: an argv list, or a string for /bin/sh -c. Never raises."""
    return SYSTEM.run(cmd, input=input, timeout=timeout, env=env)


def system() -> System:
    return SYSTEM
