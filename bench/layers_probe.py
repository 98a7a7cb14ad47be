#!/usr/bin/env python3
"""Which layer costs the controller CPU in a cold fan-out (connect + `echo ok`)? One variant per
process, so each starts cold:

    bench/.venv/bin/python bench/layers_probe.py ENV.yaml N VARIANT

VARIANT: session       Session.shell (our fan-out over our transport)
         pool+tpe      SSHPool.exec (our transport) fanned out by a ThreadPoolExecutor(64)
         fanout+raw    run_on_hosts (our fan-out) over the raw paramiko connect/exec
         raw           ThreadPoolExecutor(64) over the raw paramiko connect/exec (the floor)
Prints one JSON line: wall, controller user and sys CPU.
"""
from __future__ import annotations

import json
import resource
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from lib import RawParamiko

from orchestrator_lib.controller.inventory import load_inventory
from orchestrator_lib.controller.orchestration import HostResult, RunOptions, Status, run_on_hosts
from orchestrator_lib.controller.session import Session
from orchestrator_lib.controller.transports.ssh import SSHPool


def main() -> int:
    env, n, variant = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    inventory = load_inventory(env)
    hosts = list(inventory.hosts.values())[:n]
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    if variant == "session":
        s = Session(env, audit_path=None)
        res = s.shell(hosts, "echo ok")
        ok = sum(r.status is Status.OK for r in res.results.values())
    elif variant == "pool+tpe":
        pool = SSHPool(inventory)
        with ThreadPoolExecutor(64) as tpe:
            ok = sum(r.rc == 0 for r in tpe.map(lambda h: pool.exec(h, "echo ok"), hosts))
    elif variant == "fanout+raw":
        raw = RawParamiko(inventory)

        def task(h):
            rc, _ = raw.exec(raw.connect(h), "echo ok")
            return HostResult(h.name, Status.OK if rc == 0 else Status.FAILED)
        res = run_on_hosts(hosts, task, label="x", workers=64, options=RunOptions(timeout=60))
        ok = sum(r.status is Status.OK for r in res.results.values())
    elif variant == "raw":
        raw = RawParamiko(inventory)
        ok = sum(rc == 0 for rc, _ in raw.run(hosts, "echo ok", workers=64))
    else:
        raise SystemExit(f"unknown variant {variant}")
    t1, r1 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"variant": variant, "hosts": n, "ok": ok, "wall": t1 - t0,
                      "user": r1.ru_utime - r0.ru_utime, "sys": r1.ru_stime - r0.ru_stime,
                      "ctx_vol": r1.ru_nvcsw - r0.ru_nvcsw, "ctx_invol": r1.ru_nivcsw - r0.ru_nivcsw}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
