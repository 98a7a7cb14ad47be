#!/usr/bin/env python3
"""Benchmark: what the deploy lock, the journal and pre-flight cost the seed deploy.

    flock /tmp/lab.lock python3 bench/safeguards.py [--reps 7]

The seed deploy (`behave features/deploy_webapp.feature`) as a process, with its safeguards
(lease on every target, journal fsync'd, pre-flight) and the same run with `-D safeguards=false`,
interleaved (the order alternates per repetition), each from freshly reset web hosts (so it
changes them: 4.2.5-1.el5 -> 4.2.6-3.el5), then once more converged. Three clocks per run: the
process's wall time; behave's own `Took` (the run without Python's start and imports, which
differ by nothing between the two and are most of the noise on a loaded machine); and the steps'
time without the two that wait for HAProxy's health checks (LB_WAITS: their 0.1-0.5 s depend on
where the check interval stands when the block lands, the rest of the noise).
Overhead = median of the paired differences (with - without), per clock and per case; and,
measured inside each run with them, the seconds spent in the lock and pre-flight (guard) and in
the journal's writes and fsyncs (summed over threads: an upper bound), from the journal's end.
The lab is left with its web hosts reset; a lab found down is taken down again.
"""
from __future__ import annotations

import argparse
import datetime
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from lib import REPO, loadavg, log, machine, summary, write_result
from profile_behave import steps_of

from orchestrator_lib.controller.inventory import load_inventory
from orchestrator_lib.controller.reporting.journal import JournalRun, journal_dir
from orchestrator_lib.lab.estate import Lab

FEATURE = "features/deploy_webapp.feature"
BUDGET = 0.15  # seconds the issue allows the safeguards to add
JOURNALS = journal_dir(REPO / "reports")


def newest_journal() -> Path | None:
    paths = sorted(JOURNALS.glob("*.jsonl"))
    return paths[-1] if paths else None


#: the steps that wait for HAProxy's health checks to notice a block or an unblock: their time is
#: HAProxy's check interval and phase (0.1-0.5 s a run), the same with and without the safeguards,
#: and most of the noise in the paired differences of the other two clocks
LB_WAITS = ("Then traffic from the load balancer should be blocked",
            "Then traffic from the load balancer should be unblocked")


def run(safeguards: bool) -> tuple[float, float, float]:
    """(process wall time, behave's Took, the steps' time without HAProxy's detection) of one run
    of the seed deploy."""
    steps = Path(f"/tmp/bench-safeguards-steps-{safeguards}.json")
    argv = [sys.executable, "-m", "behave", FEATURE, "-D", f"report=/tmp/bench-safeguards-{safeguards}.json",
            "-f", "json", "-o", str(steps), "-f", "pretty"]
    if not safeguards:
        argv += ["-D", "safeguards=false"]
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"behave failed (rc {done.returncode}): {(done.stdout + done.stderr)[-1500:]}")
    took = re.search(r"Took (\d+)min (\d+\.\d+)s", done.stdout)
    if not took:
        raise RuntimeError("behave printed no 'Took' line")
    ours = sum(d for name, d in steps_of(json.loads(steps.read_text())) if name not in LB_WAITS)
    return wall, int(took.group(1)) * 60 + float(took.group(2)), ours


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=7)
    args = ap.parse_args()
    lab = Lab(load_inventory("local"))
    web = [h.name for h in lab.hosts if lab.role(h) == "web"]
    was_up = lab.is_up()
    if not was_up:
        lab.up(progress=lambda _m: None)
    samples: dict[str, dict[str, list[float]]] = {
        f"{case}-{mode}": {"wall": [], "took": [], "steps_without_lb_waits": []} for case in ("fresh", "converged") for mode in ("with", "without")}
    costs: dict[str, list[float]] = {"fresh": [], "converged": []}
    load_before = loadavg()
    try:
        for rep in range(args.reps):
            order = (True, False) if rep % 2 == 0 else (False, True)
            for safeguards in order:
                mode = "with" if safeguards else "without"
                lab.reset(web)
                for case in ("fresh", "converged"):
                    wall, took, ours = run(safeguards)
                    samples[f"{case}-{mode}"]["wall"].append(wall)
                    samples[f"{case}-{mode}"]["took"].append(took)
                    samples[f"{case}-{mode}"]["steps_without_lb_waits"].append(ours)
                    spent = ""
                    if safeguards:
                        cost = JournalRun.read(newest_journal()).cost  # type: ignore[arg-type]
                        own = cost["lock_and_preflight_s"] + cost["journal_s"]
                        costs[case].append(own)
                        spent = (f", in the safeguards {own:.3f} s (lock+pre-flight {cost['lock_and_preflight_s']:.3f}, "
                                 f"journal {cost['journal_s']:.3f}, {cost['fsyncs']} fsyncs)")
                    log(f"rep {rep + 1} {case:9} {mode:7} wall {wall:.3f} s, took {took:.3f} s "
                        f"({ours:.3f} s without HAProxy's detection){spent}")
    finally:
        lab.reset(web)
        if not was_up:
            lab.down(progress=lambda _m: None)
    result: dict = {"when": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                    "machine": machine(), "loadavg_before": load_before, "loadavg_after": loadavg(),
                    "reps": args.reps, "budget_s": BUDGET, "runs": {}, "overhead": {}}
    for name, clocks in samples.items():
        result["runs"][name] = {clock: summary(values) for clock, values in clocks.items()}
    for case in ("fresh", "converged"):
        for clock in ("wall", "took", "steps_without_lb_waits"):
            diffs = [a - b for a, b in zip(samples[f"{case}-with"][clock], samples[f"{case}-without"][clock])]
            result["overhead"][f"{case}-{clock}"] = {"median": statistics.median(diffs), **summary(diffs)}
            log(f"overhead {case:9} {clock:22}: median {statistics.median(diffs):+.3f} s "
                f"(paired differences {', '.join(f'{d:+.3f}' for d in diffs)})")
    for case, values in costs.items():
        result["overhead"][f"{case}-measured-inside"] = summary(values)
        log(f"measured inside the run {case:9}: median {statistics.median(values):.3f} s")
    path = write_result("safeguards", result)
    log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
