"""Orchestration layer: batches, failure policy, fan-out, results wording."""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass

import pytest

from orchestrator_lib.controller.errors import OrchestratorError, UnreachableError
from orchestrator_lib.controller.orchestration import (
    NOT_ATTEMPTED_MESSAGE, FailurePolicy, HostResult, RunOptions, RunResult, Status, parse_batch_size,
    plan_batches, run_on_hosts)
from orchestrator_lib.controller.orchestration import fanout


@dataclass(frozen=True)
class H:
    """Stand-in for inventory.Host: the orchestration layer only reads `.name`."""
    name: str


def hosts(n: int, prefix: str = "web") -> list[H]:
    return [H(f"{prefix}{i}") for i in range(1, n + 1)]


def ok_task(host: H) -> HostResult:
    return HostResult(host.name, Status.OK)


def sizes(batches: list[list]) -> list[int]:
    return [len(b) for b in batches]


# --- batches -----------------------------------------------------------------------------------

class TestPlanBatches:
    def test_none_is_one_batch_in_order(self):
        hs = hosts(5)
        assert plan_batches(hs, None) == [hs]

    def test_no_hosts_no_batches(self):
        assert plan_batches([], None) == []
        assert plan_batches([], [1, "50%"]) == []

    def test_int(self):
        hs = hosts(5)
        assert plan_batches(hs, 2) == [hs[0:2], hs[2:4], hs[4:5]]
        assert sizes(plan_batches(hs, 10)) == [5]

    @pytest.mark.parametrize("pct, total, expected", [
        ("50%", 4, [2, 2]),
        ("50%", 5, [3, 2]),        # ceil(2.5) = 3
        ("10%", 5, [1] * 5),       # ceil(0.5) = 1
        ("1%", 3, [1, 1, 1]),      # at least 1
        ("100%", 7, [7]),
        ("33%", 10, [4, 4, 2]),    # ceil(3.3) = 4
        ("12.5%", 8, [1] * 8),
    ])
    def test_percentage_of_total(self, pct, total, expected):
        assert sizes(plan_batches(hosts(total), pct)) == expected

    def test_list_canary_then_last_repeats(self):
        hs = hosts(10)
        batches = plan_batches(hs, [1, 2, "30%"])
        assert sizes(batches) == [1, 2, 3, 3, 1]
        assert [h for b in batches for h in b] == hs

    def test_list_percentages_are_of_total_not_remaining(self):
        assert sizes(plan_batches(hosts(10), ["10%", "50%"])) == [1, 5, 4]

    def test_list_longer_than_needed(self):
        assert sizes(plan_batches(hosts(3), [1, 5, 10])) == [1, 2]

    def test_numeric_strings_accepted(self):
        assert sizes(plan_batches(hosts(5), "2")) == [2, 2, 1]

    @pytest.mark.parametrize("bad", [0, -1, "abc", "0%", "150%", "-5%", "", [], [1, 0],
                                     [1, "x"], True, 1.5, "50 %%"])
    def test_invalid(self, bad):
        with pytest.raises(OrchestratorError) as e:
            plan_batches(hosts(3), bad)
        assert type(e.value) is OrchestratorError
        assert "expected a positive count, a percentage such as '50%' or a list" in str(e.value)
        assert "\n" not in str(e.value)

    def test_invalid_message_exact(self):
        with pytest.raises(OrchestratorError, match=r"^batch_size '0': expected a positive count, "
                           r"a percentage such as '50%' or a list of these$"):
            plan_batches(hosts(3), 0)
        with pytest.raises(OrchestratorError, match=r"^batch_size '1,0,50%':"):
            plan_batches(hosts(3), [1, 0, "50%"])

    def test_invalid_even_without_hosts(self):
        with pytest.raises(OrchestratorError):
            plan_batches([], 0)


