#!/usr/bin/env python3
"""Benchmark: the first call on N hosts that have no agent yet, ours against the floor for the design.

    bench/.venv/bin/python bench/first_contact.py --env bench/envs/bench-100.yaml --sizes 1,10,100 --reps 5

Before every run the agent is removed from the hosts (`rm -rf /var/lib/orchestrator` over raw
paramiko, connections closed, machine settled), so each run meets hosts with no agent.
- ours: a new Session (connect, host keys checked) and `rpcutil#ping` on every host: the serve
  session exits 111, then one session receives the zipapp on stdin, installs it (hash checked,
  unpacked, compiled, pinned: rpc.INSTALL_SCRIPT) and serves the call (since this round; before it:
  mkdir, SFTP upload, install exec, serve session).
- floor: raw paramiko threads (lib.RawParamiko: host key checked) doing the least this design needs:
  one session per host running the same install-then-serve command, the zipapp and the request
  written at once, one reply line read. Same install work on the host (the design installs the
  agent compiled, once per version); no 111 round trip, no Session.
Peers alternate, order rotated per repetition; each run's samples and the ratio's spread go to
bench/results/first_contact.json.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from lib import RawParamiko, check_all, loadavg, log, machine, summary, timed, wait_quiet, write_result

from orchestrator_lib.controller.inventory import load_inventory
from orchestrator_lib.controller.orchestration import Status
from orchestrator_lib.controller.session import Session
from orchestrator_lib.controller.transports import ssh_agent as rpc
from orchestrator_lib.host.build import agent_archive
from orchestrator_lib.protocol import Request


def remove_agents(inventory, hosts) -> None:
    raw = RawParamiko(inventory)
    try:
        check_all("rm agent", raw.run(hosts, f"rm -rf {rpc.AGENT_DIR}", workers=64), expect=b"")
    finally:
        raw.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--env", default=str(Path(__file__).parent / "envs" / "bench-100.yaml"))
    ap.add_argument("--sizes", default="1,10,100")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", default="first_contact")
    args = ap.parse_args()
    env = str(Path(args.env).resolve())
    inventory = load_inventory(env)
    all_hosts = list(inventory.hosts.values())
    data, sha = agent_archive()
    command = rpc.install_command(sha, serve=True)
    out: dict = {"benchmark": "first_contact", "machine": machine(), "env": Path(env).name,
                 "command": " ".join(sys.argv), "reps": args.reps, "agent_bytes": len(data),
                 "loadavg_start": loadavg(), "sizes": {}}

    for n in [int(s) for s in args.sizes.split(",")]:
        hosts = all_hosts[:n]
        samples: dict[str, list[float]] = {"ours": [], "floor": []}

        def ours() -> float:
            holder = {}

            def run():
                holder["s"] = Session(env)
                return holder["s"].call(hosts, "rpcutil", "ping")
            t, r = timed(run)
            holder["s"].close()
            bad = [x for x in r.results.values() if x.status is not Status.OK]
            if bad or len(r.results) != n:
                raise RuntimeError(f"ours: {r.tally()}: {bad[0].message if bad else ''}")
            return t

        def floor() -> float:
            raw = RawParamiko(inventory)
            request = Request("rpcutil", "ping", reqid=rpc.new_reqid(), caller="bench@controller").encode()
            payload = rpc.install_input(data) + request + b"\n"

            def one(host):
                try:
                    t = raw.connect(host)
                    chan = t.open_session(timeout=30)
                    chan.settimeout(120)
                    chan.exec_command(command)
                    chan.sendall(payload)
                    buf = b""
                    while b"\n" not in buf:
                        chunk = chan.recv(65536)
                        if not chunk:
                            return -1, f"{host.name}: closed: {chan.recv_stderr(4096)!r}".encode()
                        buf += chunk
                    chan.close()
                    line = buf.partition(b"\n")[0]
                    return (0 if json.loads(line).get("status") == "ok" else 1), line
                except Exception as err:
                    return -1, f"{host.name}: {type(err).__name__}: {err}".encode()

            from concurrent.futures import ThreadPoolExecutor

            def run():
                with ThreadPoolExecutor(max_workers=min(64, n)) as pool:  # ours: 64 workers too
                    return list(pool.map(one, hosts))
            t, v = timed(run)
            raw.close()
            check_all("floor", v, expect=None)
            return t

        peers = [("ours", ours), ("floor", floor)]
        started = time.monotonic()
        for rep in range(args.reps):
            k = rep % len(peers)
            for name, fn in peers[k:] + peers[:k]:
                remove_agents(inventory, hosts)
                wait_quiet(max_busy=0.35, window=0.5, limit=5)
                samples[name].append(fn())
            log(f"first contact n={n} rep {rep + 1}/{args.reps}: ours {samples['ours'][-1]:.3f} s, "
                f"floor {samples['floor'][-1]:.3f} s")
        # ratios pair by pair (same repetition), so the spread is of the ratio itself
        ratios = [o / f for o, f in zip(samples["ours"], samples["floor"])]
        out["sizes"][str(n)] = {"ours": summary(samples["ours"]), "floor": summary(samples["floor"]),
                                "ratio": summary(ratios), "wall_seconds": round(time.monotonic() - started, 1)}
        r = out["sizes"][str(n)]
        log(f"first contact n={n}: ours {r['ours']['median']:.3f} s, floor {r['floor']['median']:.3f} s, "
            f"ratio {r['ratio']['median']:.2f}x ({r['ratio']['min']:.2f}-{r['ratio']['max']:.2f})")
    out["loadavg_end"] = loadavg()
    log(f"wrote {write_result(args.out, out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
