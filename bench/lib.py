"""What the benchmarks share: the peers (raw paramiko threads, Fabric, ansible-core), timing,
statistics and the machine's description. Imported by fanout.py, deploy.py and scale.py."""
from __future__ import annotations

import gc
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import paramiko

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
STATE = BENCH / ".state"
RESULTS = BENCH / "results"
VENV_BIN = BENCH / ".venv" / "bin"
#: pyinfra needs paramiko < 5 (the project measures its own 5.x): it has a venv of its own, made by
#: bench/run from bench/requirements-pyinfra.txt, without the system's site-packages.
PYINFRA_BIN = BENCH / ".venv-pyinfra" / "bin"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from orchestrator_lib.controller.inventory import Host, Inventory  # noqa: E402


# ---- timing --------------------------------------------------------------------------------------
def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def summary(samples: list[float]) -> dict[str, Any]:
    if not samples:
        return {"n": 0}
    return {"n": len(samples), "median": statistics.median(samples), "min": min(samples),
            "max": max(samples), "samples": [round(s, 4) for s in samples]}


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def wait_quiet(max_busy: float = 0.25, window: float = 1.0, limit: float = 30.0) -> float:
    """Wait until the machine's CPUs were at most `max_busy` busy over `window` s (the estate
    settles after a run closes its connections), or `limit` s passed. Returns the last busy share."""
    deadline = time.monotonic() + limit
    while True:
        b0, t0 = cpu_times()
        time.sleep(window)
        b1, t1 = cpu_times()
        busy = (b1 - b0) / max(1, t1 - t0)
        if busy <= max_busy or time.monotonic() > deadline:
            return busy


def log(*args: Any) -> None:
    print(time.strftime("%H:%M:%S"), *args, file=sys.stderr, flush=True)


def machine() -> dict[str, Any]:
    def version(module: str) -> str | None:
        from importlib import metadata
        try:
            return metadata.version(module)
        except metadata.PackageNotFoundError:
            return None

    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal:"))
    ssh = subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.strip()
    sshd = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "openssh-server"], capture_output=True,
                          text=True).stdout.strip()
    return {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "nproc": os.cpu_count(),
            "memory_gib": round(mem_kb / 1024 / 1024, 1), "kernel": platform.release(),
            "os": _os_name(), "python": platform.python_version(), "paramiko": paramiko.__version__,
            "ansible_core": version("ansible-core"), "fabric": version("fabric"), "invoke": version("invoke"),
            "mitogen": version("mitogen"), "pyinfra": _pyinfra_version(), "matplotlib": version("matplotlib"),
            "cryptography": version("cryptography"), "openssh_client": ssh, "openssh_server": sshd,
            "git_commit": _git_commit()}


def _pyinfra_version() -> str | None:
    """pyinfra's version and the paramiko it runs on, from its own venv."""
    python = PYINFRA_BIN / "python"
    if not python.exists():
        return None
    done = subprocess.run([str(python), "-c", "from importlib.metadata import version as v; "
                           "print(f\"{v('pyinfra')} (paramiko {v('paramiko')}, gevent {v('gevent')})\")"],
                          capture_output=True, text=True)
    return done.stdout.strip() or None


def _os_name() -> str:
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return platform.system()


def _git_commit() -> str:
    return subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()


