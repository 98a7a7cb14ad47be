#!/usr/bin/env python3
"""Benchmark 3: fan-out at the largest estate this machine holds (plain, sshd-only lab hosts).

    bench/.venv/bin/python bench/scale.py --max-hosts 1000 --sizes 200,500,1000

Brings up bench/envs/bench-MAX.yaml (own bridge lbb0, 10.231.16.0/20), then for each size runs
bench/scale_probe.py in a process of its own, ours and raw paramiko alternating, after the
machine settled: connect-all (cold `echo ok` to every host), warm rounds, peak RSS. Always
takes the estate down at the end.

The machine's ARP table is one table for all network namespaces, capped by
net.ipv4.neigh.default.gc_thresh3 (1024 by default): an estate of N hosts holds about 2N entries
(the machine's for each host, each host's for the gateway), so past ~500 hosts connections fail
with "no route to host" ("neighbor table overflow" in dmesg). For a larger estate this script
raises gc_thresh2/3 for the run and puts the previous values back at the end (the originals are
kept in bench/.state/gc_thresh.orig, which bench/run's trap also restores from).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import gen_env
from lib import BENCH, REPO, STATE, loadavg, log, machine, summary, wait_quiet, write_result

GC = ("net.ipv4.neigh.default.gc_thresh2", "net.ipv4.neigh.default.gc_thresh3")
GC_SAVED = STATE / "gc_thresh.orig"
MB_PER_HOST = 4.0        # measured: ~3.1 MiB per plain host (runsvdir, runsv, sshd, unshare)


def sysctl_get(name: str) -> int:
    return int(Path("/proc/sys", *name.split(".")).read_text())


def sysctl_set(name: str, value: int) -> None:
    Path("/proc/sys", *name.split(".")).write_text(f"{value}\n")


def raise_arp_table(hosts: int) -> dict[str, int] | None:
    need = 2 * hosts + 512
    current = {k: sysctl_get(k) for k in GC}
    if current[GC[1]] >= need:
        return None
    STATE.mkdir(parents=True, exist_ok=True)
    if not GC_SAVED.exists():
        GC_SAVED.write_text(json.dumps(current))
    sysctl_set(GC[1], max(need, 4096))
    sysctl_set(GC[0], max(need // 2, current[GC[0]]))
    log(f"raised {GC[1]} {current[GC[1]]} -> {sysctl_get(GC[1])} for {hosts} hosts (restored at the end)")
    return current


def restore_arp_table() -> None:
    if GC_SAVED.exists():
        for k, v in json.loads(GC_SAVED.read_text()).items():
            sysctl_set(k, v)
        GC_SAVED.unlink()
        log("restored " + ", ".join(f"{k}={sysctl_get(k)}" for k in GC))


def mem_available_mb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return 0.0


def lab(command: str, env: Path) -> float:
    t = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "orchestrator_lib.lab", command, str(env)], cwd=REPO,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"lab {command} {env.name}: {(done.stderr or done.stdout).strip()[-500:]}")
    return time.perf_counter() - t


def probe(env: Path, n: int, mode: str, warm: int) -> dict:
    done = subprocess.run([sys.executable, str(BENCH / "scale_probe.py"), str(env), str(n), mode, "--warm", str(warm)],
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"probe {mode} {n}: {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-hosts", type=int, default=1000)
    ap.add_argument("--sizes", default="200,500,1000")
    ap.add_argument("--reps", default="200:3,500:3,1000:3", help="runs per mode: one number, or size:runs,...")
    ap.add_argument("--warm", type=int, default=1)
    ap.add_argument("--out", default="scale")
    ap.add_argument("--peers-sizes", default="",
                    help="also run fanout.py with every peer at these sizes on this estate, once each "
                         "(-> results/fanout-big.json: the cost curves past 100 hosts), e.g. 300,1000")
    args = ap.parse_args()

    wanted = args.max_hosts
    # Fit the estate to the memory there is (keep half of what is available for everything else).
    fits = int(mem_available_mb() / 2 / MB_PER_HOST)
    estate = min(wanted, fits)
    if estate < wanted:
        log(f"only ~{fits} plain hosts fit in the available memory: estate of {estate} instead of {wanted}")
    sizes = sorted({min(int(s), estate) for s in args.sizes.split(",")})
    env = gen_env.write(estate)
    out: dict = {"benchmark": "scale", "machine": machine(), "command": " ".join(sys.argv),
                 "estate_hosts": estate, "wanted_hosts": wanted, "sizes": {}, "loadavg_start": loadavg()}
    mem_before = mem_available_mb()
    try:
        out["arp_gc_thresh_raised_from"] = raise_arp_table(estate)
        out["lab_up_s"] = lab("up", env)
        out["estate_mem_mb"] = round(mem_before - mem_available_mb())
        out["estate_mem_mb_per_host"] = round(out["estate_mem_mb"] / estate, 2)
        log(f"estate of {estate} hosts up in {out['lab_up_s']:.0f} s, {out['estate_mem_mb']} MB")
        busy = wait_quiet(limit=60)
        log(f"machine settled ({busy:.0%} busy)")
        reps = ({int(k): int(v) for k, v in (p.split(":") for p in args.reps.split(","))}
                if ":" in args.reps else {n: int(args.reps) for n in sizes})
        for n in sizes:
            runs: dict[str, list[dict]] = {"ours": [], "raw": []}
            for rep in range(reps.get(n, 2)):
                for mode in (("ours", "raw") if rep % 2 == 0 else ("raw", "ours")):
                    busy = wait_quiet(limit=10)
                    r = probe(env, n, mode, args.warm)
                    r["busy_before"] = round(busy, 2)
                    runs[mode].append(r)
                    log(f"n={n} {mode}: connect-all {r['connect_all_s']:.2f} s, peak {r['vm_hwm_kb'] / 1024:.0f} MB, "
                        f"failed {r['failed']}")
            out["sizes"][str(n)] = {
                mode: {"connect_all_s": summary([r["connect_all_s"] for r in rs]),
                       "connect_all_cpu_s": summary([r["connect_all_cpu_s"] for r in rs]),
                       "session_init_s": summary([r["session_init_s"] for r in rs]),
                       "warm_s": summary([w for r in rs for w in r["warm_s"]]),
                       "peak_rss_mb": summary([r["vm_hwm_kb"] / 1024 for r in rs]),
                       "rss_before_mb": summary([r["rss_before_kb"] / 1024 for r in rs]),
                       "failed_hosts": sum(max(0, r["failed"]) for r in rs),
                       "runs": rs}
                for mode, rs in runs.items()}
        if args.peers_sizes:  # the same estate, every peer, one repetition (ansible at 1,000: minutes per run)
            sizes_p = ",".join(str(min(int(x), estate)) for x in args.peers_sizes.split(","))
            one = ",".join(f"{x}:1" for x in sizes_p.split(","))
            wait_quiet(limit=30)
            done = subprocess.run([sys.executable, str(Path(__file__).parent / "fanout.py"), "--env", str(env),
                                   "--sizes", sizes_p, "--reps", "1", "--warm", "1", "--ansible-reps", one,
                                   "--mitogen-reps", one, "--pyinfra-reps", one, "--no-ping", "--out", "fanout-big"])
            out["fanout_big_rc"] = done.returncode
    finally:
        try:
            out["lab_down_s"] = lab("down", env)
        finally:
            restore_arp_table()
    if estate < 1000:  # say what 1,000 would take, from the largest two sizes measured (linear)
        a, b = (out["sizes"][str(s)]["ours"] for s in sizes[-2:]) if len(sizes) > 1 else (None, None)
        if a and b:
            na, nb = sizes[-2], sizes[-1]
            slope_t = (b["connect_all_s"]["median"] - a["connect_all_s"]["median"]) / (nb - na)
            slope_m = (b["peak_rss_mb"]["median"] - a["peak_rss_mb"]["median"]) / (nb - na)
            out["extrapolated_1000"] = {
                "connect_all_s": b["connect_all_s"]["median"] + slope_t * (1000 - nb),
                "peak_rss_mb": b["peak_rss_mb"]["median"] + slope_m * (1000 - nb),
                "from_sizes": [na, nb]}
    out["loadavg_end"] = loadavg()
    log(f"wrote {write_result(args.out, out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
