"""Progress of a long request: nothing for a quick one or when quiet, a line every interval in a
log, true counts (done/total of the targeted hosts, failures so far) and the slowest host."""
from __future__ import annotations

import io
import time

from orchestrator_lib.controller.orchestration import HostResult, Status
from orchestrator_lib.controller.reporting.progress import LOG, OFF, Progress, Tally


def test_the_line_counts_the_targeted_hosts_failures_and_names_the_slowest():
    tally = Tally("package#update", ["web1", "web2", "web3", "web4", "web5"], started=100.0)
    tally.add(HostResult("web1", Status.CHANGED, duration=1.5))
    tally.add(HostResult("web2", Status.FAILED, "boom", duration=4.0))
    assert tally.line(now=112.0) == "package#update: 2/5 done, 1 failed, 12 s; waiting on web3, web4, web5; slowest web2 4.0 s"
    tally.hosts += ["web6"]
    assert "waiting on web3, web4, web5 +1;" in tally.line(now=112.0)


def test_a_log_gets_a_line_per_interval_once_the_step_ran_past_the_delay():
    out = io.StringIO()
    progress = Progress(LOG, out, delay=0.2, every=0.2, indent="")
    with progress.track("health#http", ["web1", "web2"]) as on_result:
        on_result(HostResult("web1", Status.OK, duration=0.1))
        time.sleep(0.7)
    lines = out.getvalue().splitlines()
    assert 2 <= len(lines) <= 4, lines
    assert lines[0].startswith("health#http: 1/2 done, 0 failed, 0 s; waiting on web2")


def test_a_quick_step_or_a_quiet_run_prints_nothing():
    out = io.StringIO()
    with Progress(LOG, out, delay=0.5).track("rpcutil#ping", ["web1"]) as on_result:
        on_result(HostResult("web1", Status.OK))
    with Progress(OFF, out, delay=0.0).track("rpcutil#ping", ["web1"]):
        time.sleep(0.2)
    assert out.getvalue() == ""
    assert Progress.for_output(quiet=True, stream=io.StringIO()).mode == OFF
    assert Progress.for_output(quiet=False, stream=io.StringIO()).mode == LOG
