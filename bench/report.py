#!/usr/bin/env python3
"""Write the figures of bench/results/*.json into BENCHMARKS.md (between the generated markers;
text outside them is kept), with the ratios to each peer and the targets met or missed."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from lib import REPO, RESULTS

OUT = REPO / "BENCHMARKS.md"
START, END = "<!-- generated:start (bench/report.py) -->", "<!-- generated:end -->"


def load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def med(d: dict | None, key: str) -> float | None:
    if not d or key not in d or not d[key].get("n"):
        return None
    return d[key]["median"]


def s(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def ratio(a: float | None, b: float | None) -> str:
    return "–" if a is None or b is None or b == 0 else f"{a / b:.2f}x"


def verdict(ok: bool | None) -> str:
    return "–" if ok is None else ("**met**" if ok else "**missed**")


def machine_section(m: dict, runs: list[dict]) -> list[str]:
    parts = "; ".join(f"`{x['command'].replace(str(REPO) + '/', '')}` at {x['machine']['date']} (repo at "
                      f"{x['machine']['git_commit']}, load average {x['loadavg_start'][0]:.0f} -> {x['loadavg_end'][0]:.0f})"
                      for x in runs)
    return [
        f"Measured {m['date']} on this project's machine: {m['nproc']} cores, {m['memory_gib']} GiB, "
        f"{m['os']}, kernel {m['kernel']}, Python {m['python']}, paramiko {m['paramiko']}, "
        f"cryptography {m['cryptography']}, ansible-core {m['ansible_core']}, fabric {m['fabric']} "
        f"(invoke {m['invoke']}), {m['openssh_client']}, openssh-server {m['openssh_server']}; "
        f"repo at {m['git_commit']}.",
        "",
        "Produced by `bench/run` (as root; `bench/run fanout|deploy|scale|report` for one part), which ran: "
        + parts + ". The machine was shared with colleagues' test runs (see the load averages): every "
        "comparison below is between peers interleaved in the same run.",
        "",
    ]


def fanout_section(f: dict) -> tuple[list[str], list[tuple[str, str, str, bool | None]]]:
    lines = ["### 1. Trivial action on N lab hosts (median seconds)", "",
             f"Estate: {f['env']} (plain lab hosts: sshd only). Cold = new connections + run; warm = on open "
             f"connections. {f['reps']} cold runs per peer and size (ansible and rpcutil#ping fewer at large N, "
             f"see `n`), {f['warm_per_cold']} warm runs after each cold one; peers interleaved, order rotated "
             "per repetition. *ours* = `Session(env).shell(hosts, 'echo ok')` in-process (Session creation "
             "included); *ours as a process* = a fresh `python3 -c` doing the same (the way ansible is timed). "
             "The lab's hosts share the controller's 2 cores: sshd's work on the hosts is in every figure.", "",
             "`echo ok`:", "",
             "| N | ours cold | ours cold, as a process | raw paramiko cold | Fabric cold | ansible cold | ours warm | raw paramiko warm | Fabric warm | ansible warm |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n, d in f["sizes"].items():
        lines.append(f"| {n} | {s(med(d, 'ours_echo_cold'))} | {s(med(d, 'ours_echo_cold_process'))} | "
                     f"{s(med(d, 'raw_echo_cold'))} | {s(med(d, 'fabric_echo_cold'))} | {s(med(d, 'ansible_echo_cold'), 2)} "
                     f"(n={d.get('ansible_echo_cold', {}).get('n', 0)}) | {s(med(d, 'ours_echo_warm'))} | "
                     f"{s(med(d, 'raw_echo_warm'))} | {s(med(d, 'fabric_echo_warm'))} | {s(med(d, 'ansible_echo_warm'), 2)} |")
    lines += ["", "Ratios (ours ÷ peer: below 1 is faster than the peer; ansible ÷ ours: how many times faster we are):", "",
              "| N | cold: ours/raw | cold: ours/Fabric | cold: ansible/ours | cold: ansible/ours-as-process | warm: ours/raw | warm: ours/Fabric | warm: ansible/ours |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n, d in f["sizes"].items():
        oc, ow = med(d, "ours_echo_cold"), med(d, "ours_echo_warm")
        lines.append(f"| {n} | {ratio(oc, med(d, 'raw_echo_cold'))} | {ratio(oc, med(d, 'fabric_echo_cold'))} | "
                     f"{ratio(med(d, 'ansible_echo_cold'), oc)} | {ratio(med(d, 'ansible_echo_cold'), med(d, 'ours_echo_cold_process'))} | "
                     f"{ratio(ow, med(d, 'raw_echo_warm'))} | {ratio(ow, med(d, 'fabric_echo_warm'))} | "
                     f"{ratio(med(d, 'ansible_echo_warm'), ow)} |")
    lines += ["", "`rpcutil#ping`, our agent call. Since 25e7377 a Session keeps one resident agent per host "
              "(`python3 agent/__main__.py --serve` in one SSH session; a call = one JSON request line, one reply "
              "line). Floors: *raw resident* = raw paramiko threads with one session per host running the same "
              "`--serve` command, one line out and one line in (the floor for this design); *raw one-shot* = raw "
              "paramiko threads exec'ing the agent once per call, request on stdin (the design before 25e7377). "
              "Cold = connect + start the agent + call; warm = another call.", "",
              "| N | ours cold | raw resident cold | ours/raw resident | raw one-shot cold | ours warm | raw resident warm | ours/raw resident | raw one-shot warm |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n, d in f["sizes"].items():
        oc, ow = med(d, "ours_ping_cold"), med(d, "ours_ping_warm")
        rc, rw = med(d, "raw_resident_ping_cold"), med(d, "raw_resident_ping_warm")
        lines.append(f"| {n} | {s(oc)} | {s(rc)} | {ratio(oc, rc)} | {s(med(d, 'raw_ping_cold'))} | {s(ow)} | "
                     f"{s(rw)} | {ratio(ow, rw)} | {s(med(d, 'raw_ping_warm'))} |")
    first = f.get("first_call_with_agent_upload")
    if first:
        lines += ["", f"First call after `lab up` (agent uploaded by SFTP, then run): {first['seconds']:.2f} s on "
                  f"{first['hosts']} hosts (once)."]
    lines.append("")
    targets = []
    big = f["sizes"].get("100")
    if big:
        ow, rw, oc, rc = (med(big, k) for k in ("ours_echo_warm", "raw_echo_warm", "ours_echo_cold", "raw_echo_cold"))
        fc, fw, ac = med(big, "fabric_echo_cold"), med(big, "fabric_echo_warm"), med(big, "ansible_echo_cold")
        targets.append(("warm fan-out to 100 hosts within 1.3x of raw paramiko", "≤ 1.30x",
                        ratio(ow, rw), None if ow is None or rw is None else ow / rw <= 1.3))
        targets.append(("cold fan-out to 100 hosts within 1.3x of raw paramiko", "≤ 1.30x",
                        ratio(oc, rc), None if oc is None or rc is None else oc / rc <= 1.3))
        targets.append(("cold fan-out to 100 hosts at least 15x faster than ansible-core", "≥ 15x",
                        ratio(ac, oc), None if ac is None or oc is None else ac / oc >= 15))
        targets.append(("faster than Fabric (100 hosts, cold)", "< 1.00x", ratio(oc, fc),
                        None if oc is None or fc is None else oc < fc))
        targets.append(("faster than Fabric (100 hosts, warm)", "< 1.00x", ratio(ow, fw),
                        None if ow is None or fw is None else ow < fw))
    return lines, targets


def deploy_section(d: dict) -> tuple[list[str], list[tuple[str, str, str, bool | None]]]:
    r = d["results"]
    cold, conv = r["session_cold"], r["session_converged"]
    apt = r["apt_parallel_web"]["median"]
    fh = d.get("feature_hosts") or []
    lines = ["### 2. Seed deploy on the default lab (median seconds)", ""]
    if d.get("todo"):
        lines += [f"**TODO**: {d['todo']}", ""]
    lines += [f"{cold['total']['n']} runs of each, interleaved, each from freshly reset web hosts (`lab reset`: "
              "mywebapp 4.2.5-1.el5, and no agent on the hosts yet, so the first call uploads it).", "",
              f"**a) The sequence through `Session`, on the 9 web hosts** (in-process, new Session, so it connects): "
              "discover `roles::web` with a live ping, firewall#block the LB, package#update mywebapp "
              "4.2.6-3.el5, package#status, firewall#unblock. *Package manager alone* = `apt-get install` of the "
              "same version with the package agent's options, run directly inside the 9 hosts at once (nsenter: "
              "no SSH, no agent).", "",
              "| step | cold deploy | converged re-run |", "|---|---:|---:|"]
    for step in ("discover", "block", "update", "status", "unblock", "total"):
        lines.append(f"| {step} | {s(cold[step]['median'])} | {s(conv[step]['median'])} |")
    lines += ["", f"- package manager alone, 9 hosts at once: **{apt:.3f} s**"
              + (f" (one host alone: {r['apt_single_host']['median']:.3f} s)" if r.get("apt_single_host") else ""),
              f"- orchestration overhead of the cold deploy = {cold['total']['median']:.3f} - {apt:.3f} = "
              f"**{r['overhead_session_cold']:.3f} s**",
              f"- converged re-run (nothing left to change; the LB is still blocked and unblocked): "
              f"**{conv['total']['median']:.3f} s**"]
    ad = r["agent_durations_cold"][0] if r.get("agent_durations_cold") else {}
    if ad:
        lines += ["- the agents' own time per action, cold (host audit log, max over hosts, first run): " +
                  ", ".join(f"{k} {v['max']:.3f} s" for k, v in ad.items())]
    lines.append("")
    targets = [("seed deploy (Session, 9 hosts): orchestration overhead on top of the package installs", "≤ 1.5 s",
                f"{r['overhead_session_cold']:.2f} s", r["overhead_session_cold"] <= 1.5),
               ("seed deploy (Session, 9 hosts): converged re-run", "≤ 0.5 s", f"{conv['total']['median']:.2f} s",
                conv["total"]["median"] <= 0.5)]
    if "behave_cold" in r:
        b, bc = r["behave_cold"]["median"], r.get("behave_converged", {}).get("median")
        apt_f, rst = r["apt_parallel_feature"]["median"], r["restart_parallel_feature"]["median"]
        down, up = r["lb_detect_down"]["median"], r["lb_detect_up"]["median"]
        lines += [f"**b) `behave features/deploy_webapp.feature`**, as a process (Python and behave start-up "
                  f"included). The feature's Background selects roles::web AND country=de: {len(fh)} hosts "
                  f"({', '.join(fh)}), not 9. Besides block/update/unblock it restarts the app (unless it already "
                  "reports the version) and waits for HAProxy to see the hosts DOWN after the block and UP after "
                  "the unblock. What it waits for that is not orchestration, each measured directly inside the "
                  "same hosts, all at once (nsenter):", "",
                  "| | cold deploy | converged re-run |", "|---|---:|---:|",
                  f"| behave, total | {b:.3f} | {s(bc)} |",
                  f"| apt-get install alone | {apt_f:.3f} | – |",
                  f"| `sv -w 30 restart mywebapp` until /health answers | {rst:.3f} | – |",
                  f"| HAProxy notices the block (the agent's REJECT pair; lab checks: inter 250 ms, fastinter 100 ms, fall 2; median of {r['lb_detect_down'].get('n', '?')}) | {down:.3f} | {down:.3f} |",
                  f"| HAProxy notices the unblock (downinter 100 ms, rise 1) | {up:.3f} | {up:.3f} |",
                  f"| **orchestration overhead = total - the above** | **{r['behave_overhead_cold']:.3f}** | "
                  f"**{s(r.get('behave_overhead_converged'))}** |",
                  f"| overhead counting the package manager only (total - apt) | {r['behave_overhead_vs_apt']:.3f} | {s(bc)} |",
                  ""]
        targets += [("seed deploy (behave, 4 hosts): overhead on top of apt, restart and HAProxy's own detection", "≤ 1.5 s",
                     f"{r['behave_overhead_cold']:.2f} s", r["behave_overhead_cold"] <= 1.5),
                    ("seed deploy (behave, 4 hosts): overhead on top of apt only", "≤ 1.5 s",
                     f"{r['behave_overhead_vs_apt']:.2f} s", r["behave_overhead_vs_apt"] <= 1.5)]
        if bc is not None:
            targets += [("seed deploy (behave): converged re-run, as measured", "≤ 0.5 s", f"{bc:.2f} s", bc <= 0.5),
                        ("seed deploy (behave): converged re-run less HAProxy's own detection", "≤ 0.5 s",
                         f"{r['behave_overhead_converged']:.2f} s", r["behave_overhead_converged"] <= 0.5)]
    if r.get("behave_errors"):
        lines += ["behave did not pass in this run: " + r["behave_errors"][0].splitlines()[-1][:300], ""]
    return lines, targets


def scale_section(sc: dict) -> tuple[list[str], list[tuple[str, str, str, bool | None]]]:
    lines = ["### 3. Fan-out at scale: connect-all and controller memory", "",
             f"Estate of {sc['estate_hosts']} plain lab hosts (wanted {sc['wanted_hosts']}): up in "
             f"{sc.get('lab_up_s', 0):.0f} s, down in {sc.get('lab_down_s', 0):.0f} s, "
             f"~{sc.get('estate_mem_mb', 0)} MB of RAM ({sc.get('estate_mem_mb_per_host', 0)} MB per host). "
             "Each figure from a process of its own (`bench/scale_probe.py`), ours and raw paramiko alternating, "
             "each after the machine settled. Connect-all = cold `echo ok` to every host (TCP connect, key "
             "exchange, host key check, ed25519 auth, one exec), Session creation (inventory and known_hosts "
             "parsing) included; both with 64 worker threads (ours: Session's default). Peak = the process's "
             "VmHWM; controller CPU = its user+sys time during connect-all.", ""]
    if sc.get("arp_gc_thresh_raised_from"):
        lines += ["The machine's ARP table (one for all namespaces, ~2 entries per lab host) was raised for the "
                  f"run from gc_thresh3={sc['arp_gc_thresh_raised_from'].get('net.ipv4.neigh.default.gc_thresh3')} "
                  "and put back afterwards: at the default 1024, hosts past ~500 are 'no route to host'.", ""]
    lines += ["| N | ours connect-all | raw connect-all | ratio | ours controller CPU | ours warm | raw warm | ratio | ours peak RSS | raw peak RSS | RSS before connecting |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    targets = []
    for n, d in sc["sizes"].items():
        o, w = d["ours"], d["raw"]
        lines.append(f"| {n} | {o['connect_all_s']['median']:.2f} s | {w['connect_all_s']['median']:.2f} s | "
                     f"{ratio(o['connect_all_s']['median'], w['connect_all_s']['median'])} | "
                     f"{o['connect_all_cpu_s']['median']:.1f} s | {o['warm_s']['median']:.2f} s | {w['warm_s']['median']:.2f} s | "
                     f"{ratio(o['warm_s']['median'], w['warm_s']['median'])} | {o['peak_rss_mb']['median']:.0f} MB | "
                     f"{w['peak_rss_mb']['median']:.0f} MB | {o['rss_before_mb']['median']:.0f} MB |")
        if o["failed_hosts"] or w["failed_hosts"]:
            lines.append(f"|  | failed hosts: ours {o['failed_hosts']}, raw {w['failed_hosts']} | | | | | | | | | |")
    lines.append("")
    top = sc["sizes"].get("1000")
    if top:
        t, m = top["ours"]["connect_all_s"]["median"], top["ours"]["peak_rss_mb"]["median"]
        targets += [("1,000 hosts: connect-all", "≤ 15 s", f"{t:.1f} s", t <= 15),
                    ("1,000 hosts: controller peak memory", "< 400 MB", f"{m:.0f} MB", m < 400)]
    elif sc.get("extrapolated_1000"):
        e = sc["extrapolated_1000"]
        lines += [f"Extrapolated to 1,000 hosts (linear from {e['from_sizes']}): connect-all {e['connect_all_s']:.1f} s, "
                  f"peak {e['peak_rss_mb']:.0f} MB.", ""]
        targets += [("1,000 hosts (extrapolated): connect-all", "≤ 15 s", f"{e['connect_all_s']:.1f} s", e["connect_all_s"] <= 15),
                    ("1,000 hosts (extrapolated): controller peak memory", "< 400 MB", f"{e['peak_rss_mb']:.0f} MB", e["peak_rss_mb"] < 400)]
    return lines, targets


def main() -> int:
    f, d, sc = load("fanout"), load("deploy"), load("scale")
    found = [x for x in (f, d, sc) if x]
    if not found:
        print("report: no results in bench/results/", file=sys.stderr)
        return 1
    body: list[str] = [START, "", "## Figures", ""]
    body += machine_section(found[0]["machine"], found)
    targets: list = []
    for data, section in ((f, fanout_section), (d, deploy_section), (sc, scale_section)):
        if data:
            lines, t = section(data)
            body += lines
            targets += t
    body += ["### Targets", "", "| target | wanted | measured | |", "|---|---|---|---|"]
    body += [f"| {name} | {want} | {got} | {verdict(ok)} |" for name, want, got, ok in targets]
    body += ["", "Raw results (every sample, load averages, the machine): `bench/results/*.json`.", "", END]
    generated = "\n".join(body)
    if OUT.exists() and START in OUT.read_text() and END in OUT.read_text():
        text = OUT.read_text()
        before, rest = text.split(START, 1)
        after = rest.split(END, 1)[1]
        text = before + generated + after
    else:
        text = "# Benchmarks\n\n" + generated + "\n"
    OUT.write_text(text)
    print(f"report: wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
