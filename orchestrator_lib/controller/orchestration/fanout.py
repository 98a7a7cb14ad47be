"""Run one task on many hosts: bounded threads, batches in lock-step, tries, a per-host
deadline and a failure policy. Every host of the run ends with exactly one HostResult."""
from __future__ import annotations

import heapq
import threading
import time
from collections import deque
from dataclasses import replace
from queue import Empty, SimpleQueue
from typing import Callable, Iterable, Protocol

from orchestrator_lib.controller.errors import OrchestratorError, TransportError
from orchestrator_lib.protocol import one_line

from .batches import plan_batches
from .policy import RunOptions
from .results import FAILURES, HostResult, RunResult, Status

NOT_ATTEMPTED_MESSAGE = "stopped after a failed batch"  # the status says "not attempted"


class Named(Protocol):
    name: str


Task = Callable[[Named], HostResult]


class _Workers:
    """Daemon worker threads shared by every fan-out of the process, started when all are busy
    and ending after IDLE_SECONDS without work: starting 64 threads for each call cost more
    than a warm call to 100 hosts itself. Each fan-out bounds how many of its jobs run at once.

    Not ThreadPoolExecutor on purpose: its threads are joined at interpreter exit and its size
    is fixed. A task that hangs past its deadline would then hold the CLI open after the run has
    reported, and each hung task would take a worker from the jobs after it; here it only keeps
    its own thread busy, and the next job gets another."""

    IDLE_SECONDS = 60.0

    def __init__(self) -> None:
        self._jobs: SimpleQueue = SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0        # threads waiting for a job that no submitted job has claimed yet
        self._started = 0

    def submit(self, job: Callable[[], Callable[[], None]]) -> None:
        """`job()` does the work and returns how to tell its fan-out it is done: the worker counts
        itself idle before it tells, so a fan-out that starts next finds it idle."""
        with self._lock:
            if self._idle:
                self._idle -= 1
                start = False
            else:
                self._started += 1
                start = True
        if start:
            threading.Thread(target=self._work, name=f"orchestrator-worker-{self._started}", daemon=True).start()
        self._jobs.put(job)

    def _work(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=self.IDLE_SECONDS)
            except Empty:
                with self._lock:
                    if self._idle:  # unclaimed: no job is on its way for this thread
                        self._idle -= 1
                        return
                continue
            tell = job()
            with self._lock:
                self._idle += 1
            tell()


_WORKERS = _Workers()


def _from_exception(name: str, exc: BaseException) -> HostResult:
    if isinstance(exc, TransportError):
        return HostResult(name, Status.UNREACHABLE, one_line(exc))
    msg = one_line(exc)
    kind = type(exc).__name__
    return HostResult(name, Status.FAILED, f"{kind}: {msg}" if msg else kind)