class TestParseBatchSize:
    @pytest.mark.parametrize("text, expected", [
        ("2", 2), ("25%", "25%"), ("1,2,50%", [1, 2, "50%"]), (" 1 , 25% ", [1, "25%"]),
        ("12.5%", "12.5%"),
    ])
    def test_parse(self, text, expected):
        assert parse_batch_size(text) == expected

    @pytest.mark.parametrize("text", ["", "0", "abc", "1,,2", "1,0%", "150%", "-1"])
    def test_invalid(self, text):
        with pytest.raises(OrchestratorError, match=r"^batch_size '"):
            parse_batch_size(text)

    def test_round_trip_into_plan(self):
        assert sizes(plan_batches(hosts(9), parse_batch_size("1,2,50%"))) == [1, 2, 5, 1]


# --- policy ------------------------------------------------------------------------------------

class TestFailurePolicy:
    def test_default_stops_on_any_failure(self):
        p = FailurePolicy()
        assert not p.should_stop(0, 10)
        assert p.should_stop(1, 10)
        assert p.should_stop(1, 1000)

    def test_zero_percent_stops_on_any_failure(self):
        p = FailurePolicy(0)
        assert not p.should_stop(0, 10)
        assert p.should_stop(1, 1000)

    def test_hundred_percent_never_stops(self):
        p = FailurePolicy(100)
        assert not p.should_stop(10, 10)
        assert not p.should_stop(1, 1)

    @pytest.mark.parametrize("failed, total, pct, stop", [
        (1, 10, 10, False),    # exactly at the limit: continue (must exceed)
        (2, 10, 10, True),
        (1, 4, 25, False),
        (2, 4, 25, True),
        (1, 3, 100 / 3, False),  # 33.33..% == P: no float rounding pushes it over
        (1, 10, 9.99, True),
        (3, 10, 30.0, False),
        (0, 0, 0, False),
    ])
    def test_exceeds_not_reaches(self, failed, total, pct, stop):
        assert FailurePolicy(pct).should_stop(failed, total) is stop

    @pytest.mark.parametrize("bad", [-1, 100.5, "50", True])
    def test_invalid(self, bad):
        with pytest.raises(OrchestratorError, match="max_fail_percentage"):
            FailurePolicy(bad)


# --- fan-out -----------------------------------------------------------------------------------

class Recorder:
    """A task that sleeps, records start/end per host and fails the hosts it is told to."""

    def __init__(self, sleep: float = 0.0, fail: set[str] = frozenset(),
                 unreachable: set[str] = frozenset()):
        self.sleep, self.fail, self.unreachable = sleep, fail, unreachable
        self.times: dict[str, tuple[float, float]] = {}
        self.lock = threading.Lock()

    def __call__(self, host: H) -> HostResult:
        start = time.monotonic()
        time.sleep(self.sleep)
        with self.lock:
            self.times[host.name] = (start, time.monotonic())
        if host.name in self.unreachable:
            raise UnreachableError(f"{host.name}: connection refused")
        if host.name in self.fail:
            return HostResult(host.name, Status.FAILED, "boom", rc=1)
        return HostResult(host.name, Status.CHANGED, data={"version": "2"})