def bytecode_env() -> dict[str, str]:
    """The environment for our own processes (behave, `python3 -c`). This machine sets
    PYTHONDONTWRITEBYTECODE=1, so every Python process compiles each module it imports from source
    (~0.2 s of CPU for behave and the project); an installed package has its bytecode (pip compiles
    it at install, as it did for the peers in bench/.venv*). So ours may cache bytecode too, under
    bench/.state/pycache (not beside the sources)."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(STATE / "pycache")
    return env


def write_result(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
    return path


def vm_hwm_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def vm_rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# ---- the floor: raw paramiko threads ---------------------------------------------------------------
class RawParamiko:
    """The least a Python SSH fan-out can do: a ThreadPoolExecutor, a TCP_NODELAY socket handed to
    paramiko.Transport, the key and known_hosts parsed once, host keys checked, one exec."""

    def __init__(self, inventory: Inventory) -> None:
        first = next(iter(inventory.hosts.values()))
        self.pkey = paramiko.Ed25519Key.from_private_key_file(str(first.key))
        self.host_keys = paramiko.HostKeys(str(inventory.known_hosts))
        self.transports: dict[str, paramiko.Transport] = {}

    def connect(self, host: Host) -> paramiko.Transport:
        sock = socket.create_connection((host.address, host.port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t = paramiko.Transport(sock)
        t.start_client(timeout=10)
        key = t.get_remote_server_key()
        known = self.host_keys.lookup(host.address) or {}
        if key.get_name() not in known or known[key.get_name()].asbytes() != key.asbytes():
            t.close()
            raise RuntimeError(f"{host.name}: host key mismatch")
        t.auth_publickey(host.user, self.pkey)
        self.transports[host.name] = t
        return t

    @staticmethod
    def exec(t: paramiko.Transport, command: str, stdin: bytes | None = None) -> tuple[int, bytes]:
        chan = t.open_session(timeout=30)
        try:
            chan.settimeout(60)
            chan.exec_command(command)
            if stdin:
                chan.sendall(stdin)
            chan.shutdown_write()
            out = chan.makefile("rb").read()
            chan.makefile_stderr("rb").read()
            rc = chan.recv_exit_status()
        finally:
            chan.close()
        return rc, out

    def run(self, hosts: list[Host], command: str, stdin: bytes | None = None,
            workers: int | None = None) -> list[tuple[int, bytes]]:
        """Cold when nothing is connected (connect + exec), warm when every host is. One thread
        per host unless `workers` is given."""
        def one(host: Host) -> tuple[int, bytes]:
            try:
                t = self.transports.get(host.name) or self.connect(host)
                return self.exec(t, command, stdin)
            except Exception as err:  # reported by check_all, as a failed host
                return -1, f"{host.name}: {type(err).__name__}: {err}".encode()

        with ThreadPoolExecutor(max_workers=workers or len(hosts)) as pool:
            return list(pool.map(one, hosts))

    def close(self) -> None:
        for t in self.transports.values():
            t.close()
        self.transports.clear()


class RawResident:
    """The floor for a resident-agent call: raw paramiko connections (RawParamiko), one session
    per host running the agent's `--serve` command, one request line out and one reply line in."""

    def __init__(self, raw: RawParamiko, command: str) -> None:
        self.raw = raw
        self.command = command
        self.chans: dict[str, Any] = {}

    def _call(self, host: Host, payload: bytes) -> tuple[int, bytes]:
        try:
            t = self.raw.transports.get(host.name) or self.raw.connect(host)
            chan = self.chans.get(host.name)
            if chan is None:
                chan = t.open_session(timeout=30)
                chan.settimeout(60)
                chan.exec_command(self.command)
                chan.buffer = b""
                self.chans[host.name] = chan
            chan.sendall(payload + b"\n")
            while b"\n" not in chan.buffer:
                chunk = chan.recv(65536)
                if not chunk:
                    return -1, f"{host.name}: agent closed".encode()
                chan.buffer += chunk
            line, _, chan.buffer = chan.buffer.partition(b"\n")
            return 0, line
        except Exception as err:
            return -1, f"{host.name}: {type(err).__name__}: {err}".encode()

    def run(self, hosts: list[Host], payload: bytes) -> list[tuple[int, bytes]]:
        with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
            return list(pool.map(lambda h: self._call(h, payload), hosts))

    def close(self) -> None:
        for chan in self.chans.values():
            chan.close()
        self.chans.clear()
        self.raw.close()


def check_all(name: str, replies: list[tuple[int, bytes]], expect: bytes | None = b"ok\n") -> None:
    bad = [r for r in replies if r[0] != 0 or (expect is not None and r[1] != expect)]
    if bad:
        raise RuntimeError(f"{name}: {len(bad)} of {len(replies)} hosts failed, e.g. {bad[0]!r}")


# ---- Fabric ThreadingGroup -------------------------------------------------------------------------
class FabricPeer:
    """Fabric 3 ThreadingGroup, as documented, with the lab's key and strict host keys (the same
    known_hosts: Fabric's own default would be AutoAddPolicy)."""

    def __init__(self, inventory: Inventory, hosts: list[Host]) -> None:
        from fabric import ThreadingGroup
        first = hosts[0]
        self.group = ThreadingGroup(*[h.address for h in hosts], user=first.user, port=first.port,
                                    connect_timeout=10,
                                    connect_kwargs={"key_filename": str(first.key), "look_for_keys": False,
                                                    "allow_agent": False})
        for cxn in self.group:
            cxn.client.load_host_keys(str(inventory.known_hosts))
            cxn.client.set_missing_host_key_policy(paramiko.RejectPolicy())

    def run(self, command: str) -> None:
        results = self.group.run(command, hide=True, warn=True)
        bad = [r for r in results.values() if r.exited != 0 or r.stdout != "ok\n"]
        if bad or len(results) != len(self.group):
            raise RuntimeError(f"fabric: {len(bad)} of {len(self.group)} hosts failed")

    def close(self) -> None:
        self.group.close()


