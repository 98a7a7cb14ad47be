#!/usr/bin/env python3
"""Write the figures of bench/results/*.json into BENCHMARKS.md (between the generated markers;
text outside them is kept), with the ratios to each peer and the targets met or missed."""
from __future__ import annotations

import json
import statistics
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


def samples(d: dict | None, key: str) -> list[float]:
    return list(d[key].get("samples", [])) if d and isinstance(d.get(key), dict) else []


def paired(d: dict | None, a: str, b: str) -> list[float]:
    """a/b sample by sample (same repetition, or neighbouring calls): the ratio's own spread."""
    return [x / y for x, y in zip(samples(d, a), samples(d, b)) if y]


def per_repetition(pairs: list[float], calls: int) -> list[float]:
    """The median of each repetition's `calls` paired ratios (the samples come repetition after
    repetition): a ratio per repetition, whose spread is the run-to-run one, not a single call's."""
    if calls <= 0:
        return []
    return [statistics.median(pairs[i:i + calls]) for i in range(0, len(pairs) - calls + 1, calls)]


def spread(xs: list[float]) -> dict | None:
    """median, min-max and (from 4 samples) the interquartile range."""
    if not xs:
        return None
    xs = sorted(xs)
    q1, q3 = (statistics.quantiles(xs, n=4, method="inclusive")[::2] if len(xs) >= 4 else (xs[0], xs[-1]))
    return {"n": len(xs), "median": statistics.median(xs), "min": xs[0], "max": xs[-1], "q1": q1, "q3": q3}


def faster_than_peer(r: dict) -> bool:
    """Faster: the upper quartile of the paired ratios below 1 (as the fan-out's targets), or every
    pair when there are too few for quartiles."""
    return r["q3"] < 1.0 if r["n"] >= 4 else r["max"] < 1.0


def rs(r: dict | None, invert: bool = False) -> str:
    """A ratio with its spread: `1.02x (IQR 0.98-1.05, 0.95-1.10, n=15)`."""
    if not r:
        return "–"
    f = (lambda x: 1 / x) if invert else (lambda x: x)
    lo, hi = sorted((f(r["q1"]), f(r["q3"])))
    mn, mx = sorted((f(r["min"]), f(r["max"])))
    iqr = f"IQR {lo:.2f}-{hi:.2f}, " if r["n"] >= 4 else ""
    return f"{f(r['median']):.2f}x ({iqr}{mn:.2f}-{mx:.2f}, n={r['n']})"


def chart(name: str) -> list[str]:
    path = REPO / "bench" / "charts" / f"{name}.png"
    return [f"![{name}](bench/charts/{name}.png)", ""] if path.exists() else []


def verdict(ok: bool | None) -> str:
    return "–" if ok is None else ("**met**" if ok else "**missed**")


def machine_section(m: dict, runs: list[dict]) -> list[str]:
    parts = "; ".join(f"`{x['command'].replace(str(REPO) + '/', '')}` at {x['machine']['date']} (repo at "
                      f"{x['machine']['git_commit']}, load average {x['loadavg_start'][0]:.0f} -> {x['loadavg_end'][0]:.0f})"
                      for x in runs)
    return [
        f"Measured {m['date']} on this project's machine: {m['nproc']} cores, {m['memory_gib']} GiB, "
        f"{m['os']}, kernel {m['kernel']}, Python {m['python']}, paramiko {m['paramiko']}, "
        f"cryptography {m['cryptography']}, ansible-core {m['ansible_core']}, mitogen {m.get('mitogen')}, "
        f"pyinfra {m.get('pyinfra')}, fabric {m['fabric']} "
        f"(invoke {m['invoke']}), {m['openssh_client']}, openssh-server {m['openssh_server']}; "
        f"repo at {m['git_commit']}.",
        "",
        "Produced by `bench/run` (as root; `bench/run fanout|deploy|scale|report` for one part), which ran: "
        + parts + ". The machine was shared with colleagues' test runs (see the load averages): every "
        "comparison below is between peers interleaved in the same run.",
        "",
    ]


ECHO = [("ours", "ours_echo"), ("ours, as a process", "ours_echo_cold_process"), ("raw paramiko", "raw_echo"),
        ("Fabric", "fabric_echo"), ("pyinfra", "pyinfra_echo"), ("ansible + Mitogen", "mitogen_echo"),
        ("ansible", "ansible_echo")]


