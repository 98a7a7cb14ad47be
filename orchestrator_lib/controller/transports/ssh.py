"""SSH transport: one paramiko connection per host, opened on first use and reused by every step
of a run. Host keys are verified against the environment's known_hosts unless the caller opts in
to trust-on-first-use.

How a host is reached (`route`): address, port, user, key files and jump host, each from the
inventory when it set it explicitly, else from ~/.ssh/config (or the estate's `ssh_config:`:
Host patterns with wildcards, HostName, User, Port, IdentityFile, ProxyJump), else the defaults
(the inventory's address, port 22, root, the ssh-agent's keys, direct). A host with a jump is
reached over a `direct-tcpip` channel of the jump host's own connection (one per jump host, shared
by every host behind it); both host keys are checked against known_hosts."""
from __future__ import annotations

import io
import logging
import socket
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import paramiko

from ..errors import HostKeyError, OutcomeUnknownError, TransportError, UnreachableError
from ..inventory import Host, Inventory
from .known_hosts import KnownHosts, KnownKey, fingerprint

# paramiko logs handshake failures with tracebacks from its own thread; we report them per host.
logging.getLogger("paramiko").addHandler(logging.NullHandler())
logging.getLogger("paramiko").propagate = False

KEY_TYPES = (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey)
#: jump hosts behind jump hosts (ProxyJump chains) deeper than this are refused as a loop
MAX_JUMPS = 4
#: a jump host that just failed is not retried by every host behind it within this many seconds
JUMP_FAILURE_MEMORY = 2.0
#: known_hosts key type -> the host key algorithms that prove it (an RSA key signs with SHA-2)
HOST_KEY_ALGORITHMS = {"ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")}


@dataclass(frozen=True)
class Route:
    """Where and as whom a host is reached, settled from inventory, ssh config and defaults."""
    address: str
    port: int
    user: str
    keys: tuple[Path, ...]
    jump: str | None


@dataclass(frozen=True)
class ExecResult:
    rc: int
    stdout: str
    stderr: str
    duration: float


class _Transport(paramiko.Transport):
    """paramiko's reader thread wakes every 0.1 s to see whether it should stop (paramiko issue
    #361): with 450 idle connections that cost 10% of a core, at 1 s 1.6%. Closing does not wait
    for the thread, and keepalives are still sent on time to the second."""
    _active_check_timeout = 1.0


def _load_private_key(path: Path) -> paramiko.PKey:
    errors = []
    for key_type in KEY_TYPES:
        try:
            return key_type.from_private_key_file(str(path))
        except FileNotFoundError:
            raise TransportError(f"private key {path} does not exist") from None
        except IsADirectoryError:
            raise TransportError(f"private key {path} is a directory, not a key file") from None
        except PermissionError:
            raise TransportError(f"private key {path} is not readable (permission denied)") from None
        except paramiko.PasswordRequiredException:
            raise TransportError(f"private key {path} is encrypted: load it into ssh-agent instead") from None
        except (paramiko.SSHException, ValueError) as err:
            errors.append(str(err))
    raise TransportError(f"private key {path}: not a key paramiko can read ({errors[-1]})")


def _read_ssh_config(inventory: Inventory, given: Path | None) -> paramiko.SSHConfig | None:
    """The estate's `ssh_config:` file (which must exist), else `given` (~/.ssh/config) if it exists."""
    path = getattr(inventory, "ssh_config", None)
    if path is not None and not path.is_file():
        raise TransportError(f"{inventory.path}: ssh_config: {path} does not exist")
    path = path or given
    if path is None or not path.exists():
        return None
    try:
        return paramiko.SSHConfig.from_path(str(path))
    except (OSError, paramiko.SSHException, ValueError) as err:
        raise TransportError(f"{path}: cannot read as an ssh config: {err}") from None


