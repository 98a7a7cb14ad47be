#!/usr/bin/env python3
"""Where a converged seed deploy's time goes, step by step: wall time, the controller's CPU
(this process, all threads) and the CPU the 9 web hosts spent (every process of each host's PID
namespace: sshd, the shell, the agent's python3 and what it runs, reaped children included).

    flock /tmp/orch-lab.lock bench/.venv/bin/python bench/profile_deploy.py

The lab's hosts share the machine's cores with the controller, so when controller + hosts CPU
is close to (cores x wall), the step is bound by CPU spent on the hosts, not by the
orchestration. Leaves the web hosts reset (image state).
"""
from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

from lib import RESULTS, log, machine
from deploy import NEW, PACKAGE, direct_apt

from orchestrator_lib.controller.discovery import Filter
from orchestrator_lib.controller.inventory import load_inventory
from orchestrator_lib.lab.estate import Lab
from orchestrator_lib.controller.session import Session

TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu(root: int) -> float:
    """CPU seconds of `root` and all its live descendants, with their reaped children's."""
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry), int(fields[1])
        stats[pid] = fields
        children.setdefault(ppid, []).append(pid)
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        f = stats.get(pid)
        if f:
            total += sum(int(x) for x in f[11:15])  # utime stime cutime cstime
        todo += children.get(pid, [])
    return total / TICK


def self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> int:
    lab = Lab(load_inventory("local"))
    was_up = lab.is_up()
    if not was_up:  # a lab found down is brought up, and taken down again at the end
        lab.up(progress=lambda m: log(m))
    web = [h for h in lab.hosts if lab.role(h) == "web"]
    names = [h.name for h in web]
    lb_address = next(h.address for h in lab.hosts if lab.role(h) == "lb")
    lab.reset(names)
    direct_apt(lab, names)  # converged: the wanted version is there already
    roots = [lab._running_pid(h) for h in web]

    def hosts_cpu() -> float:
        return sum(tree_cpu(pid) for pid in roots if pid)

    rows = []
    try:
        for rep in range(3):
            s = Session("local")
            hosts = s.select(Filter(classes=("roles::web",)))
            steps = [("connect (echo)", lambda: s.shell(hosts, "true")),
                     ("discover: rpcutil#ping", lambda: s.discover(Filter(classes=("roles::web",)), live=True)),
                     ("firewall#block", lambda: s.call(hosts, "firewall", "block", {"source": lb_address})),
                     ("package#update (no-op)", lambda: s.call(hosts, "package", "update", {"name": PACKAGE, "version": NEW})),
                     ("package#status", lambda: s.call(hosts, "package", "status", {"name": PACKAGE})),
                     ("firewall#unblock", lambda: s.call(hosts, "firewall", "unblock", {"source": lb_address})),
                     ("shell `true` (warm, for scale)", lambda: s.shell(hosts, "true"))]
            for name, fn in steps:
                h = hosts_cpu()  # outside the window: walking /proc costs the controller ~40 ms
                t, c = time.perf_counter(), self_cpu()
                fn()
                wall, ctl = time.perf_counter() - t, self_cpu() - c
                rows.append({"rep": rep, "step": name, "wall": wall, "controller_cpu": ctl, "hosts_cpu": hosts_cpu() - h})
            s.close()
            seq = [r for r in rows if r["rep"] == rep and r["step"] != steps[-1][0]]
            rows.append({"rep": rep, "step": "the converged sequence (sum of the steps above)",
                         **{k: sum(r[k] for r in seq) for k in ("wall", "controller_cpu", "hosts_cpu")}})
    finally:
        lab.reset(names)
        if not was_up:
            lab.down(progress=lambda m: log(m))
    table: dict[str, dict[str, float]] = {}
    for step in dict.fromkeys(r["step"] for r in rows):
        rs = [r for r in rows if r["step"] == step]
        table[step] = {k: sorted(r[k] for r in rs)[len(rs) // 2] for k in ("wall", "controller_cpu", "hosts_cpu")}
    print(f"{'step':34s} {'wall':>7s} {'ctl CPU':>8s} {'hosts CPU':>10s} {'per host':>9s}")
    for step, v in table.items():
        print(f"{step:34s} {v['wall']:7.3f} {v['controller_cpu']:8.3f} {v['hosts_cpu']:10.3f} {v['hosts_cpu'] / len(web) * 1000:7.0f}ms")
    out = {"benchmark": "profile_deploy", "machine": machine(), "hosts": names, "median_by_step": table, "rows": rows}
    (RESULTS / "profile_deploy.json").write_text(json.dumps(out, indent=1) + "\n")
    log("wrote bench/results/profile_deploy.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
