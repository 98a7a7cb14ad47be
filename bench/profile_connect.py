#!/usr/bin/env python3
"""CPU per SSH connection, controller and host, on the bench-100 estate (bench/run fanout's; bring
it up first): 100 sequential connect + `true` + close, our SSHPool against raw paramiko, with the
estate's known_hosts as it is and padded to 1,000 lines (as a 1,000-host estate's would be); and
the CPU the hosts' sshd spent per connection.

    python3 -m orchestrator_lib.lab up bench/envs/bench-100.yaml
    bench/.venv/bin/python bench/profile_connect.py
    python3 -m orchestrator_lib.lab down bench/envs/bench-100.yaml
"""
from __future__ import annotations

import dataclasses
import statistics
import sys
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lib import STATE, RawParamiko
from profile_deploy import tree_cpu

from orchestrator_lib.controller.inventory import load_inventory
from orchestrator_lib.lab.estate import Lab
from orchestrator_lib.controller.transports.ssh import SSHPool

ENV = Path(__file__).resolve().parent / "envs" / "bench-100.yaml"


def main() -> int:
    inv = load_inventory(ENV)
    hosts = list(inv.hosts.values())
    pub = Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    for pad in (0, 1000 - len(hosts)):
        kh = STATE / f"known_hosts-padded-{pad}"
        kh.write_text(inv.known_hosts.read_text()
                      + "".join(f"x{i:05d},10.232.{i // 256}.{i % 256} {pub}\n" for i in range(pad)))
        padded = dataclasses.replace(inv, known_hosts=kh)
        res: dict[str, list[tuple[float, float]]] = {}
        for _ in range(3):
            for mode in ("ours", "raw"):
                c0 = time.process_time()
                if mode == "ours":
                    pool = SSHPool(padded)
                    init = time.process_time() - c0
                    for h in hosts:
                        pool.exec(h, "true")
                    pool.close()
                else:
                    raw = RawParamiko(padded)
                    init = time.process_time() - c0
                    for h in hosts:
                        raw.exec(raw.connect(h), "true")
                    raw.close()
                res.setdefault(mode, []).append(((time.process_time() - c0 - init) / len(hosts), init))
        for mode, v in res.items():
            print(f"known_hosts of {len(hosts) + pad} lines, {mode}: controller CPU per connect + exec "
                  f"{statistics.median(x[0] for x in v) * 1000:.2f} ms; loading known_hosts "
                  f"{statistics.median(x[1] for x in v) * 1000:.0f} ms")
        kh.unlink()
    lab = Lab(inv)
    roots = [lab._running_pid(h) for h in hosts[:50]]
    before = sum(tree_cpu(p) for p in roots if p)
    raw = RawParamiko(inv)
    for h in hosts[:50]:
        raw.exec(raw.connect(h), "true")
    raw.close()
    time.sleep(1.0)  # the sessions exit; their CPU is reaped into each host's sshd listener
    after = sum(tree_cpu(p) for p in roots if p)
    print(f"hosts' sshd CPU per connection (connect, auth, one exec, close): {(after - before) / 50 * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