# ---- ansible-core ad-hoc ---------------------------------------------------------------------------
#: ansible's forks: one per host up to 100 (each fork is a ~50 MB process: 1,000 of them would not fit
#: beside a 1,000-host estate in 23 GB; ansible's docs suggest tens to hundreds)
MAX_FORKS = 100


class AnsiblePeer:
    """`ansible all -i INV -m command -a 'echo ok' -f N` with pipelining and ControlPersist, strict
    host keys against the lab's known_hosts, the interpreter given (no discovery round trip)."""

    strategy: str | None = None  # ansible's default (linear)

    def __init__(self, inventory: Inventory, tag: str) -> None:
        self.dir = STATE / ("ansible" if self.strategy is None else f"ansible-{self.strategy}") / tag
        self.cp_dir = self.dir / "cp"
        for d in (self.dir / "tmp", self.cp_dir, self.dir / "home"):
            d.mkdir(parents=True, exist_ok=True)
        first = next(iter(inventory.hosts.values()))
        self.key = first.key
        self.known_hosts = inventory.known_hosts
        ssh_args = (f"-o ControlMaster=auto -o ControlPersist=120s -o UserKnownHostsFile={self.known_hosts} "
                    f"-o StrictHostKeyChecking=yes -o IdentitiesOnly=yes -o BatchMode=yes")
        self.cfg = self.dir / "ansible.cfg"
        self.cfg.write_text(
            "[defaults]\n" + self.strategy_lines() +
            f"remote_user = {first.user}\nprivate_key_file = {self.key}\nhost_key_checking = True\n"
            "interpreter_python = /usr/bin/python3\ngathering = explicit\n"
            f"local_tmp = {self.dir / 'tmp'}\nretry_files_enabled = False\n"
            "[connection]\npipelining = True\n"
            "[ssh_connection]\npipelining = True\n"
            f"ssh_args = {ssh_args}\ncontrol_path_dir = {self.cp_dir}\n"
            "control_path = %(directory)s/%%h\n")
        self.inventories: dict[int, Path] = {}
        self.hosts = list(inventory.hosts.values())

    def strategy_lines(self) -> str:
        return ""

    def inventory_for(self, hosts: list[Host]) -> Path:
        path = self.dir / f"hosts-{len(hosts)}.ini"
        path.write_text("[bench]\n" + "".join(f"{h.name} ansible_host={h.address}\n" for h in hosts))
        return path

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
        env.update(ANSIBLE_CONFIG=str(self.cfg), ANSIBLE_HOME=str(self.dir / "home"),
                   ANSIBLE_NOCOLOR="1", ANSIBLE_LOAD_CALLBACK_PLUGINS="0",
                   PATH=f"{VENV_BIN}:{env.get('PATH', '')}")
        return env

    def run(self, hosts: list[Host], module: str = "command", args: str = "echo ok") -> None:
        inv = self.inventory_for(hosts)
        done = subprocess.run([str(VENV_BIN / "ansible"), "all", "-i", str(inv), "-m", module, "-a", args,
                               "-f", str(min(len(hosts), MAX_FORKS)), "-o"], env=self.env(), capture_output=True,
                              text=True, timeout=1800)
        lines = [ln for ln in done.stdout.splitlines() if ln.strip()]
        good = [ln for ln in lines if " | CHANGED " in ln or " | SUCCESS " in ln]
        if done.returncode != 0 or len(good) != len(hosts):
            raise RuntimeError(f"ansible: rc {done.returncode}, {len(good)} of {len(hosts)} ok: "
                               f"{(done.stdout + done.stderr).strip()[-400:]}")

    def playbook(self, groups: dict[str, list[Host]], playbook: Path, extra: dict[str, str]) -> None:
        """`ansible-playbook -i INV PLAYBOOK -e ...` with forks = all hosts; raises unless it all went."""
        inv = self.dir / "deploy-hosts.ini"
        inv.write_text("".join(f"[{g}]\n" + "".join(f"{h.name} ansible_host={h.address}\n" for h in members)
                               for g, members in groups.items()))
        forks = sum(len(m) for m in groups.values())
        argv = [str(VENV_BIN / "ansible-playbook"), "-i", str(inv), str(playbook), "-f", str(forks),
                *[a for k, v in extra.items() for a in ("-e", f"{k}={v}")]]
        done = subprocess.run(argv, env=self.env(), capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            raise RuntimeError(f"{self.strategy or 'ansible'}: rc {done.returncode}: {(done.stdout + done.stderr).strip()[-800:]}")

    def masters(self) -> list[Path]:
        return [p for p in self.cp_dir.iterdir() if p.is_socket()]

    def close(self) -> None:
        """Stop the ControlPersist masters this peer started, each by its own control socket."""
        sockets = self.masters()

        def stop(sock: Path) -> None:
            subprocess.run(["ssh", "-S", str(sock), "-O", "exit", sock.name], capture_output=True, timeout=30)

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(stop, sockets))
        deadline = time.monotonic() + 10
        while self.masters() and time.monotonic() < deadline:
            time.sleep(0.05)


