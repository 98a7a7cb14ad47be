#!/usr/bin/env python3
"""One measurement of benchmark 3, in a process of its own so its peak memory is its own:

    bench/.venv/bin/python bench/scale_probe.py ENV.yaml N ours|raw [--warm K]

Connect-all = a cold fan-out of `echo ok` to the first N hosts of ENV (every host connected,
authenticated, host key checked, one exec); then K warm rounds on the open connections. Prints
one JSON line: seconds, the process's peak RSS (VmHWM, and ru_maxrss) and its RSS before the
first connection (after imports and the inventory).
"""
from __future__ import annotations

import json
import resource
import sys
import time

from lib import RawParamiko, check_all, vm_hwm_kb, vm_rss_kb

from orchestrator_lib.controller.inventory import load_inventory
from orchestrator_lib.controller.orchestration import Status
from orchestrator_lib.controller.session import Session


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> int:
    env, n, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    warm = int(sys.argv[sys.argv.index("--warm") + 1]) if "--warm" in sys.argv else 1
    out: dict = {"mode": mode, "hosts": n}
    if mode == "ours":
        load_inventory(env)  # imports and YAML parsing warmed, as for raw below
        out["rss_before_kb"] = vm_rss_kb()
        t, c = time.perf_counter(), cpu()
        s = Session(env)
        out["session_init_s"] = time.perf_counter() - t
        hosts = list(s.inventory.hosts.values())[:n]
        r = s.shell(hosts, "echo ok")
        out["connect_all_s"] = time.perf_counter() - t
        out["connect_all_cpu_s"] = cpu() - c
        bad = [x for x in r.results.values() if x.status is not Status.OK or x.stdout != "ok\n"]
        out["failed"] = len(bad)
        out["first_failure"] = bad[0].message if bad else None
        out["connects"] = s.pool.connects
        out["workers"] = s.workers
        out["warm_s"] = []
        for _ in range(warm):
            t = time.perf_counter()
            r = s.shell(hosts, "echo ok")
            out["warm_s"].append(time.perf_counter() - t)
        out["vm_hwm_kb"] = vm_hwm_kb()
        s.close()
    elif mode == "raw":
        inventory = load_inventory(env)
        hosts = list(inventory.hosts.values())[:n]
        out["rss_before_kb"] = vm_rss_kb()
        workers = 64  # as many threads as a Session uses by default
        t, c = time.perf_counter(), cpu()
        raw = RawParamiko(inventory)
        out["session_init_s"] = time.perf_counter() - t
        replies = raw.run(hosts, "echo ok", workers=workers)
        out["connect_all_s"] = time.perf_counter() - t
        out["connect_all_cpu_s"] = cpu() - c
        try:
            check_all("raw", replies)
            out["failed"] = 0
        except RuntimeError as err:
            out["failed"], out["first_failure"] = -1, str(err)
        out["connects"] = len(raw.transports)
        out["workers"] = workers
        out["warm_s"] = []
        for _ in range(warm):
            t = time.perf_counter()
            raw.run(hosts, "echo ok", workers=workers)
            out["warm_s"].append(time.perf_counter() - t)
        out["vm_hwm_kb"] = vm_hwm_kb()
        raw.close()
    else:
        raise SystemExit(f"unknown mode {mode}")
    out["ru_maxrss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
