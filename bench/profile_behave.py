#!/usr/bin/env python3
"""Where `behave features/deploy_webapp.feature` spends its time, step by step (behave's own
JSON report), cold (web hosts just reset) and converged (run again).

    flock /tmp/orch-lab.lock bench/.venv/bin/python bench/profile_behave.py

Prints, for each run: the process's wall time, the time before the first step (interpreter,
imports, hooks: Session, discovery), each step's duration, and what is left (hooks after the
last step, reports, exit). Leaves the web hosts reset.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lib import REPO, RESULTS, log
from deploy import FEATURE, behave_env

from orchestrator_lib.controller.inventory import load_inventory
from orchestrator_lib.lab.estate import Lab


def run_behave(report: Path, profile: Path | None = None, bytecode: bool = True) -> tuple[float, float, dict]:
    started = time.time()
    t = time.perf_counter()
    prof = ["-m", "cProfile", "-o", str(profile)] if profile else []
    done = subprocess.run([sys.executable, *prof, "-m", "behave", str(FEATURE.relative_to(REPO)), "-f", "json",
                           "-o", str(report), "-f", "null"], cwd=REPO, capture_output=True, text=True, timeout=600,
                          env=behave_env(bytecode))
    wall = time.perf_counter() - t
    if done.returncode != 0:
        raise RuntimeError(f"behave failed: {(done.stdout + done.stderr)[-800:]}")
    return started, wall, json.loads(report.read_text())


def steps_of(report: list) -> list[tuple[str, float]]:
    out = []
    for feature in report:
        for element in feature.get("elements", []):
            for step in element.get("steps", []):
                out.append((f"{step['keyword']} {step['name']}", step.get("result", {}).get("duration", 0.0)))
    return out


#: what the main thread of a behave process spends its time in, outside the steps' own work
PARTS = {"behave: load environment.py (imports the hooks and the library)": ("runner.py", "load_hooks"),
         "behave: load steps/ (imports the step library)": ("runner.py", "load_step_definitions"),
         "hooks: before_all (settings, lint, inventory, lab check, Session, Deploy, guard)": ("hooks.py", "before_all"),
         "  of it: lint": ("hooks.py", "lint"),
         "  of it: RunGuard (lock, journal)": ("guard.py", "__init__"),
         "hooks: before_feature": ("hooks.py", "before_feature"),
         "hooks: after_all (reports, recap, close)": ("hooks.py", "after_all"),
         "  of it: write_reports (JSON, HTML)": ("hooks.py", "write_reports"),
         "  of it: close_session": ("hooks.py", "close_session"),
         "behave: parse features": ("parser.py", "parse_file"),
         "behave: run (all)": ("runner.py", "run_model")}


def where(prof: Path) -> dict[str, float]:
    import pstats
    stats = pstats.Stats(str(prof)).stats  # (file, line, name) -> (cc, nc, tt, ct, callers)
    out = {}
    for label, (file, name) in PARTS.items():
        cts = [v[3] for (f, _, n), v in stats.items() if f.endswith(file) and n == name]
        if cts:
            out[label] = round(max(cts), 4)
    total = max(v[3] for v in stats.values())
    out["process (main thread, total)"] = round(total, 4)
    return out


def main() -> int:
    lab = Lab(load_inventory("local"))
    was_up = lab.is_up()
    if not was_up:  # a lab found down is brought up, and taken down again at the end
        lab.up(progress=lambda m: log(m))
    web = [h.name for h in lab.hosts if lab.role(h) == "web"]
    lab.reset(web)
    out = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for kind in ("cold", "converged", "converged_no_bytecode_cache", "converged_cprofile"):
                prof = Path(tmp) / "behave.prof" if kind == "converged_cprofile" else None
                _, wall, report = run_behave(Path(tmp) / f"{kind}.json", prof, kind != "converged_no_bytecode_cache")
                if prof:
                    out["cprofile"] = where(prof)
                    print("\nconverged, under cProfile (main thread; cumulative seconds):")
                    for name, secs in out["cprofile"].items():
                        print(f"  {secs:6.3f}  {name}")
                steps = steps_of(report)
                total_steps = sum(d for _, d in steps)
                out[kind] = {"wall": wall, "steps": steps, "steps_total": total_steps,
                             "outside_steps": wall - total_steps}
                print(f"\n{kind}: behave process {wall:.3f} s, steps {total_steps:.3f} s, "
                      f"outside the steps (start-up, imports, hooks, reports, exit) {wall - total_steps:.3f} s")
                for name, d in steps:
                    print(f"  {d:6.3f}  {name}")
    finally:
        lab.reset(web)
        if not was_up:
            lab.down(progress=lambda m: log(m))
    (RESULTS / "profile_behave.json").write_text(json.dumps(out, indent=1) + "\n")
    log("wrote bench/results/profile_behave.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
