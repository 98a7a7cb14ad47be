#!/usr/bin/env python3
"""Summarise py-spy's raw (collapsed) stacks: inclusive and self share of samples per function.

    bench/.venv/bin/python bench/collapse.py PROFILE.txt [TOP] [--match SUBSTRING]
"""
from __future__ import annotations

import re
import sys
from collections import Counter


def frame_name(frame: str) -> str:
    # py-spy frames: "function (path/file.py:line)"; drop the line so a function counts once
    m = re.match(r"(.*) \((.*?)(?::\d+)?\)$", frame.strip())
    if not m:
        return frame.strip()
    func, path = m.groups()
    short = "/".join(path.split("/")[-2:])
    return f"{func} ({short})"


def main() -> int:
    path = sys.argv[1]
    top = int(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2].isdigit() else 30
    match = sys.argv[sys.argv.index("--match") + 1] if "--match" in sys.argv else None
    inclusive: Counter = Counter()
    self_: Counter = Counter()
    total = idle = 0
    for line in open(path):
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        if not stack.strip():  # py-spy --gil: no thread held the GIL (waiting, or in C code)
            idle += n
            continue
        if match and match not in stack:
            continue
        total += n
        frames = [frame_name(f) for f in stack.split(";") if f]
        for f in set(frames):
            inclusive[f] += n
        if frames:
            self_[frames[-1]] += n
    print(f"{total} samples{' matching ' + match if match else ''} with a Python stack ({idle} more without: "
          f"no thread held the GIL), shares below are of the {total}")
    print("-- inclusive --")
    for f, n in inclusive.most_common(top):
        print(f"{100 * n / total:5.1f}%  {f}")
    print("-- self --")
    for f, n in self_.most_common(top):
        print(f"{100 * n / total:5.1f}%  {f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