def fanout_section(f: dict, big: dict | None = None) -> tuple[list[str], list[tuple[str, str, str, bool | None]]]:
    sizes = dict(f["sizes"])
    if big:
        sizes.update({n: d for n, d in big["sizes"].items() if n not in sizes})
    lines = ["### 1. Trivial action on N lab hosts (median seconds)", "",
             f"Estate: {f['env']} (plain lab hosts: sshd only)"
             + (f"; sizes above 100 on {big['env']} ({big['reps']} repetitions, see `n`)" if big else "")
             + f". Cold = new connections + run; warm = on open connections. {f['reps']} cold runs per peer and "
             f"size (the process peers and rpcutil#ping fewer, see `n`), {f['warm_per_cold']} warm runs after each "
             "cold one; peers interleaved, order rotated per repetition. *ours* = `Session(env).shell(hosts, 'echo "
             "ok')` in-process (Session creation included); *ours as a process* = a fresh `python3 -c` doing the "
             "same (the way ansible, Mitogen and pyinfra are timed: they are processes). ansible, Mitogen and "
             "pyinfra keep nothing between processes but ansible's ControlPersist masters: their *warm* is the "
             "second process run right after the first (for Mitogen and pyinfra a second cold start). The lab's "
             "hosts share the controller's 2 cores: sshd's work on the hosts is in every figure.", "",
             "`echo ok`, cold:", "",
             "| N | " + " | ".join(label for label, _ in ECHO) + " |", "|---:|" + "---:|" * len(ECHO)]

    def cell(d: dict, key: str) -> str:
        v = d.get(key)
        if not v or not v.get("n"):
            return "–"
        return f"{v['median']:.3f}" + (f" (n={v['n']})" if v["n"] < f["reps"] else "")
    for n, d in sizes.items():
        lines.append(f"| {n} | " + " | ".join(cell(d, k if k.endswith("process") else f"{k}_cold") for _, k in ECHO) + " |")
    warm = [(label, k) for label, k in ECHO if not k.endswith("process")]
    lines += ["", "`echo ok`, warm:", "", "| N | " + " | ".join(label for label, _ in warm) + " |",
              "|---:|" + "---:|" * len(warm)]
    for n, d in sizes.items():
        lines.append(f"| {n} | " + " | ".join(cell(d, f"{k}_warm") for _, k in warm) + " |")
    lines += ["", *chart("fanout-echo-cold"), *chart("fanout-echo-warm"),
              "Ratios at each size, taken repetition by repetition (median, IQR from 4 samples, min-max, n): "
              "ours ÷ peer, below 1 is faster than the peer. Against the process peers, *ours as a process* "
              "(process against process) and, for warm, ours warm in-process (what a user of each keeps between "
              "two calls).", "",
              "| N | cold: ours/raw | cold: ours/Fabric | cold: ours-process/pyinfra | cold: ours-process/Mitogen | "
              "cold: ours-process/ansible | warm: ours/raw | warm: ours/pyinfra | warm: ours/Mitogen | warm: ours/ansible |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n, d in sizes.items():
        lines.append(f"| {n} | {rs(spread(paired(d, 'ours_echo_cold', 'raw_echo_cold')))} | "
                     f"{rs(spread(paired(d, 'ours_echo_cold', 'fabric_echo_cold')))} | "
                     f"{rs(spread(paired(d, 'ours_echo_cold_process', 'pyinfra_echo_cold')))} | "
                     f"{rs(spread(paired(d, 'ours_echo_cold_process', 'mitogen_echo_cold')))} | "
                     f"{rs(spread(paired(d, 'ours_echo_cold_process', 'ansible_echo_cold')))} | "
                     f"{rs(spread(paired(d, 'ours_echo_warm', 'raw_echo_warm')))} | "
                     f"{rs(spread(paired(d, 'ours_echo_warm', 'pyinfra_echo_warm')))} | "
                     f"{rs(spread(paired(d, 'ours_echo_warm', 'mitogen_echo_warm')))} | "
                     f"{rs(spread(paired(d, 'ours_echo_warm', 'ansible_echo_warm')))} |")
    lines += ["", "`rpcutil#ping`, our agent call (a resident agent per host: `python3 agent/__main__.py --serve` in "
              "one SSH session; a call = one JSON request line, one reply line). Floors: *raw resident* = raw "
              "paramiko threads with one session per host running the same `--serve` command, one line out and "
              "one line in (the floor for this design); *raw one-shot* = raw paramiko threads exec'ing the agent "
              "once per call. Ours and the raw resident floor run side by side: both cold, then "
              f"{f.get('ping_warm', '?')} warm calls each, alternating call by call, so each warm ratio is between "
              "neighbours in time. *per call*: every pair's ratio (one call's jitter, a few ms, is in its spread); "
              "*per repetition*: the median of each repetition's pairs, one ratio per cold start (the spread "
              "between repetitions; the target is judged on it).", "",
              "| N | ours cold | raw resident cold | ours/raw resident, cold | ours warm | raw resident warm | ours/raw resident, warm, per call | warm, per repetition | raw one-shot warm |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    warm_calls = int(f.get("ping_warm") or 0)
    for n, d in sizes.items():
        lines.append(f"| {n} | {s(med(d, 'ours_ping_cold'))} | {s(med(d, 'raw_resident_ping_cold'))} | "
                     f"{rs(spread(paired(d, 'ours_ping_cold', 'raw_resident_ping_cold')))} | {s(med(d, 'ours_ping_warm'), 4)} | "
                     f"{s(med(d, 'raw_resident_ping_warm'), 4)} | {rs(spread(paired(d, 'ours_ping_warm', 'raw_resident_ping_warm')))} | "
                     f"{rs(spread(per_repetition(paired(d, 'ours_ping_warm', 'raw_resident_ping_warm'), warm_calls)))} | "
                     f"{s(med(d, 'raw_ping_warm'))} |")
    lines += ["", *chart("fanout-ping")]
    targets = []
    d100 = sizes.get("100")
    if d100:
        def t(name, want, a, b, limit, faster=False):
            r = spread(paired(d100, a, b))
            ok = None if not r else (r["q3"] < limit if faster else r["q3"] <= limit)
            targets.append((name, want, rs(r), ok))
        t("warm fan-out to 100 hosts within 1.3x of raw paramiko", "≤ 1.30x", "ours_echo_warm", "raw_echo_warm", 1.3)
        t("cold fan-out to 100 hosts within 1.3x of raw paramiko", "≤ 1.30x", "ours_echo_cold", "raw_echo_cold", 1.3)
        r = spread(paired(d100, "ours_echo_cold", "ansible_echo_cold"))
        targets.append(("cold fan-out to 100 hosts at least 15x faster than ansible-core", "≥ 15x",
                        rs(r, invert=True), None if not r else 1 / r["q3"] >= 15))
        t("faster than Fabric (100 hosts, cold)", "< 1.00x", "ours_echo_cold", "fabric_echo_cold", 1.0, True)
        t("faster than Fabric (100 hosts, warm)", "< 1.00x", "ours_echo_warm", "fabric_echo_warm", 1.0, True)
        t("cold fan-out to 100 hosts faster than pyinfra (process against process)", "< 1.00x",
          "ours_echo_cold_process", "pyinfra_echo_cold", 1.0, True)
        t("cold fan-out to 100 hosts faster than ansible + Mitogen (process against process)", "< 1.00x",
          "ours_echo_cold_process", "mitogen_echo_cold", 1.0, True)
        t("warm fan-out to 100 hosts faster than pyinfra", "< 1.00x", "ours_echo_warm", "pyinfra_echo_warm", 1.0, True)
        t("warm fan-out to 100 hosts faster than ansible + Mitogen", "< 1.00x", "ours_echo_warm", "mitogen_echo_warm", 1.0, True)
        r = spread(per_repetition(paired(d100, "ours_ping_warm", "raw_resident_ping_warm"), warm_calls))
        targets.append(("warm rpcutil#ping on 100 hosts within 1.1x of the raw resident floor (median of each "
                        "repetition's paired calls)", "≤ 1.10x", rs(r), None if not r else r["q3"] <= 1.1))
    return lines, targets


def first_contact_section(fc: dict) -> tuple[list[str], list[tuple[str, str, str, bool | None]]]:
    lines = ["### 1b. First contact: the first call on N hosts with no agent installed (median seconds)", "",
             f"`bench/first_contact.py` on {fc['env']}, {fc['reps']} repetitions, ours and the floor alternating, the "
             f"agent ({fc['agent_bytes'] // 1024} KiB zipapp) removed from the hosts before every run. *ours* = new "
             "Session + `rpcutil#ping` (connect, host key checked; the serve session exits 111; one session then "
             "receives the zipapp on stdin, checks its sha256 against the name, unpacks, compiles, pins it and "
             "serves the call). *floor* = raw paramiko threads doing the least this design needs: one session per "
             "host running the same install-then-serve command, zipapp and request written at once, one reply "
             "read.", "",
             "| N | ours | floor | ours/floor (paired) |", "|---:|---:|---:|---:|"]
    for n, d in fc["sizes"].items():
        lines.append(f"| {n} | {s(med(d, 'ours'))} | {s(med(d, 'floor'))} | {rs(spread(paired(d, 'ours', 'floor')))} |")
    lines += ["", *chart("first-contact")]
    targets = []
    d = fc["sizes"].get("100")
    if d:
        r = spread(paired(d, "ours", "floor"))
        targets.append(("first call on 100 agent-less hosts within 1.3x of the raw floor", "≤ 1.30x", rs(r),
                        None if not r else r["q3"] <= 1.3))
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
    peers = [(label, key) for label, key in (("pyinfra (apt.packages)", "pyinfra"), ("ansible + Mitogen", "mitogen"),
                                               ("ansible-core", "ansible")) if f"{key}_cold" in r]
    if peers and "behave_cold" in r:
        lines += ["**c) The same deploy written for the peers**, each as a process from the same reset state, then "
                  "once more converged (bench/peers/: the firewall agent's REJECT pair, HAProxy's DOWN awaited on "
                  "the LB, the version installed, restart unless /health reports it, /health, unblock, HAProxy's "
                  "UP awaited; root by sudo, as ours). Ratios repetition by repetition, behave ÷ peer:", "",
                  "| | from reset hosts | converged re-run | behave/peer, from reset | behave/peer, converged |",
                  "|---|---:|---:|---:|---:|",
                  f"| ours (behave) | {s(med(r, 'behave_cold'))} | {s(med(r, 'behave_converged'))} | | |"]
        for label, key in peers:
            lines.append(f"| {label} | {s(med(r, key + '_cold'))} | {s(med(r, key + '_converged'))} | "
                         f"{rs(spread(paired(r, 'behave_cold', key + '_cold')))} | "
                         f"{rs(spread(paired(r, 'behave_converged', key + '_converged')))} |")
            for kind in ("cold", "converged"):
                x = spread(paired(r, f"behave_{kind}", f"{key}_{kind}"))
                targets.append((f"seed deploy through behave faster than {label}, {'from reset hosts' if kind == 'cold' else 'converged'}",
                                "< 1.00x", rs(x), None if not x else faster_than_peer(x)))
        lines += ["", *chart("deploy")]
    if "behave_converged" in r:
        bc = r["behave_converged"]
        down, up = r["lb_detect_down"]["median"], r["lb_detect_up"]["median"]
        targets.append(("behave converged re-run of the seed deploy, as a process "
                        f"(of it HAProxy's own detection: {down:.2f} s DOWN + {up:.2f} s UP)", "≤ 0.8 s",
                        f"{bc['median']:.2f} s ({bc['min']:.2f}-{bc['max']:.2f}, n={bc['n']})", bc["median"] <= 0.8))
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
    f, d, sc, fc, big = load("fanout"), load("deploy"), load("scale"), load("first_contact"), load("fanout-big")
    found = [x for x in (f, fc, d, sc) if x]
    if not found:
        print("report: no results in bench/results/", file=sys.stderr)
        return 1
    body: list[str] = [START, "", "## Figures", ""]
    body += machine_section(found[0]["machine"], found)
    targets: list = []
    for data, section in ((f, lambda x: fanout_section(x, big)), (fc, first_contact_section), (d, deploy_section),
                          (sc, scale_section)):
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