class MitogenPeer(AnsiblePeer):
    """ansible-core with the Mitogen strategy plugin, set up as Mitogen's docs say: in ansible.cfg
    `strategy_plugins = <site-packages>/ansible_mitogen/plugins/strategy` and `strategy = mitogen_linear`;
    everything else as AnsiblePeer (pipelining on; Mitogen keeps its own one connection per host
    for the run, so ControlPersist plays no part)."""

    strategy = "mitogen_linear"

    def strategy_lines(self) -> str:
        done = subprocess.run([str(VENV_BIN / "python"), "-c",
                               "import ansible_mitogen, os; print(os.path.dirname(ansible_mitogen.__file__))"],
                              capture_output=True, text=True, check=True)
        plugins = Path(done.stdout.strip()) / "plugins" / "strategy"
        return f"strategy_plugins = {plugins}\nstrategy = {self.strategy}\n"


class PyinfraPeer:
    """pyinfra 3 as its users run it: `pyinfra INVENTORY exec -- echo ok` (a process; pyinfra
    connects to all hosts at once, gevent), an inventory.py with the lab's key and known_hosts and
    strict host key checking, no agent or key search."""

    def __init__(self, inventory: Inventory, tag: str) -> None:
        self.dir = STATE / "pyinfra" / tag
        self.dir.mkdir(parents=True, exist_ok=True)
        first = next(iter(inventory.hosts.values()))
        self.data = {"ssh_user": first.user, "ssh_port": first.port, "ssh_key": str(first.key),
                     "ssh_known_hosts_file": str(inventory.known_hosts), "ssh_strict_host_key_checking": "yes",
                     "ssh_allow_agent": False, "ssh_look_for_keys": False}

    def inventory_for(self, hosts: list[Host], groups: dict[str, list[Host]] | None = None,
                      data: dict[str, Any] | None = None) -> Path:
        path = self.dir / f"inventory_{len(hosts)}.py"
        groups = groups or {"bench": hosts}
        merged = {**self.data, **(data or {})}
        path.write_text("".join(f"{name} = ([{', '.join(repr((h.name, {'ssh_hostname': h.address})) for h in members)}], "
                                f"{merged!r})\n" for name, members in groups.items()))
        return path

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        env["PATH"] = f"{PYINFRA_BIN}:{env.get('PATH', '')}"
        return env

    def run(self, hosts: list[Host], command: str = "echo ok") -> None:
        inv = self.inventory_for(hosts)
        done = subprocess.run([str(PYINFRA_BIN / "pyinfra"), "-y", str(inv), "exec", "--", command],
                              env=self.env(), capture_output=True, text=True, timeout=900, cwd=self.dir)
        if done.returncode != 0 or "Errors:" in done.stdout:
            raise RuntimeError(f"pyinfra: rc {done.returncode}: {(done.stdout + done.stderr).strip()[-600:]}")

    def deploy(self, groups: dict[str, list[Host]], deploy_file: Path, data: dict[str, Any]) -> None:
        """`pyinfra -y INVENTORY DEPLOY.py`: a deploy file, the inventory's groups and group data."""
        inv = self.dir / "deploy_inventory.py"
        merged = {**self.data, **data}
        inv.write_text("".join(f"{g} = ([{', '.join(repr((h.name, {'ssh_hostname': h.address})) for h in members)}], "
                               f"{merged!r})\n" for g, members in groups.items()))
        done = subprocess.run([str(PYINFRA_BIN / "pyinfra"), "-y", str(inv), str(deploy_file)],
                              env=self.env(), capture_output=True, text=True, timeout=900, cwd=self.dir)
        if done.returncode != 0:
            raise RuntimeError(f"pyinfra: rc {done.returncode}: {(done.stdout + done.stderr).strip()[-800:]}")

    def close(self) -> None:
        pass


def peers_available() -> dict[str, bool]:
    return {"ansible": (VENV_BIN / "ansible").exists(), "fabric": _importable("fabric"),
            "ssh": shutil.which("ssh") is not None}


def _importable(name: str) -> bool:
    try:
        __import__(name)
        return True
    except ImportError:
        return False
