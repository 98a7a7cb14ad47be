"""The local lab: the estate an environment file describes, built from real parts on this machine.

Each host is a network namespace on a private bridge plus private mount/UTS/IPC/PID namespaces
whose PID 1 is runit, supervising Debian's sshd and the host's services. The host's /etc, /usr,
/var ... are overlays: image layers (base, then web, lb or notify) over the machine's own
directories, with the host's writes in a directory of its own under the lab's state directory.
Every process the lab starts is recorded by PID (with its start time) and stopped by that PID.
"""
from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ..controller.errors import LabError
from ..controller.inventory import Host, Inventory
from ..controller.transports import sudo
from ..host import policy
from . import aptrepo, broker, network, rpmrepo, snapshot

FILES = Path(__file__).parent / "files"
ROLES = ("web", "rpm", "lb", "notify", "plain", "bastion")
#: Roles whose hosts serve the app behind HAProxy: `web` (Debian: dpkg/apt) and `rpm` (an
#: RPM-family host: rpm/dnf, the lab's dnf repository, layer-rpm.sh).
WEB_ROLES = ("web", "rpm")
ROLE_PORTS = {"web": (22, 8080, 80), "rpm": (22, 8080), "lb": (22, 80), "notify": (22, 8025), "plain": (22,),
              "bastion": (22,)}
#: A host with `lab: {ssh_from: HOST}` refuses SSH from anywhere but that host (its bastion): an
#: iptables rule in its own network namespace, marked with this comment.
SSH_ONLY_FROM = "lab-ssh-only-from"
#: A web host's PID 1: runit (the default), or systemd (`lab: {role: web, service_manager: systemd}`),
#: which runs sshd and the app as units in a cgroup2 subtree the lab makes for the host.
SERVICE_MANAGERS = ("runit", "systemd")
#: The ports a systemd web host answers on (the nginx stand-in is a runit-only service).
SYSTEMD_PORTS = (22, 8080)
READY_TIMEOUT = 60.0
#: What the lab's read-only auditor key may run: status reads only. Not health#command (its alias
#: health#runcommand: `sh -c` anything, as root) nor health#http / health#latency (make the host fetch any URL).
AUDITOR_ACTIONS = ("rpcutil#*", "package#status", "service#status", "haproxy#status",
                   "firewall#status", "health#load", "lease#status")
#: The auditor key's forced command (installed by layer-base.sh from files/orchestrator-gate): it runs
#: only the agent invocations rpc sends (one-shot and --serve), nothing else (no shell, no sftp, no
#: install), so the key can neither run commands of its own nor fake the identity the agent checks.
GATE = "/usr/local/sbin/orchestrator-gate"
#: Exit status of the gate when it refuses a command (files/orchestrator-gate).
GATE_REFUSED = 99


@dataclass(frozen=True)
class HostStatus:
    name: str
    address: str
    role: str
    running: bool
    answering: dict[int, bool]  # port -> answers

    @property
    def healthy(self) -> bool:
        return self.running and all(self.answering.values())


def _write_ssh_key(path: Path, comment: str) -> str:
    """Write an ed25519 key pair in OpenSSH format; return the public line. In-process, because a
    1,000-host lab would spend seconds forking ssh-keygen."""
    key = Ed25519PrivateKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(private)
    Path(f"{path}.pub").write_text(f"{public} {comment}\n")
    return public