class TestRunOnHosts:
    def test_all_ok_in_targeted_order(self):
        hs = [H(n) for n in ["c", "a", "b"]]
        run = run_on_hosts(hs, ok_task, label="x#y")
        assert list(run.results) == ["c", "a", "b"]
        assert run.ok and run.label == "x#y"
        assert all(r.tries == 1 and r.host == n for n, r in run.results.items())
        assert run.elapsed >= 0

    def test_no_hosts(self):
        run = run_on_hosts([], ok_task, label="x#y")
        assert run.results == {} and run.ok

    def test_parallel(self):
        task = Recorder(sleep=0.2)
        t0 = time.monotonic()
        run = run_on_hosts(hosts(20), task, label="x#y")
        assert time.monotonic() - t0 < 1.0
        assert run.ok and len(run.results) == 20

    def test_workers_bound_concurrency(self):
        active, peak, lock = [0], [0], threading.Lock()

        def task(host):
            with lock:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
            time.sleep(0.02)
            with lock:
                active[0] -= 1
            return HostResult(host.name, Status.OK)

        assert run_on_hosts(hosts(20), task, label="x#y", workers=3).ok
        assert peak[0] == 3

    def test_lock_step_batches(self):
        task = Recorder(sleep=0.05)
        hs = hosts(7)
        run = run_on_hosts(hs, task, label="x#y", options=RunOptions(batch_size=[1, 3], timeout=None))
        assert run.ok
        batches = plan_batches([h.name for h in hs], [1, 3])
        assert sizes(batches) == [1, 3, 3]
        for before, after in zip(batches, batches[1:]):
            last_end = max(task.times[n][1] for n in before)
            first_start = min(task.times[n][0] for n in after)
            assert first_start >= last_end

    def test_stops_after_failed_batch(self):
        task = Recorder(fail={"web2"})
        run = run_on_hosts(hosts(6), task, label="x#y", options=RunOptions(batch_size=2, timeout=None))
        assert run.by_status()[Status.FAILED] == ["web2"]
        assert run.not_attempted == ["web3", "web4", "web5", "web6"]
        assert set(task.times) == {"web1", "web2"}
        r = run.results["web5"]
        assert (r.status, r.message, r.tries) == (Status.NOT_ATTEMPTED, NOT_ATTEMPTED_MESSAGE, 0)
        assert NOT_ATTEMPTED_MESSAGE == "stopped after a failed batch"
        assert not run.ok

    def test_unreachable_counts_as_failure_for_policy(self):
        run = run_on_hosts(hosts(4), Recorder(unreachable={"web1"}), label="x#y", options=RunOptions(batch_size=1, timeout=None))
        assert run.unreachable == ["web1"]
        assert run.not_attempted == ["web2", "web3", "web4"]

    def test_failure_in_last_batch_stops_nothing(self):
        run = run_on_hosts(hosts(4), Recorder(fail={"web4"}), label="x#y", options=RunOptions(batch_size=2, timeout=None))
        assert run.failed == ["web4"] and run.not_attempted == []

    def test_max_fail_percentage_continues_then_stops(self):
        # 10 hosts in batches of 2; web1 and web3 fail. After batch 1: 10% (== P, continue),
        # after batch 2: 20% > 10%, stop.
        task = Recorder(fail={"web1", "web3"})
        run = run_on_hosts(hosts(10), task, label="x#y", options=RunOptions(batch_size=2, policy=FailurePolicy(max_fail_percentage=10), timeout=None))
        assert run.failed == ["web1", "web3"]
        assert run.changed == ["web2", "web4"]
        assert run.not_attempted == [f"web{i}" for i in range(5, 11)]

    def test_max_fail_percentage_100_runs_everything(self):
        run = run_on_hosts(hosts(4), Recorder(fail={"web1", "web2", "web3"}), label="x#y", options=RunOptions(batch_size=1, policy=FailurePolicy(100), timeout=None))
        assert run.not_attempted == [] and len(run.failed) == 3

    def test_retries_until_success(self, monkeypatch):
        calls: dict[str, int] = {}
        sleeps: list[float] = []
        real_sleep = time.sleep
        monkeypatch.setattr(fanout.time, "sleep", lambda s: (sleeps.append(s), real_sleep(0)))

        def flaky(host):
            calls[host.name] = calls.get(host.name, 0) + 1
            if calls[host.name] <= 2:
                raise UnreachableError(f"{host.name}: timed out")
            return HostResult(host.name, Status.OK)

        run = run_on_hosts([H("web1")], flaky, label="x#y", options=RunOptions(tries=3, retry_sleep=0.5, timeout=None))
        r = run.results["web1"]
        assert (r.status, r.tries) == (Status.OK, 3)
        assert calls == {"web1": 3}
        assert sleeps == [0.5, 0.5]

    def test_retry_sleep_really_waits(self):
        calls = []

        def flaky(host):
            calls.append(time.monotonic())
            return HostResult(host.name, Status.FAILED if len(calls) < 3 else Status.OK)

        run = run_on_hosts([H("web1")], flaky, label="x#y", options=RunOptions(tries=3, retry_sleep=0.05, timeout=None))
        assert run.ok and run.results["web1"].tries == 3
        assert calls[1] - calls[0] >= 0.045 and calls[2] - calls[1] >= 0.045
        assert run.results["web1"].duration >= 0.09

    def test_tries_exhausted(self):
        calls = []
        run = run_on_hosts([H("web1")], lambda h: calls.append(1) or HostResult(h.name, Status.FAILED, "no"),
                           label="x#y", options=RunOptions(tries=2, timeout=None))
        r = run.results["web1"]
        assert (r.status, r.tries, r.message, len(calls)) == (Status.FAILED, 2, "no", 2)

    def test_ok_and_changed_are_not_retried(self):
        calls = []
        run = run_on_hosts(hosts(2), lambda h: calls.append(h) or HostResult(h.name, Status.CHANGED),
                           label="x#y", options=RunOptions(tries=5, timeout=None))
        assert len(calls) == 2 and [r.tries for r in run.results.values()] == [1, 1]

    def test_exceptions_become_statuses(self):
        def task(host):
            if host.name == "web1":
                raise UnreachableError("web1: connection refused\n(port 22)")
            if host.name == "web2":
                raise ValueError("bad\nvalue")
            if host.name == "web3":
                raise KeyError("version")
            if host.name == "web4":
                return "not a HostResult"
            raise RuntimeError()

        run = run_on_hosts(hosts(5), task, label="x#y", options=RunOptions(policy=FailurePolicy(100), timeout=None))
        got = {n: (r.status, r.message) for n, r in run.results.items()}
        assert got == {
            "web1": (Status.UNREACHABLE, "web1: connection refused (port 22)"),
            "web2": (Status.FAILED, "ValueError: bad value"),
            "web3": (Status.FAILED, "KeyError: 'version'"),
            "web4": (Status.FAILED, "TypeError: task returned str, expected HostResult"),
            "web5": (Status.FAILED, "RuntimeError"),
        }
        assert all("Traceback" not in m for _, m in got.values())

    def test_fan_out_owns_host_tries_duration(self):
        shared = HostResult("wrong", Status.OK, tries=9)
        run = run_on_hosts(hosts(2), lambda h: shared, label="x#y")
        assert [(n, r.host, r.tries) for n, r in run.results.items()] == [
            ("web1", "web1", 1), ("web2", "web2", 1)]
        assert shared.host == "wrong"

    def test_timeout(self):
        release = threading.Event()

        def task(host):
            if host.name == "web2":
                release.wait(5)
            return HostResult(host.name, Status.OK)

        t0 = time.monotonic()
        run = run_on_hosts(hosts(3), task, label="x#y", options=RunOptions(timeout=0.2, policy=FailurePolicy(100)))
        took = time.monotonic() - t0
        release.set()
        r = run.results["web2"]
        assert (r.status, r.message, r.tries) == (Status.FAILED, "timed out after 0.2 s", 1)
        assert 0.19 <= r.duration < 1.0
        assert took < 1.0
        assert run.results["web1"].ok and run.results["web3"].ok

    def test_timeout_covers_retries_and_stops_them(self):
        calls = []

        def task(host):
            calls.append(time.monotonic())
            time.sleep(0.15)
            return HostResult(host.name, Status.FAILED, "nope")

        run = run_on_hosts([H("web1")], task, label="x#y", options=RunOptions(tries=10, retry_sleep=0.1, timeout=0.02))
        r = run.results["web1"]  # the deadline: (0.02 s a try + 0.1 s between tries) * 10 tries
        assert r.status is Status.FAILED
        time.sleep(0.3)  # no late tries from the abandoned worker
        assert len(calls) < 10  # stopped by the deadline, not by running out of tries

    def test_hung_worker_is_replaced(self):
        # One worker; web1 hangs past its deadline. web2 must still run (the hung thread is
        # written off and replaced), and the next batch too.
        release = threading.Event()

        def task(host):
            if host.name == "web1":
                release.wait(5)
            return HostResult(host.name, Status.OK)

        run = run_on_hosts(hosts(4), task, label="x#y", workers=1, options=RunOptions(timeout=0.1, batch_size=2, policy=FailurePolicy(100)))
        release.set()
        assert [r.status for r in run.results.values()] == [
            Status.FAILED, Status.OK, Status.OK, Status.OK]

    def test_timeout_counts_from_start_not_from_queueing(self):
        # One worker, three 0.1 s hosts, 0.25 s timeout: each fits although the last one
        # starts 0.2 s after the run.
        task = Recorder(sleep=0.1)
        run = run_on_hosts(hosts(3), task, label="x#y", workers=1, options=RunOptions(timeout=0.25))
        assert run.ok

    def test_on_result_called_per_finished_host(self):
        seen: list[str] = []
        threads: set[str] = set()

        def cb(r):
            seen.append(r.host)
            threads.add(threading.current_thread().name)

        run = run_on_hosts(hosts(6), Recorder(fail={"web3"}), label="x#y",
                           on_result=cb, options=RunOptions(batch_size=3, timeout=None))
        assert sorted(seen) == ["web1", "web2", "web3"]  # not-attempted hosts never finish
        assert threads == {threading.current_thread().name}
        assert len(run.not_attempted) == 3

    def test_duplicate_hosts_rejected(self):
        with pytest.raises(OrchestratorError, match="web1"):
            run_on_hosts([H("web1"), H("web1")], ok_task, label="x#y")

    @pytest.mark.parametrize("kwargs", [{"tries": 0}, {"tries": True}, {"timeout": 0}, {"timeout": float("nan")},
                                        {"retry_sleep": -1}])
    def test_invalid_options_refused_when_made(self, kwargs):
        with pytest.raises(OrchestratorError):
            RunOptions(**kwargs)

    @pytest.mark.parametrize("kwargs", [{"workers": 0}, {"options": RunOptions(batch_size="0%")}])
    def test_invalid_arguments(self, kwargs):
        with pytest.raises(OrchestratorError):
            run_on_hosts(hosts(2), ok_task, label="x#y", **kwargs)

    def test_workers_are_reused_by_the_next_fan_out_not_started_again(self):
        together = threading.Barrier(40, timeout=10)  # every host's task runs at the same time

        def task(host):
            together.wait()
            return HostResult(host.name, Status.OK)
        assert run_on_hosts(hosts(40), task, label="warm#up").ok
        started = fanout._WORKERS._started
        for _ in range(5):
            assert run_on_hosts(hosts(40), task, label="x#y").ok
        assert fanout._WORKERS._started == started

    def test_overhead_of_1000_noop_hosts(self):
        hs = hosts(1000)
        run_on_hosts(hs, ok_task, label="warm#up")
        best = min(self._timed(hs) for _ in range(3))
        assert best < 0.1

    @staticmethod
    def _timed(hs):
        """CPU seconds of the process (all its threads): on a machine loaded by other work, wall
        time measures the machine, not the fan-out's own cost."""
        t0 = time.process_time()
        run = run_on_hosts(hs, ok_task, label="x#y", options=RunOptions(timeout=30))
        assert run.ok and len(run.results) == 1000
        return time.process_time() - t0


