#!/usr/bin/env python3
"""Benchmark: rpcutil#ping fan-out as root directly, as deploy through `sudo -n`, and as deploy
through sudo behind a bastion (bench/envs/bench-become.yaml, 20 hosts + bastion1).

    python3 bench/become.py [--reps 5] [--warm 20]

cold: a new Session (connect, authenticate, start the resident agent: under sudo, one `sudo -n`
per host) and one ping on every host; the agent is already installed. warm: further pings on that
Session's resident agents (no sudo, no connect). one host warm: the per-call latency on one host,
where sudo's per-call cost would show if there were one (there is none: one sudo per run and host).
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lib import log, machine, summary, wait_quiet, write_result  # noqa: E402

from orchestrator_lib.controller.orchestration import Status  # noqa: E402
from orchestrator_lib.controller.session import Session  # noqa: E402

ENV = Path(__file__).parent / "envs" / "bench-become.yaml"


def variants(session: Session) -> dict[str, list]:
    hosts = [h for h in session.inventory.hosts.values() if h.name != "bastion1"]
    sudo = [dataclasses.replace(h, user="deploy", become="sudo", explicit=h.explicit | {"user", "become"})
            for h in hosts]
    via = [dataclasses.replace(h, jump="bastion1", explicit=h.explicit | {"jump"}) for h in sudo]
    return {"root direct": hosts, "deploy + sudo": sudo, "deploy + sudo via bastion": via}


def ping(session: Session, hosts: list) -> float:
    started = time.perf_counter()
    result = session.call(hosts, "rpcutil", "ping")
    elapsed = time.perf_counter() - started
    bad = [r for r in result.results.values() if r.status is not Status.OK]
    if bad:
        raise SystemExit(f"become.py: {bad[0].host}: {bad[0].message}")
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--warm", type=int, default=20)
    args = ap.parse_args()
    with Session(ENV, audit_path=None) as s:                      # install the agent everywhere, both ways
        for hosts in variants(s).values():
            ping(s, hosts)
    results: dict[str, dict] = {}
    names = list(variants(Session(ENV, audit_path=None)).keys())
    samples = {n: {"cold": [], "warm": [], "one": []} for n in names}
    for rep in range(args.reps):
        for name in names[rep % len(names):] + names[:rep % len(names)]:   # rotate the order per repetition
            wait_quiet(limit=5)
            with Session(ENV, audit_path=None) as s:
                hosts = variants(s)[name]
                samples[name]["cold"].append(ping(s, hosts))
                samples[name]["warm"] += [ping(s, hosts) for _ in range(args.warm)]
                samples[name]["one"] += [ping(s, hosts[:1]) for _ in range(args.warm)]
    for name in names:
        results[name] = {k: summary(v) for k, v in samples[name].items()}
    base = results["root direct"]["one"]["median"]
    for name in names:
        r = results[name]
        log(f"{name:<27} cold {r['cold']['median'] * 1000:7.1f} ms   warm {r['warm']['median'] * 1000:6.1f} ms   "
            f"one host warm {r['one']['median'] * 1000:5.1f} ms ({(r['one']['median'] - base) * 1000:+.1f} ms vs root)")
    write_result("become", {"machine": machine(), "hosts": 20, "reps": args.reps, "warm": args.warm,
                            "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
