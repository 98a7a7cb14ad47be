#!/usr/bin/env python3
"""Cost curves: one PNG per benchmark from bench/results/*.json, wall time against the number of
hosts on log axes, one line per peer (medians; the bars are the min-max of the repetitions).

    bench/.venv/bin/python bench/charts.py      # -> bench/charts/*.png (bench/run report runs it)

Sizes up to 100 come from fanout.json (the 100-host estate), larger ones from fanout-big.json
(the same script on the bench's 1,000-host estate, fewer repetitions) and scale.json (connect-all).
The deploy benchmark has one estate (the default lab): its chart is per peer, not per size.
"""
from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from report import load  # noqa: E402

OUT = Path(__file__).resolve().parent / "charts"

ECHO_PEERS = [("ours", "ours (in-process)"), ("ours_echo_cold_process", "ours, as a process"), ("raw", "raw paramiko"),
              ("fabric", "Fabric"), ("pyinfra", "pyinfra (process)"), ("mitogen", "ansible + Mitogen (process)"),
              ("ansible", "ansible-core (process)")]


def series(results: list[dict], key: str) -> list[tuple[int, float, float, float]]:
    """(hosts, median, min, max) of one sample series over every results file that has it."""
    points = {}
    for res in results:
        for n, d in res.get("sizes", {}).items():
            v = d.get(key)
            if isinstance(v, dict) and v.get("n"):
                points[int(n)] = (int(n), v["median"], v["min"], v["max"])
    return [points[n] for n in sorted(points)]


def plot(ax, pts, label: str) -> None:
    if not pts:
        return
    xs, med, lo, hi = zip(*pts)
    ax.errorbar(xs, med, yerr=[[m - a for m, a in zip(med, lo)], [b - m for m, b in zip(med, hi)]],
                marker="o", ms=4, capsize=3, label=label)


def finish(ax, fig, title: str, name: str) -> Path:
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("hosts")
    ax.set_ylabel("wall time, s")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    OUT.mkdir(exist_ok=True)
    path = OUT / f"{name}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def scale_points(sc: dict | None, who: str, key: str) -> list[tuple[int, float, float, float]]:
    if not sc:
        return []
    pts = []
    for n, d in sc["sizes"].items():
        v = d[who][key]
        pts.append((int(n), v["median"], v.get("min", v["median"]), v.get("max", v["median"])))
    return sorted(pts)


def fanout_charts(made: list[Path]) -> None:
    results = [r for r in (load("fanout"), load("fanout-big")) if r]
    if not results:
        return
    sc = load("scale")
    for kind in ("cold", "warm"):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for key, label in ECHO_PEERS:
            if key == "ours_echo_cold_process":
                if kind == "warm":
                    continue
                pts = series(results, key)
            else:
                pts = series(results, f"{key}_echo_{kind}")
            if key in ("ours", "raw") and kind == "cold" and sc:  # connect-all at 200-1,000 (scale.py)
                extra = scale_points(sc, key, "connect_all_s")
                pts = sorted({p[0]: p for p in pts + extra}.values())
            plot(ax, pts, label)
        made.append(finish(ax, fig, f"echo ok on N hosts, {kind} ({'new connections' if kind == 'cold' else 'open connections'})",
                           f"fanout-echo-{kind}"))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, label in (("ours_ping_cold", "ours cold"), ("raw_resident_ping_cold", "raw resident cold"),
                       ("ours_ping_warm", "ours warm"), ("raw_resident_ping_warm", "raw resident warm"),
                       ("raw_ping_warm", "raw one-shot warm")):
        plot(ax, series(results, key), label)
    made.append(finish(ax, fig, "rpcutil#ping on N hosts (resident agent)", "fanout-ping"))


def first_contact_chart(made: list[Path]) -> None:
    results = [r for r in (load("first_contact"), load("first_contact-big")) if r]
    if not results:
        return
    fig, ax = plt.subplots(figsize=(7, 4.5))
    plot(ax, series(results, "ours"), "ours (Session: exit 111, then install + serve on one session)")
    plot(ax, series(results, "floor"), "floor: raw paramiko, one session sends the agent and runs it")
    made.append(finish(ax, fig, "first call on N hosts without the agent", "first-contact"))


def deploy_chart(made: list[Path]) -> None:
    d = load("deploy")
    if not d:
        return
    r = d["results"]
    rows = [("ours (behave)", "behave_cold", "behave_converged"), ("pyinfra", "pyinfra_cold", "pyinfra_converged"),
            ("ansible + Mitogen", "mitogen_cold", "mitogen_converged"), ("ansible-core", "ansible_cold", "ansible_converged")]
    rows = [x for x in rows if x[1] in r]
    if not rows:
        return
    fig, ax = plt.subplots(figsize=(7, 3.8))
    ys = range(len(rows))
    for i, (label, cold, conv) in enumerate(rows):
        for key, off, color in ((cold, -0.18, "tab:blue"), (conv, 0.18, "tab:orange")):
            v = r.get(key)
            if v:
                ax.barh(i + off, v["median"], height=0.34, color=color,
                        xerr=[[v["median"] - v["min"]], [v["max"] - v["median"]]], capsize=3)
    ax.set_yticks(list(ys), [x[0] for x in rows])
    ax.set_xlabel("wall time, s (as a process; blue: from reset hosts, orange: converged re-run)")
    ax.set_title(f"seed deploy on the default lab ({len(d.get('feature_hosts', []))} web hosts + the LB)", fontsize=10)
    ax.grid(True, axis="x", alpha=0.3)
    OUT.mkdir(exist_ok=True)
    path = OUT / "deploy.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    made.append(path)


def main() -> int:
    made: list[Path] = []
    fanout_charts(made)
    first_contact_chart(made)
    deploy_chart(made)
    for p in made:
        print(f"charts: wrote {p}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
