#!/usr/bin/env python3
"""Benchmark 1: a trivial action on N lab hosts, ours against the peers, interleaved.

    bench/.venv/bin/python bench/fanout.py --env bench/envs/bench-100.yaml --sizes 1,10,50,100

Each repetition runs every peer once, in an order rotated per repetition, so a noisy machine
weighs on all of them alike; before each peer the machine gets up to 5 s to settle (the hosts
tear down the previous peer's sessions). A peer's cold run opens its connections and runs the command; its
warm runs follow on the connections it left open; then it closes everything before the next
peer starts.

`echo ok`: ours (Session.shell, new Session each cold run; also as a fresh Python process, the
way ansible is timed), raw paramiko threads (the floor), Fabric ThreadingGroup, ansible-core
ad-hoc (command module, pipelining + ControlPersist, forks = N), ansible-core + Mitogen (the same
ad-hoc run with strategy mitogen_linear), pyinfra (`pyinfra INV exec -- echo ok`). ansible, Mitogen
and pyinfra are processes (as their users run them); their "warm" run is the second process run
right after the first: ansible's ControlPersist masters are still up then, while Mitogen and pyinfra
keep nothing between processes, so theirs is a second cold start.
rpcutil#ping: ours (Session.call: a resident agent per host, `--serve`, since 25e7377) against
two floors: raw paramiko threads with one session per host running the same `agent --serve`
command, one request line and one reply line per call (the floor for our design), and raw
paramiko threads running the one-shot agent command per call (request on stdin, as before the
resident agent).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from lib import (AnsiblePeer, FabricPeer, MitogenPeer, PyinfraPeer, RawParamiko, RawResident, check_all, loadavg,
                 bytecode_env, log, machine, summary, timed, wait_quiet, write_result)

from orchestrator_lib.controller.transports import ssh_agent as rpc
from orchestrator_lib.host.build import agent_archive
from orchestrator_lib.controller.inventory import load_inventory
from orchestrator_lib.controller.orchestration import Status
from orchestrator_lib.controller.session import Session
from orchestrator_lib.protocol import Request

PROCESS_SCRIPT = """
import sys
from orchestrator_lib.controller.session import Session
with Session(sys.argv[1]) as s:
    hosts = list(s.inventory.hosts.values())[:int(sys.argv[2])]
    r = s.shell(hosts, "echo ok")
    sys.exit(0 if all(x.status.value == "ok" and x.stdout == "ok\\n" for x in r.results.values()) else 1)
