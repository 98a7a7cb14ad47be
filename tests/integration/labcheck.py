"""Reading the lab's real state around the deployer: HTTP, HAProxy's own socket, waiting."""
from __future__ import annotations

import json
import time
import urllib.request

from orchestrator_lib.controller.discovery import Filter


def http_get(url: str, timeout: float = 2.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as reply:
        return reply.read().decode()


def health(address: str, port: int = 8080) -> dict:
    return json.loads(http_get(f"http://{address}:{port}/health"))


def haproxy(lab, command: str) -> str:
    done = lab.exec_in("lb1", ["sh", "-c", f"echo '{command}' | socat stdio /run/haproxy/admin.sock"])
    assert done.returncode == 0, done.stderr
    return done.stdout


def op_states(lab) -> dict[str, int]:
    """HAProxy's srv_op_state per server of backend app: 0 DOWN, 2 UP."""
    lines = haproxy(lab, "show servers state app").splitlines()[2:]
    return {f[3]: int(f[5]) for f in (line.split() for line in lines) if len(f) > 5}


def eventually(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except OSError:  # e.g. HTTP 503 while HAProxy has no server up yet
            pass
        time.sleep(0.1)
    return predicate()


def web(session, expr: str = "") -> list:
    """The lab's web hosts, optionally narrowed by a compound filter."""
    return session.select(Filter.parse(classes=["roles::web"], compound=expr or None))
