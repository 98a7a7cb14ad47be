"""One controller and one broker at 1,000 / 10,000 / 50,000 simulated NATS agents.

For each size, in the same run and against the same Debian nats-server (started here, on loopback,
with the lab's config; stopped by PID at the end):

- floor: N trivial agents (no signing, a fixed reply) answer one broadcast: the broker's and
  nats-py's bare cost;
- real:  N agents on the host's own request path (bench/nats_agents.py: signature, policy key,
  TTL/replay, filter on facts and classes, core.handle = policy, rpcutil#ping, audit line: one per
  request, rpcutil#ping being read-only, written per chunk of agents before their replies) answer
  discovery (a signed rpcutil#ping broadcast carrying the filter `-C roles::web`, collected until all
  N answered) and then one more ping round (the same broadcast again, as `mco ping` does).

Agents are spread over --procs processes; everything shares this machine's cores. The controller is
this process (orchestrator_lib's NatsTransport); its peak RSS is recorded, so is the broker's.

    python3 bench/nats_scale.py                     # 1000,10000,50000 -> bench/results/nats_scale.json
    python3 bench/nats_scale.py --sizes 1000 --repeat 1
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

from orchestrator_lib.controller.transports.nats import NatsTransport, Signer, decode_reply  # noqa: E402
from orchestrator_lib.host import policy  # noqa: E402
from orchestrator_lib.host.signing import _verifier  # noqa: E402
from orchestrator_lib.lab.broker import Broker  # noqa: E402
from orchestrator_lib.lab.estate import _write_ssh_key  # noqa: E402
from orchestrator_lib.protocol import Request  # noqa: E402

STATE = BENCH / ".state" / "nats"
ADDRESS, PORT, MONITOR = "127.0.0.1", 14222, 18222
COLLECTIVE = "bench"
FILTER = {"classes": ["roles::web"]}


def vm_hwm(pid: int) -> int:
    """Peak resident set of a process, in MB (VmHWM)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