"""


def ours_ok(result, n: int, expect_stdout: str | None = "ok\n") -> None:
    bad = [r for r in result.results.values()
           if r.status not in (Status.OK, Status.CHANGED) or (expect_stdout is not None and r.stdout != expect_stdout)]
    if bad or len(result.results) != n:
        raise RuntimeError(f"ours: {result.tally()}: {bad[0].message if bad else ''}")


#: raw paramiko's threads past 100 hosts (Session's default too)
BIG_WORKERS = 64


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--env", default=str(Path(__file__).parent / "envs" / "bench-100.yaml"))
    ap.add_argument("--sizes", default="1,10,50,100")
    ap.add_argument("--reps", type=int, default=5, help="cold runs per peer and size")
    ap.add_argument("--warm", type=int, default=3, help="warm runs after each cold run")
    ap.add_argument("--ansible-reps", default="1:3,10:3,50:3,100:2", help="size:reps for ansible")
    ap.add_argument("--ping-reps", default="1:5,10:5,50:3,100:3", help="size:reps for rpcutil#ping")
    ap.add_argument("--mitogen-reps", default="1:3,10:3,50:3,100:3", help="size:reps for ansible + Mitogen")
    ap.add_argument("--pyinfra-reps", default="1:3,10:3,50:3,100:3", help="size:reps for pyinfra")
    ap.add_argument("--no-ansible", action="store_true")
    ap.add_argument("--no-mitogen", action="store_true")
    ap.add_argument("--no-pyinfra", action="store_true")
    ap.add_argument("--no-ping", action="store_true", help="leave out rpcutil#ping")
    ap.add_argument("--no-fabric", action="store_true")
    ap.add_argument("--ping-warm", type=int, default=20,
                    help="warm rpcutil#ping calls per cold one, ours and the raw resident floor alternating")
    ap.add_argument("--out", default="fanout")
    args = ap.parse_args()

    env = str(Path(args.env).resolve())
    inventory = load_inventory(env)
    all_hosts = list(inventory.hosts.values())
    sizes = [int(s) for s in args.sizes.split(",")]
    if max(sizes) > len(all_hosts):
        raise SystemExit(f"{env} has {len(all_hosts)} hosts, fewer than {max(sizes)}")
    ansible_reps = {int(k): int(v) for k, v in (p.split(":") for p in args.ansible_reps.split(","))}
    ping_reps = {int(k): int(v) for k, v in (p.split(":") for p in args.ping_reps.split(","))}
    mitogen_reps = {int(k): int(v) for k, v in (p.split(":") for p in args.mitogen_reps.split(","))}
    pyinfra_reps = {int(k): int(v) for k, v in (p.split(":") for p in args.pyinfra_reps.split(","))}
    data, sha = agent_archive()
    agent_cmd = rpc.agent_command(sha)

    out: dict = {"benchmark": "fanout", "machine": machine(), "env": Path(env).name,
                 "command": " ".join(sys.argv), "reps": args.reps, "warm_per_cold": args.warm, "ping_warm": args.ping_warm,
                 "loadavg_start": loadavg(), "sizes": {}}

    # The agent is uploaded on a host's first call (by content hash) and stays there: prime it
    # once, timed for information, so the measured calls are the steady state.
    with Session(env) as s:
        t, r = timed(lambda: s.call(all_hosts[:max(sizes)], "rpcutil", "ping"))
        missed = [h for h in all_hosts[:max(sizes)] if not r.results[h.name].ok]
        if missed:  # 1,000 handshakes and installs at once on 2 cores: a few may time out; prime those again
            log(f"priming: {len(missed)} hosts did not answer ({r.tally()}); once more for them")
            out["priming_missed"] = [h.name for h in missed]
            ours_ok(s.call(missed, "rpcutil", "ping"), len(missed), None)
        else:
            ours_ok(r, max(sizes), None)
        out["first_call_with_agent_upload"] = {"hosts": max(sizes), "seconds": t, "missed": len(missed),
                                               "note": "first rpcutil#ping after `lab up`: connect + agent install + call"}
        log(f"primed the agent on {max(sizes)} hosts in {t:.2f} s")

    ansible = None if args.no_ansible else AnsiblePeer(inventory, "fanout")
    mitogen = None if args.no_mitogen else MitogenPeer(inventory, "fanout")
    pyinfra = None if args.no_pyinfra else PyinfraPeer(inventory, "fanout")
    for n in sizes:
        hosts = all_hosts[:n]
        samples: dict[str, list[float]] = {}

        def add(name: str, value: float) -> None:
            samples.setdefault(name, []).append(value)

        request = Request("rpcutil", "ping", reqid=rpc.new_reqid(), caller="bench@controller").encode()

        def ours_echo() -> None:
            holder = {}

            def cold():
                holder["s"] = Session(env)
                return holder["s"].shell(hosts, "echo ok")
            t, r = timed(cold)
            ours_ok(r, n)
            add("ours_echo_cold", t)
            s = holder["s"]
            assert s.pool.connects == n, s.pool.connects
            for _ in range(args.warm):
                t, r = timed(lambda: s.shell(hosts, "echo ok"))
                ours_ok(r, n)
                add("ours_echo_warm", t)
            assert s.pool.connects == n, s.pool.connects  # warm runs opened nothing new
            s.close()

        def ours_process() -> None:
            t, done = timed(lambda: subprocess.run([sys.executable, "-c", PROCESS_SCRIPT, env, str(n)],
                                                   capture_output=True, text=True, env=bytecode_env()))
            if done.returncode != 0:
                raise RuntimeError(f"ours (process): {done.stderr[-400:]}")
            add("ours_echo_cold_process", t)

        def raw_echo() -> None:
            raw = RawParamiko(inventory)
            # a thread per host up to 100 hosts; past that 64, as bench/scale_probe.py and Session
            # (1,000 handshakes at once on 2 cores miss paramiko's 10 s banner timeout)
            workers = None if n <= 100 else BIG_WORKERS
            t, v = timed(lambda: raw.run(hosts, "echo ok", workers=workers))
            check_all("raw", v)
            add("raw_echo_cold", t)
            for _ in range(args.warm):
                t, v = timed(lambda: raw.run(hosts, "echo ok", workers=workers))
                check_all("raw", v)
                add("raw_echo_warm", t)
            raw.close()

        def fabric_echo() -> None:
            holder = {}

            def cold():
                holder["f"] = FabricPeer(inventory, hosts)
                holder["f"].run("echo ok")
            t, _ = timed(cold)
            add("fabric_echo_cold", t)
            for _ in range(args.warm):
                t, _ = timed(lambda: holder["f"].run("echo ok"))
                add("fabric_echo_warm", t)
            holder["f"].close()

        def ansible_echo() -> None:
            assert ansible is not None and not ansible.masters()
            t, _ = timed(lambda: ansible.run(hosts))
            add("ansible_echo_cold", t)
            t, _ = timed(lambda: ansible.run(hosts))
            add("ansible_echo_warm", t)
            ansible.close()

        def mitogen_echo() -> None:
            assert mitogen is not None
            for kind in ("cold", "warm"):
                t, _ = timed(lambda: mitogen.run(hosts))
                add(f"mitogen_echo_{kind}", t)
            mitogen.close()

        def pyinfra_echo() -> None:
            assert pyinfra is not None
            for kind in ("cold", "warm"):
                t, _ = timed(lambda: pyinfra.run(hosts))
                add(f"pyinfra_echo_{kind}", t)

        def ping_pair(first: str):
            """ours and the raw resident floor side by side: both cold (`first` goes first), then
            --ping-warm warm calls each, alternating call by call (so a warm ratio is taken
            between neighbours in time: its spread is the pair's, not the machine's drift)."""
            def run() -> None:
                holder = {}

                def ours_cold():
                    holder["s"] = Session(env)
                    return holder["s"].call(hosts, "rpcutil", "ping")
                res = RawResident(RawParamiko(inventory), rpc.serve_command(sha))

                def check(v):
                    bad = [x for x in v if x[0] != 0 or json.loads(x[1]).get("status") != "ok"]
                    if bad:
                        raise RuntimeError(f"raw resident ping: {bad[0]!r}")

                def ours_warm():
                    t, r = timed(lambda: holder["s"].call(hosts, "rpcutil", "ping"))
                    ours_ok(r, n, None)
                    add("ours_ping_warm", t)

                def raw_warm():
                    t, v = timed(lambda: res.run(hosts, request))
                    check(v)
                    add("raw_resident_ping_warm", t)

                def ours_c():
                    t, r = timed(ours_cold)
                    ours_ok(r, n, None)
                    add("ours_ping_cold", t)

                def raw_c():
                    t, v = timed(lambda: res.run(hosts, request))
                    check(v)
                    add("raw_resident_ping_cold", t)
                colds = [ours_c, raw_c] if first == "ours" else [raw_c, ours_c]
                for fn in colds:
                    wait_quiet(max_busy=0.35, window=0.5, limit=5)
                    fn()
                warms = [ours_warm, raw_warm] if first == "ours" else [raw_warm, ours_warm]
                for i in range(args.ping_warm):
                    for fn in (warms if i % 2 == 0 else warms[::-1]):
                        fn()
                holder["s"].close()
                res.close()
            return run

        def raw_ping() -> None:
            raw = RawParamiko(inventory)

            def check(v):
                bad = [x for x in v if x[0] != 0 or json.loads(x[1]).get("status") != "ok"]
                if bad:
                    raise RuntimeError(f"raw agent ping: {bad[0]!r}")
            t, v = timed(lambda: raw.run(hosts, agent_cmd, request))
            check(v)
            add("raw_ping_cold", t)
            for _ in range(max(1, args.warm - 1)):
                t, v = timed(lambda: raw.run(hosts, agent_cmd, request))
                check(v)
                add("raw_ping_warm", t)
            raw.close()

        echo_peers = [("ours", ours_echo), ("ours-process", ours_process), ("raw", raw_echo)]
        if not args.no_fabric:
            echo_peers.append(("fabric", fabric_echo))
        started = time.monotonic()
        failures: dict[str, list[str]] = {}
        for rep in range(args.reps):
            peers = list(echo_peers)
            if ansible is not None and rep < ansible_reps.get(n, 1):
                peers.append(("ansible", ansible_echo))
            if mitogen is not None and rep < mitogen_reps.get(n, 1):
                peers.append(("mitogen", mitogen_echo))
            if pyinfra is not None and rep < pyinfra_reps.get(n, 1):
                peers.append(("pyinfra", pyinfra_echo))
            if not args.no_ping and rep < ping_reps.get(n, 3):
                peers += [("ping-pair", ping_pair("ours" if rep % 2 == 0 else "raw")), ("raw-ping", raw_ping)]
            k = rep % len(peers)
            for name, fn in peers[k:] + peers[:k]:  # rotate: nobody always goes first
                # let the hosts finish tearing down the previous peer's sessions (and the
                # machine settle) before a cold start, so no peer pays for another's
                wait_quiet(max_busy=0.35, window=0.5, limit=5)
                try:
                    fn()
                except Exception as err:  # one peer failing at this size: said, the others still measured
                    failures.setdefault(name, []).append(f"{type(err).__name__}: {err}"[:300])
                    log(f"n={n}: {name} failed: {err}")
            log(f"n={n} rep {rep + 1}/{args.reps} done")
        out["sizes"][str(n)] = {name: summary(v) for name, v in samples.items()}
        out["sizes"][str(n)]["wall_seconds"] = round(time.monotonic() - started, 1)
        if failures:
            out["sizes"][str(n)]["failures"] = dict(failures)
        med = {k: v["median"] for k, v in out["sizes"][str(n)].items() if isinstance(v, dict) and "median" in v}
        log(f"n={n}: " + ", ".join(f"{k} {v:.3f}" for k, v in sorted(med.items())))
    out["loadavg_end"] = loadavg()
    path = write_result(args.out, out)
    log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