def _start_time(pid: int) -> str | None:
    """The kernel's start time of a live process: with the PID, it names the process we started
    even after PIDs wrap around. A zombie counts as gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


def _children(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []


def _answers(address: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


class Lab:
    """The lab of one environment. Everything it creates lives under `state_dir` or is named
    after the environment's bridge."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        settings = dict(inventory.lab)
        if not settings:
            raise LabError(f"{inventory.path}: no 'lab:' section: this environment is not a local lab")
        self.bridge: str = settings.get("bridge", network.DEFAULT_BRIDGE)
        self.subnet = ipaddress.ip_network(settings.get("subnet", "10.231.0.0/24"), strict=False)
        self.gateway: str = settings.get("gateway", str(next(self.subnet.hosts())))
        self.backend: str = inventory.loadbalancer.get("backend", "app")
        self.app_port: int = int(settings.get("app_port", 8080))
        if inventory.known_hosts is None or inventory.hosts and next(iter(inventory.hosts.values())).key is None:
            raise LabError(f"{inventory.path}: a lab environment needs 'known_hosts' and 'defaults.key'")
        self.known_hosts: Path = inventory.known_hosts
        self.client_key: Path = next(iter(inventory.hosts.values())).key  # type: ignore[assignment]
        self.state_dir = Path(settings.get("state_dir") or self.known_hosts.parent)
        self.hosts: list[Host] = list(inventory.hosts.values())
        #: each host's snapshot (snapshot.host_state) right after it was last brought up or reset
        self._clean: dict[str, str] = {}
        #: The lab's NATS broker, for an estate with a `nats:` section (its agents answer over NATS
        #: too, so `-D transport=nats` works on it); None for an SSH-only estate.
        self.broker: broker.Broker | None = None
        if inventory.nats is not None:
            port = broker.listen_address(list(inventory.nats.servers), self.gateway, str(inventory.path))
            self.broker = broker.Broker(self.state_dir, self.gateway, port, name=f"lab-{inventory.name}")
        for host in self.hosts:
            if self.role(host) not in ROLES:
                raise LabError(f"{inventory.path}: hosts.{host.name}.lab.role: expected one of {', '.join(ROLES)}")
            if ipaddress.ip_address(host.address) not in self.subnet:
                raise LabError(f"{inventory.path}: hosts.{host.name}.address: {host.address} is outside the lab subnet {self.subnet}")
            source = host.lab.get("ssh_from")
            if source is not None and source not in inventory.hosts:
                raise LabError(f"{inventory.path}: hosts.{host.name}.lab.ssh_from: no host {source!r} in the estate")
            manager = host.lab.get("service_manager", "runit")
            if manager not in SERVICE_MANAGERS:
                raise LabError(f"{inventory.path}: hosts.{host.name}.lab.service_manager: expected one of "
                               f"{', '.join(SERVICE_MANAGERS)}")
            if manager == "systemd" and (self.role(host) != "web" or inventory.nats is not None):
                raise LabError(f"{inventory.path}: hosts.{host.name}.lab.service_manager: systemd hosts are "
                               f"web hosts of an SSH-only estate (role web, no nats: section)")

    # ---- naming and paths -------------------------------------------------------------------
    @staticmethod
    def role(host: Host) -> str:
        return str(host.lab.get("role", "plain"))

    @staticmethod
    def systemd(host: Host) -> bool:
        return host.lab.get("service_manager", "runit") == "systemd"

    def ports(self, host: Host) -> tuple[int, ...]:
        return SYSTEMD_PORTS if self.systemd(host) else ROLE_PORTS[self.role(host)]

    def host(self, name: str) -> Host:
        try:
            return self.inventory.hosts[name]
        except KeyError:
            raise LabError(f"no host {name!r} in {self.inventory.path}") from None

    def _netns(self, host: Host) -> str:
        return network.netns_name(self.bridge, host.name)

    def _veth(self, host: Host) -> str:
        return network.veth_name(self.bridge, self.hosts.index(host))

    def _host_dir(self, host: Host) -> Path:
        return self.state_dir / "hosts" / host.name

    def _layers_for(self, host: Host) -> str:
        role = self.role(host)
        names = ["base"] if role in ("plain", "bastion") else [role, "base"]
        if self.systemd(host):
            names.insert(0, "systemd")
        return ":".join(str(self.state_dir / "layers" / n) for n in names)

    # ---- processes ----------------------------------------------------------------------------
    def _pid_file(self, host: Host) -> Path:
        return self._host_dir(host) / "pid"

    def _running_pid(self, host: Host) -> int | None:
        try:
            pid_text, started = self._pid_file(host).read_text().split()
        except (OSError, ValueError):
            return None
        pid = int(pid_text)
        return pid if _start_time(pid) == started else None

    def _kill(self, *hosts: Host) -> None:
        """SIGKILL to each host's `unshare`: it ignores SIGTERM, and --kill-child then takes the
        whole PID namespace down with it. All are signalled first, then awaited together."""
        pids = [pid for pid in (self._running_pid(h) for h in hosts) if pid is not None]
        # Also await each namespace's init: it is gone only once every process of the host has
        # exited, so the host's ports are closed when this returns.
        inits = [int(c) for pid in pids for c in _children(pid)]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        for pid in pids + inits:
            while time.monotonic() < deadline:
                try:
                    os.waitpid(pid, os.WNOHANG)  # reap it when we are its parent
                except ChildProcessError:
                    pass
                if _start_time(pid) is None:
                    break
                time.sleep(0.01)
        for host in hosts:
            self._pid_file(host).unlink(missing_ok=True)
            if self.systemd(host):
                self._remove_cgroup(host)

    # ---- cgroups of systemd hosts -------------------------------------------------------------
    def _cgroup(self, host: Host) -> Path:
        """The host's cgroup2 directory: systemd inside sees it as its root (a cgroup namespace)
        and builds its slices under it. On this machine's hybrid hierarchy cgroup2 is mounted on
        /sys/fs/cgroup/unified; on a unified one, on /sys/fs/cgroup itself."""
        mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()
                  if line.split()[2] == "cgroup2"]
        if not mounts:
            raise LabError(f"{host.name}: a systemd lab host needs cgroup2, and none is mounted on this machine")
        root = "/sys/fs/cgroup" if "/sys/fs/cgroup" in mounts else mounts[0]
        return Path(root) / f"lab-{self.bridge}-{host.name}"

    def _remove_cgroup(self, host: Host) -> None:
        """Remove the host's cgroup tree, deepest first (its processes are gone by then)."""
        top = self._cgroup(host)
        if not top.exists():
            return
        deadline = time.monotonic() + 10
        for path in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True) + [top]:
            while True:
                try:
                    path.rmdir()
                    break
                except OSError as exc:  # EBUSY while a killed process of it has not exited yet
                    if time.monotonic() > deadline:
                        raise LabError(f"{host.name}: cannot remove its cgroup {path}: {exc.strerror}") from None
                    time.sleep(0.02)

    def _ssh_source(self, host: Host) -> str | None:
        """The only address this host accepts SSH from (lab.ssh_from), or None for any."""
        source = host.lab.get("ssh_from")
        return self.inventory.hosts[source].address if source else None

    def _restrict_ssh(self, host: Host) -> None:
        """SSH only from the host's bastion: the machine (the controller) is refused at once (a
        TCP reset), so a deploy that does not go through the bastion fails fast and visibly."""
        source = self._ssh_source(host)
        if source is None:
            return
        rule = ["INPUT", "-p", "tcp", "--dport", "22", "!", "-s", source, "-m", "comment",
                "--comment", SSH_ONLY_FROM, "-j", "REJECT", "--reject-with", "tcp-reset"]
        netns = ["ip", "netns", "exec", self._netns(host), "iptables"]
        if subprocess.run(netns + ["-C", *rule], capture_output=True).returncode != 0:
            done = subprocess.run(netns + ["-A", *rule], capture_output=True, text=True)
            if done.returncode != 0:
                raise LabError(f"{host.name}: cannot restrict ssh to {source}: {done.stderr.strip()}")

    def _listening(self, host: Host, port: int) -> bool:
        """Whether something listens on the port inside the host (for a port the machine may not reach)."""
        done = subprocess.run(["ip", "netns", "exec", self._netns(host), "ss", "-Hltn", f"sport = :{port}"],
                              capture_output=True, text=True)
        return bool(done.stdout.strip())

    def _write_facts(self, host: Host, upper: Path) -> None:
        """Put the host's facts and classes on the host, as Puppet or a provisioning tool would
        (/etc/orchestrator/facts.d/lab.yaml, /etc/orchestrator/classes.txt), so an estate with
        `facts: live` discovers the lab from the hosts themselves. Written into a fresh host only:
        what a test changes on a host stays until `reset`."""
        facts_d = upper / "etc" / "orchestrator" / "facts.d"
        if facts_d.exists():
            return
        facts_d.mkdir(parents=True)
        lines = "".join(f"{name}: {json.dumps(str(value))}\n" for name, value in host.facts.items())
        (facts_d / "lab.yaml").write_text(f"# written by the lab from {self.inventory.path.name}\n{lines}")
        (facts_d.parent / "classes.txt").write_text("".join(f"{c}\n" for c in host.classes))

    def _spawn(self, host: Host) -> None:
        self._restrict_ssh(host)
        hdir = self._host_dir(host)
        upper = hdir / "upper"
        upper.mkdir(parents=True, exist_ok=True)
        self._write_facts(host, upper)
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
               "LAB_ADDR": f"{host.address}/{self.subnet.prefixlen}"}
        unshare = ["unshare", "-m", "-u", "-i", "-p", "-f", "--mount-proc", "--kill-child"]
        enter: list[str] = []
        if self.systemd(host):
            # Its own cgroup (entered before unshare -C makes it the namespace's root) and machine id.
            cgroup = self._cgroup(host)
            self._remove_cgroup(host)
            cgroup.mkdir()
            machine_id = upper / "etc" / "machine-id"
            if not machine_id.exists():
                machine_id.parent.mkdir(parents=True, exist_ok=True)
                machine_id.write_text(os.urandom(16).hex() + "\n")
            enter = ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', str(cgroup)]
            unshare.insert(1, "-C")
            env["LAB_INIT"] = "systemd"
        # (`ip netns exec` mounts a sysfs of its own, without the machine's cgroup mounts: enter first.)
        argv = [*enter, "ip", "netns", "exec", self._netns(host), *unshare, str(FILES / "hostinit.sh"), "run",
                host.name, str(upper), self._layers_for(host), str(self.state_dir / "apt")]
        with open(hdir / "console.log", "ab") as log:
            proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        started = None
        while started is None:  # the process exists once Popen returns; read its start time
            started = _start_time(proc.pid)
        self._pid_file(host).write_text(f"{proc.pid} {started}\n")

    def _init_pid(self, host: Host) -> int:
        """PID of the host's own PID 1 (runsvdir), the child of its `unshare`."""
        pid = self._running_pid(host)
        if pid is None:
            raise LabError(f"lab host {host.name} is not running")
        children = _children(pid)
        if not children:
            raise LabError(f"lab host {host.name} has not started its init yet")
        return int(children[0])

    def exec_in(self, name: str, argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
        """Run a command inside a host, around the deployer: lets tests read a host's real state."""
        host = self.host(name)
        return subprocess.run(["nsenter", "-t", str(self._init_pid(host)), "-m", "-u", "-i", "-n", "-p",
                               "--", *argv], capture_output=True, text=True, timeout=timeout)

    # ---- image layers -----------------------------------------------------------------------
    def _build_layer(self, name: str, lowers: list[str], files: dict[str, Path], env: dict[str, str]) -> None:
        layer = self.state_dir / "layers" / name
        inputs = self.state_dir / "input" / name
        for path in (layer, inputs):
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir(parents=True)
        shutil.copy(FILES / f"layer-{name}.sh", inputs / "build.sh")
        for target, source in files.items():
            shutil.copy(source, inputs / target)
        lower = ":".join(str(self.state_dir / "layers" / n) for n in lowers)
        argv = ["unshare", "-m", "-u", "-i", "-p", "-n", "-f", "--mount-proc", "--kill-child",
                str(FILES / "hostinit.sh"), "build", f"layer-{name}", str(layer), lower,
                str(self.state_dir / "apt"), str(inputs)]
        done = subprocess.run(argv, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **env},
                              capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise LabError(f"building image layer {name!r} failed: {last[0]}")
        shutil.rmtree(layer / ".work", ignore_errors=True)

    def _haproxy_config(self) -> Path:
        servers = "\n".join(f"    server {h.name} {h.address}:{self.app_port}"
                            for h in self.hosts if self.role(h) in WEB_ROLES)
        text = (FILES / "haproxy.cfg.tmpl").read_text().format(backend=self.backend, servers=servers,
                                                                 address="*")
        path = self.state_dir / "haproxy.cfg"
        path.write_text(text)
        return path

    @property
    def auditor_key(self) -> Path:
        """A second, read-only caller: the host policy lets it run status actions only, and
        authorized_keys lets it run nothing but the installed agent (GATE)."""
        return self.client_key.with_name(self.client_key.name + "_auditor")

    def _authorized_keys(self) -> Path:
        """The deployer's key as it is (it installs the agent: SFTP, mkdir, python3); the auditor's
        `restrict`ed (no pty, forwarding or ~/.ssh/rc) with the gate as its forced command."""
        auditor = Path(f"{self.auditor_key}.pub").read_text().strip()
        path = self.state_dir / "authorized_keys"
        path.write_text(Path(f"{self.client_key}.pub").read_text().strip() + "\n"
                        + f'restrict,command="{GATE}" {auditor}\n')
        return path

    def _login_users(self) -> list[str]:
        """The users the estate logs in as, other than root: each gets an account, the same
        authorized_keys, and (when any of its hosts says `become: sudo`) the agent's sudo rule."""
        return sorted({h.user for h in self.hosts if h.user != "root"})

    def _sudoers(self) -> Path:
        users = sorted({h.user for h in self.hosts if h.user != "root" and h.become == "sudo"})
        path = self.state_dir / "sudoers"
        path.write_text("".join(sudo.sudoers_rule(u) for u in users))
        return path

    def _policy(self) -> Path:
        """The hosts' allow-list (agents/policy.py): the deployer may run everything, the auditor
        only what reads state; any other key nothing."""
        def fingerprint(key: Path) -> str:
            return policy.fingerprint(Path(f"{key}.pub").read_text().split()[1])

        rules = {"default": "deny", "rules": [
            {"key": fingerprint(self.client_key), "allow": ["*"]},
            {"key": fingerprint(self.auditor_key), "allow": list(AUDITOR_ACTIONS)}]}
        path = self.state_dir / "policy.json"
        path.write_text(json.dumps(rules, indent=2) + "\n")
        return path

    def _nats_files(self) -> dict[str, Path]:
        """The NATS agent service for the base layer (config management's way of installing it):
        the bundle (host/build.py), its hash, and the config naming the broker and collective."""
        if self.broker is None or self.inventory.nats is None:
            return {}
        from ..host.build import nats_archive
        data, sha = nats_archive()
        (self.state_dir / "nats.pyz").write_bytes(data)
        (self.state_dir / "nats.sha").write_text(sha + "\n")
        config = {"servers": [self.broker.url], "collective": self.inventory.nats.collective}
        (self.state_dir / "nats.json").write_text(json.dumps(config, indent=2) + "\n")
        return {name: self.state_dir / name for name in ("nats.pyz", "nats.sha", "nats.json")}

    def _build_layers(self) -> None:
        """Rebuilt at every `up`: the lowest layer is the live machine, so a copied-up dpkg status
        from an older build could disagree with /usr."""
        # Root logs in only where the estate logs in as root: the default estate's deploy user
        # and sudo are then the only way in, so every test proves the non-root path.
        root_login = any(h.user == "root" for h in self.hosts)
        sources = self.state_dir / "lab.list"
        sources.write_text(aptrepo.SOURCES_LIST)
        self._build_layer("base", [], {"authorized_keys": self._authorized_keys(),
                                       "lab.list": sources,
                                       "policy.json": self._policy(),
                                       "sudoers": self._sudoers(),
                                       "orchestrator-gate": FILES / "orchestrator-gate",
                                       **self._nats_files()},
                          {"LAB_USERS": " ".join(self._login_users()),
                           "LAB_ROOT_LOGIN": "prohibit-password" if root_login else "no"})
        roles = {self.role(h) for h in self.hosts}
        initial = " ".join(f"{p}={v}" for p, v in aptrepo.INITIAL.items())
        repo_file = self.state_dir / "lab.repo"
        repo_file.write_text(rpmrepo.REPO_FILE)
        initial_rpm = " ".join(f"{p}-{v}" for p, v in aptrepo.INITIAL.items() if p in rpmrepo.PACKAGES)
        jobs = {"web": ({}, {"LAB_INITIAL": initial}),
                "rpm": ({"lab.repo": repo_file}, {"LAB_INITIAL": initial_rpm}),
                "lb": ({"haproxy.cfg": self._haproxy_config()}, {}),
                "notify": ({}, {})}
        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(self._build_layer, role, ["base"], files, env)
                       for role, (files, env) in jobs.items() if role in roles]
            for future in futures:
                future.result()
        if any(self.systemd(h) for h in self.hosts):
            self._build_layer("systemd", ["web", "base"], {}, {})

    # ---- lifecycle ----------------------------------------------------------------------------
    def is_up(self) -> bool:
        return all(self._running_pid(h) is not None for h in self.hosts) and bool(self.hosts)

    def up(self, fresh: bool = False, progress=print) -> float:
        """Bring the estate up from scratch (cleaning what a crashed run left); a no-op when it is
        already running, unless `fresh`."""
        if self.is_up() and not fresh:
            progress(f"lab {self.inventory.name}: already up ({len(self.hosts)} hosts)")
            return 0.0
        started = time.monotonic()
        foreign = self._foreign_processes()
        if foreign:
            pids = sorted(pid for found in foreign.values() for pid in found)
            raise LabError(f"lab {self.inventory.name}: bridge {self.bridge} carries a lab this checkout did not "
                           f"start ({len(pids)} processes in {len(foreign)} of its namespaces, e.g. PID {pids[0]}): "
                           f"take it down from the checkout that started it, or stop those processes with "
                           f"`python3 -m orchestrator_lib.lab down {self.inventory.name}` here")
        self.down(progress=lambda _msg: None)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for key, who in ((self.client_key, "deployer"), (self.auditor_key, "auditor")):
            if not key.exists():
                _write_ssh_key(key, f"{who}@{self.inventory.name}")
        aptrepo.build_repository(self.state_dir / "apt")
        if any(self.role(h) == "rpm" for h in self.hosts):
            rpmrepo.build_repository(self.state_dir / "rpm")
        else:
            shutil.rmtree(self.state_dir / "rpm", ignore_errors=True)
        self._build_layers()
        known = []
        for host in self.hosts:
            key = self._host_dir(host) / "upper" / "etc" / "ssh" / "ssh_host_ed25519_key"
            public = _write_ssh_key(key, f"root@{host.name}")
            known.append(f"{host.name},{host.address} {public}")
        self.known_hosts.write_text("\n".join(known) + "\n")
        network.create(self.bridge, self.gateway, str(self.subnet),
                       [(self._netns(h), self._veth(h)) for h in self.hosts])
        if self.broker is not None:  # on the bridge's address: after the bridge, before the agents
            self.broker.start()
        for host in self.hosts:
            self._spawn(host)
        self.wait_ready(self.hosts)
        self._record_clean(self.hosts)
        elapsed = time.monotonic() - started
        progress(f"lab {self.inventory.name}: {len(self.hosts)} hosts up in {elapsed:.1f} s")
        return elapsed

    def wait_ready(self, hosts: list[Host], timeout: float = READY_TIMEOUT, backend: bool = True) -> None:
        """Wait until the hosts' ports answer and, with `backend`, until HAProxy sees those of
        them that are web hosts UP (hosts just reset or brought up: no firewall rule of theirs)."""
        deadline = time.monotonic() + timeout

        def ready(host: Host) -> str | None:
            for port in self.ports(host):
                restricted = port == 22 and self._ssh_source(host) is not None
                while not (self._listening(host, port) if restricted else _answers(host.address, port)):
                    if self._running_pid(host) is None:
                        return f"{host.name}: its init exited (see {self._host_dir(host) / 'console.log'})"
                    if time.monotonic() > deadline:
                        return f"{host.name}: port {port} did not answer within {timeout:.0f} s"
                    time.sleep(0.05)
            return None

        with ThreadPoolExecutor(min(64, max(1, len(hosts)))) as pool:
            problems = [p for p in pool.map(ready, hosts) if p]
        if problems:
            raise LabError(f"lab hosts not ready: {'; '.join(problems)}")
        if self.broker is not None:
            self._wait_nats_agents(hosts, deadline)
        if not backend:
            return
        for lb in [h for h in self.hosts if self.role(h) == "lb" and self._running_pid(h)]:
            # A load balancer that (re)started checks every server afresh: wait for all of them.
            self._wait_backend_up(lb, self.hosts if lb in hosts else hosts, deadline)

    def _wait_nats_agents(self, hosts: list[Host], deadline: float) -> None:
        """Ready over NATS means each host's agent is connected and subscribed (every agent's
        broadcast subject and its node subject), as the broker itself reports."""
        from ..host.core import AGENTS
        wanted = len(AGENTS) + 1
        assert self.broker is not None
        while True:
            subs = self.broker.connected()
            missing = [h.name for h in hosts if subs.get(h.name, 0) < wanted]
            if not missing:
                return
            if time.monotonic() > deadline:
                raise LabError(f"NATS agents not subscribed on {self.broker.url}: {', '.join(missing)} "
                               f"(see /var/log/orchestrator/nats.log on those hosts)")
            time.sleep(0.05)

    def _wait_backend_up(self, lb: Host, hosts: list[Host], deadline: float) -> None:
        """Ready means HAProxy itself sees the running web hosts among `hosts` UP (all of them
        after `up` or a full reset), so a deploy starts from a load balancer that serves them.
        Hosts not waited for may be out of the load balancer on purpose."""
        running = {h.name for h in hosts if self.role(h) in WEB_ROLES and self._running_pid(h)}
        command = f"echo 'show servers state {self.backend}' | socat stdio /run/haproxy/admin.sock"
        while True:
            out = self.exec_in(lb.name, ["sh", "-c", command]).stdout.splitlines()[2:]
            up = {f[3] for f in (line.split() for line in out) if len(f) > 5 and f[5] == "2"}
            if running <= up:
                return
            if time.monotonic() > deadline:
                raise LabError(f"{lb.name}: HAProxy does not see {', '.join(sorted(running - up))} up")
            time.sleep(0.1)

    def down(self, progress=print) -> None:
        """Stop exactly the processes the lab started, then remove its links, namespaces and files.
        The mounts live in the hosts' own mount namespaces and go with their processes."""
        self._clean.clear()
        self._kill(*self.hosts)
        self._kill_leftovers()
        for host in self.hosts:
            if self.systemd(host):
                self._remove_cgroup(host)
        if self.broker is not None:
            self.broker.stop()
        network.destroy(self.bridge)
        for sub in ("hosts", "layers", "input"):
            shutil.rmtree(self.state_dir / sub, ignore_errors=True)
        progress(f"lab {self.inventory.name}: down")

    def _foreign_processes(self) -> dict[str, list[int]]:
        """Processes in namespaces of our bridge that no host of this checkout's state started:
        another checkout's lab (each keeps its own state dir), or one whose state was deleted.
        `up` must not kill those unasked; `down` is the explicit way to."""
        ours = {self._netns(h) for h in self.hosts if self._running_pid(h) is not None}
        found = {ns: network.netns_pids(ns) for ns in network.ours(self.bridge)[0] - ours}
        return {ns: pids for ns, pids in found.items() if pids}

    def _kill_leftovers(self) -> None:
        """A crashed run (or another checkout's lab on the same bridge) may have left host
        processes in our namespaces: the namespace names them exactly, so stop those PIDs."""
        for ns in network.ours(self.bridge)[0]:
            for pid in network.netns_pids(ns):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def stop_host(self, name: str) -> None:
        self._kill(self.host(name))

    def start_host(self, name: str) -> None:
        """Start a stopped host; return once its own ports answer. Other hosts may be out of the
        load balancer on purpose (after a failed deploy), and this host's firewall rules outlive
        it, so HAProxy's view is not waited for."""
        host = self.host(name)
        if self._running_pid(host) is None:
            self._spawn(host)
        self.wait_ready([host], backend=False)

    def reset(self, names: list[str] | None = None) -> None:
        """Put hosts back to their image state (as freshly provisioned), keeping their host keys:
        tests start from a known estate without a full `up`."""
        hosts = [self.host(n) for n in names] if names else self.hosts
        self._kill(*hosts)
        for host in hosts:
            # Firewall rules belong to the network namespace, which outlives the host's processes.
            subprocess.run(["ip", "netns", "exec", self._netns(host), "nft", "flush", "ruleset"],
                           capture_output=True)
            upper = self._host_dir(host) / "upper"
            ssh_dir = upper / "etc" / "ssh"
            keys = {p.name: p.read_bytes() for p in ssh_dir.glob("ssh_host_*")}
            shutil.rmtree(upper, ignore_errors=True)
            ssh_dir.mkdir(parents=True)
            for name, data in keys.items():
                (ssh_dir / name).write_bytes(data)
                (ssh_dir / name).chmod(0o644 if name.endswith(".pub") else 0o600)
            self._spawn(host)
        self.wait_ready(hosts)
        self._record_clean(hosts)

    # ---- which hosts changed since their reset --------------------------------------------------
    def _snapshot(self, host: Host) -> str | None:
        """snapshot.host_state of a running host; None when it is not running."""
        pid = self._running_pid(host)
        children = _children(pid) if pid is not None else []
        if not children:
            return None
        try:
            return snapshot.host_state(self._host_dir(host) / "upper", int(children[0]),
                                       self.backend if self.role(host) == "lb" else None)
        except OSError:  # stopped while we looked
            return None

    def _snapshots(self, hosts: list[Host]) -> dict[str, str | None]:
        with ThreadPoolExecutor(min(16, max(1, len(hosts)))) as pool:
            return dict(zip((h.name for h in hosts), pool.map(self._snapshot, hosts)))

    def _record_clean(self, hosts: list[Host]) -> None:
        for name, state in self._snapshots(hosts).items():
            if state is None:
                self._clean.pop(name, None)
            else:
                self._clean[name] = state

    def changed_hosts(self) -> list[str]:
        """The hosts that are not exactly as their last reset (or `up`) left them: files, tmpfs,
        processes, mounts, firewall, HAProxy's server states (lab/snapshot.py). A host stopped, or
        not reset by this Lab object, counts as changed."""
        now = self._snapshots(self.hosts)
        return [h.name for h in self.hosts if now[h.name] is None or now[h.name] != self._clean.get(h.name)]

    def reset_changed(self) -> list[str]:
        """Reset only the hosts that changed (see changed_hosts): the estate is then as a full
        reset would leave it, at the cost of booting those hosts alone. Returns their names."""
        changed = self.changed_hosts()
        if changed:
            self.reset(changed)
        return changed

    def slow_app(self, name: str, milliseconds: float) -> None:
        """Fault injection: the host's mywebapp waits `milliseconds` before each /health answer
        (0: as before). The app reads the file on each request; `reset` removes it."""
        if not 0 <= milliseconds <= 10000:
            raise LabError(f"slow {name}: {milliseconds:g} ms: give 0 to 10000")
        fault = "/etc/mywebapp/fault-delay-ms"
        script = f"rm -f {fault}" if milliseconds == 0 else \
            f"mkdir -p /etc/mywebapp && echo {milliseconds:g} > {fault}.new && mv {fault}.new {fault}"
        done = self.exec_in(name, ["sh", "-c", script])
        if done.returncode != 0:
            raise LabError(f"slow {name}: {done.stderr.strip() or 'exit ' + str(done.returncode)}")

    def rekey(self, name: str, update_known_hosts: bool = False) -> None:
        """Give a host a new host key (as after a reinstall), written while it is stopped."""
        host = self.host(name)
        was_running = self._running_pid(host) is not None
        self._kill(host)
        key = self._host_dir(host) / "upper" / "etc" / "ssh" / "ssh_host_ed25519_key"
        public = _write_ssh_key(key, f"root@{host.name}")
        if update_known_hosts:
            lines = [line for line in self.known_hosts.read_text().splitlines()
                     if line.split(" ", 1)[0].split(",")[0] != host.name]
            lines.append(f"{host.name},{host.address} {public}")
            self.known_hosts.write_text("\n".join(lines) + "\n")
        if was_running:
            self._spawn(host)
            self.wait_ready([host])

    def status(self) -> list[HostStatus]:
        def one(host: Host) -> HostStatus:
            running = self._running_pid(host) is not None
            restricted = self._ssh_source(host) is not None
            ports = {p: running and (self._listening(host, p) if p == 22 and restricted else _answers(host.address, p))
                     for p in self.ports(host)}
            return HostStatus(host.name, host.address, self.role(host), running, ports)

        with ThreadPoolExecutor(min(64, max(1, len(self.hosts)))) as pool:
            return list(pool.map(one, self.hosts))