# --- results -----------------------------------------------------------------------------------

def make_run(statuses: dict[str, Status], tries: dict[str, int] | None = None,
             elapsed: float = 0.52, data: dict[str, dict] | None = None) -> RunResult:
    tries = tries or {}
    data = data or {}
    return RunResult("package#update", {
        n: HostResult(n, s, tries=tries.get(n, 0 if s is Status.NOT_ATTEMPTED else 1),
                      data=data.get(n, {}))
        for n, s in statuses.items()}, elapsed)


class TestResults:
    def test_status_str(self):
        assert str(Status.NOT_ATTEMPTED) == "not attempted" and f"{Status.OK}" == "ok"
        assert Status("changed") is Status.CHANGED

    def test_tally_all_ok(self):
        run = make_run({f"web{i}": Status.OK for i in range(1, 5)})
        assert run.tally() == "package#update: ok on 4 of 4 hosts after 1 try in 0.52 s"

    def test_tally_mixed(self):
        statuses = {f"web{i}": Status.OK for i in range(1, 10)}
        statuses.update(web2=Status.CHANGED, web4=Status.CHANGED, web3=Status.FAILED,
                        web5=Status.UNREACHABLE)
        run = make_run(statuses, tries={"web3": 2}, elapsed=3.1)
        assert run.tally() == ("package#update: ok on 7 of 9 hosts (2 changed), failed on 1 "
                               "(web3), unreachable 1 (web5) after 2 tries in 3.10 s")

    def test_tally_singular_and_not_attempted(self):
        assert make_run({"web1": Status.CHANGED}, elapsed=0.004).tally() == \
            "package#update: ok on 1 of 1 host (1 changed) after 1 try in 0.00 s"
        run = make_run({"web1": Status.FAILED, "web2": Status.NOT_ATTEMPTED,
                        "web3": Status.NOT_ATTEMPTED}, tries={"web1": 3}, elapsed=1)
        assert run.tally() == ("package#update: ok on 0 of 3 hosts, failed on 1 (web1), "
                               "not attempted 2 (web2, web3) after 3 tries in 1.00 s")

    def test_tally_empty(self):
        assert RunResult("a#b", {}, 0.0).tally() == "a#b: ok on 0 of 0 hosts in 0.00 s"

    def test_tally_caps_long_name_lists(self):
        run = make_run({f"web{i}": Status.FAILED for i in range(1, 9)})
        assert ("failed on 8 (web1, web2, web3, web4, web5 and 3 more)") in run.tally()

    def test_lists_and_ok(self):
        run = make_run({"a": Status.OK, "b": Status.CHANGED, "c": Status.FAILED,
                        "d": Status.UNREACHABLE, "e": Status.NOT_ATTEMPTED})
        assert (run.changed, run.failed, run.unreachable, run.not_attempted) == \
            (["b"], ["c"], ["d"], ["e"])
        assert not run.ok
        assert run.by_status() == {Status.OK: ["a"], Status.CHANGED: ["b"], Status.WOULD_CHANGE: [], Status.FAILED: ["c"],
                                   Status.UNREACHABLE: ["d"], Status.NOT_ATTEMPTED: ["e"]}
        assert make_run({"a": Status.OK, "b": Status.CHANGED}).ok

    def test_summary_most_common_first(self):
        data = {f"web{i}": {"version": "4.2.5-1.el5"} for i in range(1, 6)}
        data.update({f"web{i}": {"version": "4.2.6-3.el5"} for i in range(6, 10)})
        run = make_run({n: Status.OK for n in data}, data=data)
        assert run.summary("version") == "Summary of version: 4.2.5-1.el5 = 5, 4.2.6-3.el5 = 4"

    def test_summary_ties_in_host_order_and_missing_field(self):
        data = {"a": {"v": "2"}, "b": {"v": "1"}, "c": {}, "d": {"v": "1"}, "e": {"v": "2"}}
        run = make_run({n: Status.OK for n in data}, data=data)
        assert run.summary("v") == "Summary of v: 2 = 2, 1 = 2"
        assert run.summary("nope") == "Summary of nope: no data"

    def test_to_dict_is_json(self):
        run = run_on_hosts(hosts(2), Recorder(fail={"web2"}), label="x#y")
        d = json.loads(json.dumps(run.to_dict()))
        assert d["label"] == "x#y" and d["ok"] is False
        assert list(d["results"]) == ["web1", "web2"]
        assert d["results"]["web2"]["status"] == "failed"
        assert d["results"]["web1"]["data"] == {"version": "2"}
        assert d["counts"]["changed"] == 1 and d["tally"] == run.tally()