def run_on_hosts(hosts: Iterable[Named], task: Task, *, label: str, options: RunOptions = RunOptions(timeout=None),
                 workers: int = 64, on_result: Callable[[HostResult], None] | None = None) -> RunResult:
    """Run ``task(host)`` on every host and return one result per host, in targeted order.

    Batches run in lock-step so a canary batch is judged before the next batch touches
    anything; the policy is consulted after each batch. A FAILED/UNREACHABLE host is retried
    until it succeeds or has used its tries, ``retry_sleep`` s apart. ``options.deadline`` bounds
    a host's whole task, tries included, counted from when a worker picks it up; a host over it is
    reported FAILED and its thread abandoned (it makes no further tries). ``on_result`` is
    called in the calling thread as each attempted host finishes. The fan-out owns ``host``,
    ``tries``, ``duration`` (wall time of all tries), ``started`` (epoch) and ``batch`` of every
    HostResult (the report's time line is drawn from them).
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise OrchestratorError(f"workers '{workers}': expected a whole number of at least 1")
    tries, retry_sleep, policy, timeout = options.tries, options.retry_sleep, options.policy, options.deadline
    hosts = list(hosts)
    names = [h.name for h in hosts]
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise OrchestratorError(f"run {label}: host targeted more than once: {', '.join(dupes)}")
    batches = plan_batches(list(range(len(hosts))), options.batch_size)
    started = time.monotonic()
    results: list[HostResult | None] = [None] * len(hosts)
    if not batches:
        return RunResult(label, {}, time.monotonic() - started)

    # Workers only append events here; the calling thread owns every other piece of state.
    events: SimpleQueue = SimpleQueue()
    used_tries = [0] * len(hosts)  # read by the caller for a host that timed out
    starts: dict[int, float] = {}
    batch_of = {i: number for number, batch in enumerate(batches) for i in batch}
    wall_starts: dict[int, float] = {}

    def job(i: int) -> Callable[[], None]:
        host, name = hosts[i], names[i]
        t0 = time.monotonic()
        wall_starts[i] = time.time()
        deadline = None if timeout is None else t0 + timeout
        if timeout is not None:
            events.put(("start", i, t0))
        try:
            n = 0
            while True:
                n += 1
                used_tries[i] = n
                try:
                    r = task(host)
                    if not isinstance(r, HostResult):
                        raise TypeError(f"task returned {type(r).__name__}, expected HostResult")
                except Exception as exc:  # any task error is this host's result, not the run's
                    r = _from_exception(name, exc)
                if r.status not in FAILURES or n >= tries:
                    break
                if deadline is not None and time.monotonic() + retry_sleep >= deadline:
                    break  # a try would start after the deadline: the host is reported anyway
                if retry_sleep:
                    time.sleep(retry_sleep)
        except BaseException as exc:  # SystemExit etc.: still report, or the caller waits forever
            r = _from_exception(name, exc)
        # A copy, so a task may return one shared HostResult object for every host.
        done = ("done", i, replace(r, host=name, tries=n, duration=time.monotonic() - t0,
                                   started=wall_starts[i], batch=batch_of[i]))
        return lambda: events.put(done)

    def finish(i: int, r: HostResult) -> None:
        results[i] = r
        if on_result is not None:
            on_result(r)

    failed_so_far = 0
    for number, batch in enumerate(batches):
        pending, todo = set(batch), deque(batch)
        running = 0
        deadlines: list[tuple[float, int]] = []  # (deadline, host index), a heap

        def fill() -> None:  # at most `workers` of this fan-out's jobs at once
            nonlocal running
            while todo and running < workers:
                running += 1
                _WORKERS.submit(lambda i=todo.popleft(): job(i))

        fill()
        while pending:
            wait = None
            if timeout is not None:
                while deadlines and deadlines[0][1] not in pending:
                    heapq.heappop(deadlines)
                if deadlines:
                    wait = max(0.0, deadlines[0][0] - time.monotonic())
            try:
                kind, i, payload = events.get(timeout=wait)
            except Empty:  # read every reply already queued before declaring a timeout
                now = time.monotonic()
                while deadlines and deadlines[0][0] <= now:
                    _, i = heapq.heappop(deadlines)
                    if i in pending:
                        pending.discard(i)
                        running -= 1  # its thread is abandoned to the task; the next job gets another
                        finish(i, HostResult(names[i], Status.FAILED,
                                             f"timed out after {timeout:g} s",
                                             tries=used_tries[i], duration=now - starts[i],
                                             started=wall_starts.get(i), batch=batch_of[i]))
                fill()
                continue
            if i not in pending:
                continue  # a late reply from a host already reported as timed out
            if kind == "start":
                starts[i] = payload
                heapq.heappush(deadlines, (payload + timeout, i))
            else:
                pending.discard(i)
                running -= 1
                finish(i, payload)
                fill()
        failed_so_far += sum(results[i].status in FAILURES for i in batch)
        if number < len(batches) - 1 and policy.should_stop(failed_so_far, len(hosts)):
            break

    out = {}
    for i, name in enumerate(names):
        out[name] = results[i] or HostResult(name, Status.NOT_ATTEMPTED, NOT_ATTEMPTED_MESSAGE)
    return RunResult(label, out, time.monotonic() - started)