class Agents:
    """The agent processes of one size and mode, stopped by PID (their stdin closed first)."""

    def __init__(self, count: int, procs: int, mode: str, url: str, policy_path: Path, audit_dir: Path,
                 layout: str = "shared") -> None:
        self.procs: list[subprocess.Popen] = []
        per = -(-count // procs)
        for offset in range(0, count, per):
            n = min(per, count - offset)
            env = {**os.environ, "ORCHESTRATOR_AUDIT_LOG": str(audit_dir / f"audit-{offset}.jsonl")}
            self.procs.append(subprocess.Popen(
                [sys.executable, str(BENCH / "nats_agents.py"), "--url", url, "--collective", COLLECTIVE,
                 "--offset", str(offset), "--count", str(n), "--mode", mode, "--policy", str(policy_path),
                 "--layout", layout],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env))
        for proc in self.procs:
            line = proc.stdout.readline()
            if not line.startswith("ready"):
                raise RuntimeError(f"agent process {proc.pid} did not start: {line!r}")

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the agent processes used so far."""
        total = 0
        for proc in self.procs:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    def peak_mb(self) -> list[int]:
        return [vm_hwm(p.pid) for p in self.procs]

    def stop(self) -> None:
        for proc in self.procs:
            try:
                proc.stdin.close()
            except OSError:
                pass
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def round_trip(transport: NatsTransport, count: int, *, payload: bytes | None = None,
               flt: dict | None = None, timeout: float = 180.0) -> tuple[float, int]:
    started = time.perf_counter()
    request = Request("rpcutil", "ping", {}, reqid=uuid.uuid4().hex, caller="bench@controller")
    replies = transport.broadcast(request, flt=flt, payload=payload, expect=count, timeout=timeout)
    return time.perf_counter() - started, len(replies)


def floor_round(size: int, procs: int, layout: str, repeat: int, transport: NatsTransport, broker: Broker,
                policy_path: Path, audit_dir: Path) -> dict:
    """The bare cost: one broadcast, N fixed replies, no signing, in the given layout."""
    floor = Agents(size, procs, "floor", broker.url, policy_path, audit_dir, layout)
    try:
        cpu = floor.cpu_seconds()
        samples = [round_trip(transport, size, payload=b'{"trivial": true}') for _ in range(repeat)]
        floor_cpu = floor.cpu_seconds() - cpu
    finally:
        floor.stop()
    return {"layout": layout, "processes": procs, "seconds": [round(s, 3) for s, _ in samples],
            "answered": [n for _, n in samples], "median": round(statistics.median(s for s, _ in samples), 3),
            "agents_cpu_us_per_reply": round(floor_cpu / (size * repeat) * 1e6, 1)}


def measure(size: int, procs: int, repeat: int, transport: NatsTransport, broker: Broker,
            policy_path: Path, audit_dir: Path, layout: str) -> dict:
    result: dict = {"nodes": size, "processes": procs, "layout": layout}
    # the floor: one subscription per agent (the broker fans out N copies); and the floor of
    # the layout the real agents use, so the two columns differ only by the request path
    result["floor"] = floor_round(size, procs, "own", repeat, transport, broker, policy_path, audit_dir)
    if layout != "own":
        result["floor_" + layout] = floor_round(size, procs, layout, repeat, transport, broker, policy_path,
                                                audit_dir)
    real = Agents(size, procs, "real", broker.url, policy_path, audit_dir, layout)
    try:
        rounds = []
        cpu = real.cpu_seconds()
        controller_cpu = time.process_time()
        broker_cpu = broker_seconds(broker)
        for _ in range(repeat):
            discovery, found = round_trip(transport, size, flt=FILTER)
            ping, pinged = round_trip(transport, size, flt=FILTER)
            rounds.append({"discovery": round(discovery, 3), "discovered": found, "ping": round(ping, 3),
                           "pinged": pinged, "total": round(discovery + ping, 3)})
        real_cpu = real.cpu_seconds() - cpu
        controller_cpu = time.process_time() - controller_cpu
        broker_cpu = broker_seconds(broker) - broker_cpu
        result["agents_peak_mb"] = real.peak_mb()
    finally:
        real.stop()
    requests = size * repeat * 2
    result["real"] = {"rounds": rounds,
                      "median_discovery": round(statistics.median(r["discovery"] for r in rounds), 3),
                      "median_ping": round(statistics.median(r["ping"] for r in rounds), 3),
                      "median_total": round(statistics.median(r["total"] for r in rounds), 3),
                      # CPU per agent request, whatever else shares the machine: wall time on an
                      # idle machine is at least (agents' + controller's + broker's CPU) / cores
                      "agents_cpu_us_per_request": round(real_cpu / requests * 1e6, 1),
                      "controller_cpu_us_per_reply": round(controller_cpu / requests * 1e6, 1),
                      "broker_cpu_us_per_request": round(broker_cpu / requests * 1e6, 1),
                      "cpu_seconds": {"agents": round(real_cpu, 2), "controller": round(controller_cpu, 2),
                                      "broker": round(broker_cpu, 2)}}
    audited = sum(1 for f in audit_dir.glob("audit-*.jsonl") for _ in f.open())
    result["audit_lines"] = audited
    for f in audit_dir.glob("audit-*.jsonl"):
        f.unlink()
    return result


def broker_seconds(broker: Broker) -> float:
    """CPU time the broker used so far."""
    pid = broker.pid()
    if not pid:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def agent_stages(key: Path, policy_path: Path, audit_dir: Path) -> dict:
    """One agent request's CPU by stage, in this process (bench/nats_stages.py)."""
    import nats_stages
    saved = os.environ.get("ORCHESTRATOR_AUDIT_LOG")
    os.environ["ORCHESTRATOR_AUDIT_LOG"] = str(audit_dir / "stages.jsonl")
    try:
        signer = NatsTransport([], COLLECTIVE, Signer(key), "bench@controller")
        return nats_stages.measure(signer, policy_path, COLLECTIVE)
    finally:
        if saved is None:
            os.environ.pop("ORCHESTRATOR_AUDIT_LOG", None)
        else:
            os.environ["ORCHESTRATOR_AUDIT_LOG"] = saved
        (audit_dir / "stages.jsonl").unlink(missing_ok=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,50000")
    parser.add_argument("--procs", type=int, default=2, help="agent processes (2 for 2 cores: the request path is CPU-bound)")
    parser.add_argument("--layout", choices=("shared", "own"), default="shared",
                        help="real agents: one subscription per process (shared) or per agent (own)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default=str(BENCH / "results" / "nats_scale.json"))
    args = parser.parse_args()
    shutil.rmtree(STATE, ignore_errors=True)
    STATE.mkdir(parents=True)
    key = STATE / "id_ed25519"
    public = _write_ssh_key(key, "bench@controller")
    policy_path = STATE / "policy.json"
    policy_path.write_text(json.dumps({"default": "deny", "rules": [
        {"key": policy.fingerprint(public.split()[1]), "allow": ["rpcutil#*"]}]}))
    policy_path.chmod(0o644)
    audit_dir = STATE / "audit"
    audit_dir.mkdir()
    stages = agent_stages(key, policy_path, audit_dir)
    print(json.dumps({"stages": stages}), flush=True)
    broker = Broker(STATE, ADDRESS, PORT, name="bench", monitor_port=MONITOR)
    broker.start()
    results = []
    try:
        transport = NatsTransport([broker.url], COLLECTIVE, Signer(key), "bench@controller").connect()
        try:
            for size in (int(s) for s in args.sizes.split(",")):
                procs = args.procs
                repeat = args.repeat
                started = time.monotonic()
                results.append(measure(size, procs, repeat, transport, broker, policy_path, audit_dir, args.layout))
                results[-1]["wall_seconds"] = round(time.monotonic() - started, 1)
                print(json.dumps(results[-1]), flush=True)
        finally:
            transport.close()
    finally:
        broker_peak = vm_hwm(broker.pid() or 0)
        broker.stop()
    verify = _verifier()
    document = {
        "bench": "nats_scale", "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "loadavg_end": os.getloadavg(), "ed25519": verify.__name__,
                    "reply_decoder": getattr(decode_reply, "__module__", None) or "json",
                    "nats_server": subprocess.run(["/usr/sbin/nats-server", "--version"], capture_output=True,
                                                  text=True).stdout.strip()},
        "controller_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        "broker_peak_rss_mb": broker_peak,
        "agent_stages": stages,
        "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {args.out}: controller peak RSS {document['controller_peak_rss_mb']} MB")
    shutil.rmtree(STATE, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
