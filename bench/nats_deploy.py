#!/usr/bin/env python3
"""The seed deploy on the real lab hosts over NATS and over warm SSH, interleaved.

    flock /tmp/lab.lock python3 bench/nats_deploy.py [--reps 3]

Under the lab lock (it resets the web hosts). Per repetition and transport, from freshly reset web
hosts (mywebapp 4.2.5-1.el5): open a Session with that transport and make it warm (one
rpcutil#ping to the 9 web hosts: SSH connections and resident agents open, or the broker
connection up), then time the seed deploy's sequence on that session: live discovery of roles::web
(over NATS a broadcast carrying the filter; over SSH a ping of each selected host), firewall#block
of the LB, package#update to 4.2.6-3.el5, package#status, firewall#unblock; then the same once
converged. A lab it found down, it takes down again.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

from deploy import NEW, PACKAGE, installed_versions, ok
from lib import loadavg, log, machine, write_result

from orchestrator_lib.controller.discovery import Filter
from orchestrator_lib.controller.inventory import load_inventory
from orchestrator_lib.controller.orchestration import Status
from orchestrator_lib.controller.session import Session
from orchestrator_lib.lab.estate import Lab

TRANSPORTS = ("ssh", "nats")


def sequence(s: Session, lb_address: str) -> dict:
    times: dict[str, float] = {}
    started = time.perf_counter()
    t = time.perf_counter()
    hosts = s.discover(Filter(classes=("roles::web",)), live=True)
    times["discover"] = time.perf_counter() - t
    for step, agent, action, args in (
            ("block", "firewall", "block", {"source": lb_address}),
            ("update", "package", "update", {"name": PACKAGE, "version": NEW}),
            ("status", "package", "status", {"name": PACKAGE}),
            ("unblock", "firewall", "unblock", {"source": lb_address})):
        t = time.perf_counter()
        r = s.call(hosts, agent, action, args)
        times[step] = time.perf_counter() - t
        ok(r)
        if step == "update":
            times["changed_hosts"] = sum(1 for x in r.results.values() if x.status is Status.CHANGED)
    times["total"] = time.perf_counter() - started
    return {k: round(v, 3) for k, v in times.items()}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", default="nats_deploy")
    args = ap.parse_args()
    lab = Lab(load_inventory("local"))
    web = [h.name for h in lab.hosts if lab.role(h) == "web"]
    lb_address = next(h for h in lab.hosts if lab.role(h) == "lb").address
    was_up = lab.is_up()
    if not was_up:
        lab.up(progress=log)
    runs: dict[str, list] = {t: [] for t in TRANSPORTS}
    out = {"benchmark": "nats_deploy", "machine": machine(), "command": " ".join(sys.argv),
           "loadavg_start": loadavg()}
    try:
        for rep in range(args.reps):
            for transport in TRANSPORTS if rep % 2 == 0 else reversed(TRANSPORTS):
                lab.reset(web)
                with Session("local", transport=transport) as s:
                    warm_started = time.perf_counter()
                    ok(s.call([s.host(n) for n in web], "rpcutil", "ping"))
                    warm = round(time.perf_counter() - warm_started, 3)
                    first = sequence(s, lb_address)
                    assert installed_versions(lab, web) == {NEW}
                    converged = sequence(s, lb_address)
                    assert converged["changed_hosts"] == 0
                runs[transport].append({"warm_up": warm, "deploy": first, "converged": converged})
                log(f"{transport}: deploy {first['total']} s, converged {converged['total']} s (warm-up {warm} s)")
    finally:
        lab.reset(web)
        if not was_up:
            lab.down(progress=log)
    out["runs"] = runs
    out["median"] = {t: {"deploy": statistics.median(r["deploy"]["total"] for r in runs[t]),
                         "converged": statistics.median(r["converged"]["total"] for r in runs[t]),
                         "discover": statistics.median(r["deploy"]["discover"] for r in runs[t])}
                     for t in TRANSPORTS}
    out["loadavg_end"] = loadavg()
    write_result(args.out, out)
    log(f"median: {out['median']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