class SSHPool:
    """Connections to the hosts of one inventory. Thread-safe: the fan-out calls it from many
    workers at once; each host is connected at most once at a time."""

    def __init__(self, inventory: Inventory, *, trust_on_first_use: bool = False,
                 connect_timeout: float = 5.0, keepalive: int = 15,
                 ssh_config: Path | None = Path("~/.ssh/config").expanduser()) -> None:
        self.inventory = inventory
        self.trust_on_first_use = trust_on_first_use
        self.connect_timeout = connect_timeout
        self.keepalive = keepalive
        self.known_hosts_path = inventory.known_hosts or Path("~/.ssh/known_hosts").expanduser()
        self.known_hosts = KnownHosts.load(self.known_hosts_path)
        self.ssh_config = _read_ssh_config(inventory, ssh_config)
        self.connects = 0  # how many connections were opened: tests prove reuse with it
        self._keys: dict[Path, paramiko.PKey] = {}
        self._transports: dict[str, paramiko.Transport] = {}
        self._host_locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self._jump_hosts: dict[str, Host] = {}
        self._jump_failures: dict[str, tuple[float, TransportError]] = {}

    def check_keys(self, hosts: list[Host]) -> None:
        """Read the key files these hosts use, before connecting any: a missing or unreadable
        key is one error about the environment file, not the same "unreachable" on every host.
        (Not at construction: discovery without connecting must work before the keys exist.)"""
        users: dict[Path, list[str]] = {}
        for host in hosts:
            if host.key and host.key not in self._keys:
                users.setdefault(host.key, []).append(host.name)
        for path, names in users.items():
            try:
                self._private_key(path)
            except TransportError as err:
                shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
                raise TransportError(f"{self.inventory.path}: {err} (the key of {shown})") from None

    # ---- connection setup -----------------------------------------------------------------
    def route(self, host: Host) -> Route:
        """Address, port, user, keys and jump: the inventory's explicit values, then ~/.ssh/config,
        then the defaults (Host.explicit says which values the inventory set)."""
        cfg = self.ssh_config.lookup(host.name) if self.ssh_config is not None else {}
        explicit = host.explicit
        address = host.address
        if "address" not in explicit and cfg.get("hostname") and cfg["hostname"] != host.name:
            address = cfg["hostname"]
        port = host.port if "port" in explicit or "port" not in cfg else int(cfg["port"])
        user = host.user if "user" in explicit or "user" not in cfg else cfg["user"]
        if "key" in explicit or not cfg.get("identityfile"):
            keys: tuple[Path, ...] = (host.key,) if host.key else ()
        else:
            keys = tuple(Path(p).expanduser() for p in cfg["identityfile"])
        jump = host.jump if "jump" in explicit else cfg.get("proxyjump")
        if jump is not None and jump.strip().lower() == "none":
            jump = None
        return Route(address, port, user, keys, jump)

    def jump_host(self, spec: str, depth: int = 0) -> Host:
        """The host a `jump` names: a host of the estate, or `[user@]host[:port]` (an ssh config
        alias, say); a ProxyJump list `a,b` is b reached through a."""
        if depth > MAX_JUMPS:
            raise TransportError(f"{self.inventory.path}: jump {spec}: more than {MAX_JUMPS} jump hosts in a row (a loop?)")
        hops = [h.strip() for h in spec.split(",") if h.strip()]
        last, before = hops[-1], ",".join(hops[:-1]) or None
        with self._lock:
            if spec in self._jump_hosts:
                return self._jump_hosts[spec]
        hosts = getattr(self.inventory, "hosts", {})
        if last in hosts and before is None:
            found = hosts[last]
        else:
            user, _, rest = last.rpartition("@")
            name, port = rest, None
            if rest.count(":") == 1:
                name, port_text = rest.split(":")
                try:
                    port = int(port_text)
                except ValueError:
                    raise TransportError(f"jump {spec}: port {port_text!r} is not a number") from None
            base = hosts.get(name) or Host(name=name, address=name, explicit=frozenset())
            explicit = set(base.explicit)
            if user:
                explicit.add("user")
            if port:
                explicit.add("port")
            if before is not None:
                explicit.add("jump")
            found = replace(base, user=user or base.user, port=port or base.port,
                            jump=before if before is not None else base.jump, explicit=frozenset(explicit))
        with self._lock:
            return self._jump_hosts.setdefault(spec, found)

    def _private_key(self, path: Path) -> paramiko.PKey:
        with self._lock:
            if path not in self._keys:  # parse once per run, not once per host
                self._keys[path] = _load_private_key(path)
            return self._keys[path]

    @staticmethod
    def _host_names(host: Host, address: str, port: int) -> list[str]:
        """The names the host's keys may be filed under in known_hosts, the address first."""
        return [address if port == 22 else f"[{address}]:{port}", host.name]

    def _known_keys(self, names: list[str]) -> list[KnownKey]:
        return next(filter(None, (self.known_hosts.lookup(n, names) for n in names)), [])

    @staticmethod
    def _prefer_known_key_types(transport: paramiko.Transport, known: list[KnownKey]) -> None:
        """Ask for the key types known_hosts holds for this host first, as OpenSSH and
        paramiko.SSHClient do: a host with an ed25519 key and an RSA one we know by its RSA key
        would otherwise show its ed25519 key and look changed."""
        wanted = [alg for k in known for alg in HOST_KEY_ALGORITHMS.get(k.key_type, (k.key_type,))]
        options = transport.get_security_options()
        first = [t for t in dict.fromkeys(wanted) if t in options.key_types]
        if first:
            options.key_types = first + [t for t in options.key_types if t not in first]

    def _check_host_key(self, host: Host, names: list[str], known: list[KnownKey], key: paramiko.PKey) -> None:
        """`known`: the keys known_hosts holds under `names` (looked up once per connection)."""
        key_type, blob, where = key.get_name(), key.asbytes(), self.known_hosts_path
        if self.known_hosts.is_revoked(blob):
            raise HostKeyError(f"{host.name}: host key {fingerprint(blob)} is marked @revoked in {where}")
        if not known:
            if not self.trust_on_first_use:
                missing = "" if where.exists() else ", which does not exist"
                raise HostKeyError(f"{host.name}: host key {fingerprint(blob)} is not in {where}{missing} "
                                   f"(add it, or opt in to trust on first use)")
            self.known_hosts.add(names[0], key_type, blob)
            return
        if any(k.key_type == key_type and k.blob == blob for k in known):
            return
        want = next((k for k in known if k.key_type == key_type), known[0])
        raise HostKeyError(f"{host.name}: host key changed: got {key_type} {fingerprint(blob)}, "
                           f"expected {want.key_type} {fingerprint(want.blob)} from {where}"
                           + (f":{want.line}" if want.line else ""))

    def _authenticate(self, transport: paramiko.Transport, host: Host, user: str, keys: list[Path]) -> None:
        candidates: list[paramiko.PKey] = [self._private_key(p) for p in keys]
        if not candidates:
            candidates = list(paramiko.Agent().get_keys())
        for key in candidates:
            try:
                transport.auth_publickey(user, key)
                return
            except paramiko.AuthenticationException:
                continue
        tried = ", ".join(str(p) for p in keys) or "the ssh-agent's keys"
        raise TransportError(f"{host.name}: authentication as {user} failed with {tried}")

    def _open_socket(self, host: Host, route: Route, depth: int) -> socket.socket | paramiko.Channel:
        """A TCP connection to the host, or a direct-tcpip channel through its jump host."""
        address, port = route.address, route.port
        if route.jump is None:
            try:
                sock = socket.create_connection((address, port), timeout=self.connect_timeout)
            except OSError as err:
                reason = err.strerror or str(err) or type(err).__name__
                raise UnreachableError(f"{host.name}: unreachable at {address}:{port}: {reason.lower()}") from None
            # paramiko leaves Nagle on: each request/reply would stall ~40 ms on delayed ACKs.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        jump = self.jump_host(route.jump, depth + 1)
        if jump.name == host.name:
            raise TransportError(f"{host.name}: its jump host is itself (ProxyJump {route.jump})")
        try:
            via = self._jump_transport(jump, depth + 1)
            return via.open_channel("direct-tcpip", (address, port), ("127.0.0.1", 0), timeout=self.connect_timeout)
        except HostKeyError as err:   # the jump host's key: still a key problem, not a network one
            raise HostKeyError(f"{host.name}: through {jump.name}: {err}") from None
        except TransportError as err:
            raise UnreachableError(f"{host.name}: unreachable through {jump.name} ({err})") from None
        except (paramiko.SSHException, OSError, EOFError) as err:
            reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
            raise UnreachableError(f"{host.name}: unreachable through {jump.name} at {address}:{port}: "
                                   f"{reason.lower()}") from None

    def _jump_transport(self, jump: Host, depth: int) -> paramiko.Transport:
        """The jump host's connection; a failure is remembered briefly, so the hosts behind a
        jump host that is down each report it at once instead of each waiting for a timeout."""
        with self._lock:
            failed = self._jump_failures.get(jump.name)
        if failed is not None and time.monotonic() - failed[0] < JUMP_FAILURE_MEMORY:
            raise failed[1]
        try:
            return self.transport(jump, depth=depth)
        except TransportError as err:
            with self._lock:
                self._jump_failures[jump.name] = (time.monotonic(), err)
            raise

    def _connect(self, host: Host, depth: int = 0) -> paramiko.Transport:
        route = self.route(host)
        address, port, user, keys = route.address, route.port, route.user, list(route.keys)
        sock = self._open_socket(host, route, depth)
        transport = _Transport(sock)
        names = self._host_names(host, address, port)
        known = self._known_keys(names)
        self._prefer_known_key_types(transport, known)
        try:
            transport.start_client(timeout=self.connect_timeout)
            self._check_host_key(host, names, known, transport.get_remote_server_key())
            self._authenticate(transport, host, user, keys)
        except TransportError:
            transport.close()
            raise
        except (paramiko.SSHException, OSError, EOFError) as err:
            transport.close()
            raise UnreachableError(f"{host.name}: ssh handshake with {address}:{port} failed: {err or type(err).__name__}") from None
        transport.set_keepalive(self.keepalive)
        self.connects += 1
        return transport

    def transport(self, host: Host, *, fresh: bool = False, depth: int = 0) -> paramiko.Transport:
        """The host's open connection, connecting (or reconnecting when it dropped) as needed."""
        with self._lock:
            host_lock = self._host_locks.setdefault(host.name, threading.Lock())
        with host_lock:
            current = self._transports.get(host.name)
            if current is not None and current.is_active() and not fresh:
                return current
            if current is not None:
                current.close()
            self._transports[host.name] = self._connect(host, depth)
            return self._transports[host.name]

    # ---- operations -----------------------------------------------------------------------
    def exec(self, host: Host, command: str, stdin: bytes | None = None, timeout: float = 60) -> ExecResult:
        """Run one command; reconnect once if the connection dropped since it was last used. Once
        the command was sent it is never sent again: a connection lost then is UnreachableError
        saying it may or may not have run."""
        started = time.monotonic()
        chan = self._start(host, command, timeout)
        try:
            return self._finish(chan, stdin, started)
        except socket.timeout:
            raise OutcomeUnknownError(f"{host.name}: command timed out after {timeout:g} s (it may or may not "
                                      f"have run; not sent again)") from None
        except (paramiko.SSHException, EOFError, OSError) as err:
            raise OutcomeUnknownError(f"{host.name}: connection lost while the command ran (it may or may not "
                                      f"have run; not sent again): {err or type(err).__name__}") from None
        finally:
            try:
                chan.close()
            except (paramiko.SSHException, EOFError, OSError):  # the connection is already gone
                pass

    def _start(self, host: Host, command: str, timeout: float) -> paramiko.Channel:
        """A session running `command`. Only a connection that fails before the command is
        under way (stdin not sent yet) is reconnected, once."""
        for attempt in (1, 2):
            transport = self.transport(host, fresh=attempt == 2)
            chan = None
            try:
                chan = transport.open_session(timeout=timeout)
                chan.settimeout(timeout)
                chan.exec_command(command)
                return chan
            except (paramiko.SSHException, EOFError, OSError) as err:
                if chan is not None:
                    chan.close()
                if isinstance(err, socket.timeout):
                    raise TransportError(f"{host.name}: command timed out after {timeout:g} s") from None
                if attempt == 2:
                    raise UnreachableError(f"{host.name}: connection lost: {err or type(err).__name__}") from None
        raise AssertionError("unreachable")

    @staticmethod
    def _finish(chan: paramiko.Channel, stdin: bytes | None, started: float) -> ExecResult:
        if stdin:
            chan.sendall(stdin)
        chan.shutdown_write()
        stdout = chan.makefile("rb").read()
        stderr = chan.makefile_stderr("rb").read()
        rc = chan.recv_exit_status()
        if rc == -1 and not chan.get_transport().is_active():  # no exit status: the connection went
            raise EOFError("the connection closed before the command's exit status came")
        return ExecResult(rc, stdout.decode(errors="replace"), stderr.decode(errors="replace"),
                          time.monotonic() - started)

    def put(self, host: Host, data: bytes, path: str, mode: int = 0o644) -> None:
        try:
            sftp = paramiko.SFTPClient.from_transport(self.transport(host))
            try:
                sftp.putfo(io.BytesIO(data), path)
                sftp.chmod(path, mode)
            finally:
                sftp.close()
        except (paramiko.SSHException, OSError) as err:
            raise TransportError(f"{host.name}: could not copy {path}: {err}") from None

    def close(self) -> None:
        with self._lock:
            transports, self._transports = list(self._transports.values()), {}
        for transport in transports:
            transport.close()

    def __enter__(self) -> "SSHPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
