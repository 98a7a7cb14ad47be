"""Signs of life during a long request: a step that runs for more than a second shows its hosts'
progress (done/total, failures so far, the slowest host) live on a terminal, and a line every
10 s where the output is a log (CI). Nothing when quiet, nothing for a step that ends within the
second. Counts are of the hosts the request targets; times are measured."""
from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, TextIO

from ..orchestration import HostResult
from ...protocol import FAILURES

#: a step shows progress only once it has run this long (s)
DELAY = 1.0
#: a log (not a terminal) gets a progress line this often (s)
LOG_EVERY = 10.0
#: at most this many waiting hosts are named
NAMES = 3

LIVE, LOG, OFF = "live", "log", "off"


@dataclass
class Tally:
    """What one request has done so far (the caller's thread and the ticker read it under the lock)."""
    label: str
    hosts: list[str]
    started: float = field(default_factory=time.monotonic)
    done: dict[str, HostResult] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, result: HostResult) -> None:
        with self.lock:
            self.done[result.host] = result

    def line(self, now: float | None = None) -> str:
        with self.lock:
            done = dict(self.done)
        elapsed = (now or time.monotonic()) - self.started
        failed = sum(r.status in FAILURES for r in done.values())
        waiting = [h for h in self.hosts if h not in done]
        line = f"{self.label}: {len(done)}/{len(self.hosts)} done, {failed} failed, {elapsed:.0f} s"
        if waiting:
            more = f" +{len(waiting) - NAMES}" if len(waiting) > NAMES else ""
            line += f"; waiting on {', '.join(waiting[:NAMES])}{more}"
        if done:
            slowest = max(done.values(), key=lambda r: r.duration)
            line += f"; slowest {slowest.host} {slowest.duration:.1f} s"
        return line


class Progress:
    """One per run. `track(label, hosts)` is a context manager giving the `on_result` callback
    for the fan-out; a ticker thread draws (live) or prints (log) until the request ends."""

    def __init__(self, mode: str = LIVE, out: TextIO | None = None, *, delay: float = DELAY,
                 every: float = LOG_EVERY, indent: str = "      ") -> None:
        self.mode, self.out, self.delay, self.every, self.indent = mode, out, delay, every, indent

    @classmethod
    def for_output(cls, quiet: bool, stream: TextIO | None = None) -> "Progress":
        """Live on a terminal, a line every 10 s on anything else, off when quiet. The stream is
        the process's own stdout, not one behave captures (CI logs see the lines under --junit)."""
        stream = stream or sys.__stdout__
        if quiet or stream is None:
            return cls(OFF)
        return cls(LIVE if stream.isatty() else LOG, stream)

    @contextmanager
    def track(self, label: str, hosts: list[str]) -> Iterator[Callable[[HostResult], None]]:
        tally = Tally(label, list(hosts))
        if self.mode == OFF or not hosts:
            yield tally.add
            return
        stop = threading.Event()
        ticker = threading.Thread(target=self._tick, args=(tally, stop), name="progress", daemon=True)
        ticker.start()
        try:
            yield tally.add
        finally:
            stop.set()
            ticker.join(2.0)

    def _tick(self, tally: Tally, stop: threading.Event) -> None:
        if stop.wait(self.delay):
            return
        if self.mode == LOG:
            self._say(tally.line())
            while not stop.wait(self.every):
                self._say(tally.line())
            return
        # rich only here, when a terminal shows a step past its first second (its import is ~20 ms
        # of every behave process's start otherwise)
        from rich.console import Console
        from rich.live import Live
        from rich.text import Text
        console = Console(file=self.out, highlight=False, soft_wrap=True)
        with Live(Text(self.indent + tally.line()), console=console, transient=True, refresh_per_second=4) as live:
            while not stop.wait(0.25):
                live.update(Text(self.indent + tally.line()))

    def _say(self, line: str) -> None:
        assert self.out is not None
        self.out.write(f"{self.indent}{line}\n")
        self.out.flush()
