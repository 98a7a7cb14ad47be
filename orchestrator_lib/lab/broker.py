"""The lab's NATS broker: Debian's nats-server on the lab bridge's own address, nowhere else.

Settings such as max_pending are config-file keys in nats-server 2.9 (not flags), so the lab writes
a small config and starts `nats-server -c FILE`. The process is recorded by PID and start time and
stopped by that PID. The monitoring port (on the bridge address too) tells `lab up` when every
host's agent is connected and subscribed.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

from ..controller.errors import LabError

NATS_SERVER = "/usr/sbin/nats-server"
#: The HTTP monitoring port: only ever on the bridge address, like the client port.
MONITOR_PORT = 8222
CONFIG = """\
# Written by orchestrator_lib/lab/broker.py: the lab's broker, on the lab bridge only.
listen: {address}:{port}
http: {address}:{monitor}
server_name: {name}
max_payload: 1MB
max_pending: 1GB
max_connections: 100000
write_deadline: "60s"
pid_file: "{pid_file}"
"""


def _start_time(pid: int) -> str | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


def listen_address(servers: list[str], gateway: str, where: str) -> int:
    """The port of the one server URL the lab runs, which must be on the bridge's address."""
    if not servers:
        raise LabError(f"{where}: nats.servers: the lab needs one server URL, nats://{gateway}:4222")
    url = urlsplit(servers[0])
    if url.hostname != gateway:
        raise LabError(f"{where}: nats.servers: the lab's broker listens on the bridge address only "
                       f"(nats://{gateway}:PORT), not {servers[0]}")
    return url.port or 4222


class Broker:
    """One nats-server for one lab, its files under `state_dir`."""

    def __init__(self, state_dir: Path, address: str, port: int, name: str = "lab",
                 monitor_port: int = MONITOR_PORT, extra: str = "", scheme: str = "nats") -> None:
        self.dir = state_dir / "nats"
        self.address, self.port, self.name, self.monitor_port = address, port, name, monitor_port
        #: more nats-server config (a `tls {}` and an `authorization {}` block: lab/natstls.py)
        self.extra, self.scheme = extra, scheme

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.address}:{self.port}"

    @property
    def _pid_record(self) -> Path:
        return self.dir / "pid.lab"

    def pid(self) -> int | None:
        """Our nats-server's PID while it runs (PID and start time both match what we recorded)."""
        try:
            pid_text, started = self._pid_record.read_text().split()
        except (OSError, ValueError):
            return None
        return int(pid_text) if _start_time(int(pid_text)) == started else None

    def start(self, timeout: float = 10.0) -> None:
        if not os.access(NATS_SERVER, os.X_OK):
            raise LabError(f"{NATS_SERVER} is missing: install Debian's nats-server (scripts/setup does)")
        self.stop()
        self.dir.mkdir(parents=True, exist_ok=True)
        config = self.dir / "nats.conf"
        config.write_text(CONFIG.format(address=self.address, port=self.port, monitor=self.monitor_port,
                                        name=self.name, pid_file=self.dir / "nats.pid") + self.extra)
        with open(self.dir / "nats.log", "ab") as log:
            proc = subprocess.Popen([NATS_SERVER, "-c", str(config)], stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        started = None
        while started is None:
            started = _start_time(proc.pid)
        self._pid_record.write_text(f"{proc.pid} {started}\n")
        deadline = time.monotonic() + timeout
        while self.monitor("varz") is None:
            if proc.poll() is not None:
                last = (self.dir / "nats.log").read_text().strip().splitlines()[-1:] or ["no output"]
                raise LabError(f"nats-server exited at start ({last[0]})")
            if time.monotonic() > deadline:
                raise LabError(f"nats-server did not answer on {self.address}:{self.monitor_port} within {timeout:g} s")
            time.sleep(0.02)

    def monitor(self, endpoint: str) -> dict | None:
        """A monitoring endpoint's JSON (varz, connz, subsz...), None when the broker does not answer."""
        try:
            import urllib.request  # here: http.client's import is ~15 ms of every behave start
            with urllib.request.urlopen(f"http://{self.address}:{self.monitor_port}/{endpoint}", timeout=1) as r:
                return json.loads(r.read())
        except (OSError, ValueError):
            return None

    def connected(self) -> dict[str, int]:
        """Client name -> subscriptions, for every connection the broker holds."""
        connz = self.monitor("connz?limit=100000") or {}
        return {c.get("name", ""): int(c.get("subscriptions", 0)) for c in connz.get("connections", [])}

    def stop(self) -> None:
        """SIGTERM to our PID (nats-server exits at once on it), SIGKILL if it lingers."""
        pid = self.pid()
        if pid is None:
            return
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while _start_time(pid) is not None and time.monotonic() < deadline:
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
                time.sleep(0.02)
            if _start_time(pid) is None:
                break
        self._pid_record.unlink(missing_ok=True)
