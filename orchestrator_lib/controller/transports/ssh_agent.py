"""Controller side of the host agent protocol: one SSH exec per action per host, or (the fast path)
one request line on a resident agent per host.

The agent is installed on a host as a directory named by the zipapp's content hash, unpacked and
with its bytecode compiled by the host's own python3, so an action neither decompresses nor
compiles anything: it is a bare interpreter start plus the few modules the action imports. The
common case is a single exec: run the agent if it is there, else (exit 111) send the zipapp on the
stdin of one exec that installs it (see INSTALL_SCRIPT), and run again; for the resident agent that
same session goes on to serve (first contact: the 111 exit, then one session).

Resident agent (SSHTransport, unless made with resident=False): the first call to a host opens one SSH session running the agent with `--serve` and keeps it for the run; every
call then writes its request as one line and reads one reply line (same JSON as the one-shot
exec, same policy check and audit line per request on the host). A new session must first answer
a probe line (SERVE_PROBE, a request the agent refuses as a protocol error: nothing runs, nothing
is audited) within SERVE_PROBE_TIMEOUT: a host whose key runs a forced command (the agent one-shot,
waiting for EOF, or anything else) cannot serve, and the call falls back to the one-shot exec at
once, for the rest of the run on that host. A session found dead before a request was written is
reopened once; if that fails too, the call falls back to the one-shot exec. A request is never
written twice: a session that breaks or times out after a request went out leaves that host's
result unknown (UNREACHABLE, naming the reqid: it may or may not have run), and the same reqid is
not sent to that host again, not even by a retry (tries). SSHTransport.close() closes the sessions.
"""
from __future__ import annotations

import getpass
import shlex
import socket
import threading
import time
import uuid
from typing import Sequence

import paramiko

from ...host.build import agent_archive
from ...protocol import MISSING_RC, SERVE_FLAG, SERVE_PROBE, SERVE_PROBE_TIMEOUT, Reply, Request
from ..errors import OutcomeUnknownError, TransportError
from ..inventory import Host
from ..orchestration.results import HostResult, Status
from . import sudo
from .base import Transport
from .ssh import SSHPool

AGENT_DIR = "/var/lib/orchestrator"
PYTHON = "/usr/bin/python3"
#: -S: no site module and no site-packages (the agent is stdlib only); -E: ignore PYTHON* variables.
#: Never -B: the interpreter must be free to write bytecode, e.g. after a Python upgrade on the host.
PYTHON_FLAGS = "-S -E"
#: Run on the host by its python3 as `python3 -S -E -c INSTALL_SCRIPT DIR SHA12 [--serve]`, with the
#: zipapp on stdin after a header line giving its length (install_input): one SSH session, no SFTP, no
#: file left behind. It reads exactly that many bytes (os.read: never past them), refuses them unless
#: their sha256 starts with SHA12 (the directory's name is the content's hash), unpacks and compiles
#: them (for the host's Python version, with tracebacks naming the final paths) into a temporary
#: directory and renames it into place. rename() is atomic, so a concurrent caller sees the whole agent
#: or none of it; when several callers race, the first rename wins and the others drop their copy.
#: Then the install pins this agent (PIN_FILE, written atomically: the restricted keys' gate runs
#: only the agent named there) and removes every other installed agent, so no caller can pick an
#: older agent with older rules. With --serve it then becomes the resident agent (exec), on the same
#: session: what follows the zipapp on stdin is the serve mode's (first contact = one session).
PIN_FILE = f"{AGENT_DIR}/current"
INSTALL_SCRIPT = """\
import compileall, hashlib, io, os, re, shutil, sys, tempfile, zipfile
home, sha, *mode = sys.argv[1:]
if not re.fullmatch(r"[0-9a-f]{12}", sha) or mode not in ([], ["--serve"]):
    sys.exit("orchestrator install: usage: DIR SHA12 [--serve]")
def read(n):
    got = bytearray()
    while len(got) < n:
        chunk = os.read(0, n - len(got))
        if not chunk:
            sys.exit(f"orchestrator install: the upload ended after {len(got)} of {n} bytes")
        got += chunk
    return bytes(got)
header = b""
while not header.endswith(b"\\n") and len(header) < 16:
    header += read(1)
data = read(int(header))
if not hashlib.sha256(data).hexdigest().startswith(sha):
    sys.exit(f"orchestrator install: the upload does not have hash {sha}")
name = f"agent-{sha}"
final = os.path.join(home, name)
os.makedirs(home, 0o755, exist_ok=True)
if not os.path.isfile(os.path.join(final, "__main__.py")):
    tmp = tempfile.mkdtemp(prefix=f"{name}.tmp-", dir=home)
    try:
        zipfile.ZipFile(io.BytesIO(data)).extractall(tmp)
        if not compileall.compile_dir(tmp, ddir=final, quiet=1):
            sys.exit(f"orchestrator install: cannot compile the agent in {tmp}")
        os.chmod(tmp, 0o755)
        try:
            os.rename(tmp, final)
        except OSError:  # taken: fine if by another caller's complete copy
            if not os.path.isfile(os.path.join(final, "__main__.py")):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
pin = os.path.join(home, "current")
pin_tmp = f"{pin}.tmp-{os.getpid()}"
with open(pin_tmp, "w") as f:
    f.write(sha + "\\n")
os.chmod(pin_tmp, 0o644)
os.rename(pin_tmp, pin)
for old in os.listdir(home):
    if re.fullmatch(r"agent-[0-9a-f]{12}", old) and old != name:
        shutil.rmtree(os.path.join(home, old), ignore_errors=True)
if mode:
    sys.stdout.flush()
    os.execv(sys.executable, [sys.executable, "-S", "-E", os.path.join(final, "__main__.py"), *mode])
"""


def new_reqid() -> str:
    return uuid.uuid4().hex


def default_caller() -> str:
    """`user@controller`, what the audit log on each host records as the caller."""
    try:
        user = getpass.getuser()
    except Exception:
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def agent_path(sha: str) -> str:
    """The agent's directory on a host (the unpacked zipapp, with its __pycache__)."""
    return f"{AGENT_DIR}/agent-{sha}"


def agent_command(sha: str, become: str | None = None) -> str:
    """The one-shot agent as the login user (root), or as root through `sudo -n` (become: sudo)."""
    if become == "sudo":
        return sudo.agent_command(sha)
    main = shlex.quote(f"{agent_path(sha)}/__main__.py")
    return f"[ -f {main} ] || exit {MISSING_RC}; exec {PYTHON} {PYTHON_FLAGS} {main}"


def serve_command(sha: str, become: str | None = None) -> str:
    return f"{agent_command(sha, become)} {SERVE_FLAG}"


def install_command(sha: str, serve: bool = False) -> str:
    """The root install (INSTALL_SCRIPT) of agent-<sha>; with `serve`, it then runs as the resident
    agent on the same session."""
    args = [PYTHON, *PYTHON_FLAGS.split(), "-c", INSTALL_SCRIPT, AGENT_DIR, sha] + ([SERVE_FLAG] if serve else [])
    return " ".join(shlex.quote(a) for a in args)


def install_input(data: bytes) -> bytes:
    """What INSTALL_SCRIPT reads on stdin: the zipapp's length on a line, then the zipapp."""
    return b"%d\n" % len(data) + data


def upload_agent(pool: SSHPool, host: Host, data: bytes, sha: str, timeout: float = 60) -> None:
    """Install the agent with one exec, the zipapp on its stdin (INSTALL_SCRIPT; under sudo,
    sudo.INSTALLER as root, which checks the bytes' hash before installing them)."""
    if getattr(host, "become", None) == "sudo":
        r = pool.exec(host, sudo.install_command(sha), stdin=data, timeout=timeout)
    else:
        r = pool.exec(host, install_command(sha), stdin=install_input(data), timeout=timeout)
    if r.rc != 0:
        raise RuntimeError(install_failure(pool, host, sha, r.rc, r.stderr))


def install_failure(pool: SSHPool, host: Host, sha: str, rc: int | None, stderr: str) -> str:
    """Why an install did not happen, in one line: sudo's refusal (naming the rule it needs), or
    the installer's own last word."""
    if getattr(host, "become", None) == "sudo":
        refused = sudo.refusal(host.name, _login_user(pool, host), 1 if rc is None else rc, "", stderr)
        if refused:
            return refused
        return f"installing {agent_path(sha)} as root failed: {_first_line(stderr) or f'rc {rc}'}"
    return f"installing {agent_path(sha)} failed: {_first_line(stderr) or f'rc {rc}'}"


def _login_user(pool: SSHPool, host: Host) -> str:
    route = getattr(pool, "route", None)
    return route(host).user if route is not None else getattr(host, "user", "?")


def _first_line(text: str) -> str:
    """The line that explains: the first one, except for a Python traceback, where it is the last."""
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    if not lines:
        return ""
    return lines[-1] if lines[0].startswith("Traceback (most recent call last)") else lines[0]


def parse_reply(host: str, label: str, rc: int, stdout: str, stderr: str, duration: float) -> HostResult:
    """The agent's JSON reply as a HostResult; anything else is FAILED with a one-line reason."""
    result = HostResult(host=host, status=Status.FAILED, rc=rc, stdout=stdout, stderr=stderr, duration=duration)
    reply = Reply.decode(stdout)
    if reply is None:
        why = _first_line(stderr) or (f"stdout: {_first_line(stdout)[:120]}" if stdout.strip() else "no output")
        result.message = f"{label}: no valid reply from the agent (rc {rc}): {why}"
        return result
    result.status, result.message, result.data = reply.status, reply.message, reply.data
    result.before, result.after = reply.before, reply.after
    if rc != 0 and result.status is not Status.FAILED:  # a reply with a bad exit is not a success
        result.status = Status.FAILED
        result.message = f"{label}: agent exited {rc}: {result.message}"
    return result


# --------------------------------------------------------------------------- resident agents

class ChannelBroken(Exception):
    """The resident agent's session is gone (EOF, closed); `missing` when the agent is not
    installed (the session exited 111 before any reply); `written` when (part of) the request had
    gone out: the agent may have run it."""

    def __init__(self, why: str, missing: bool = False, written: bool = False) -> None:
        super().__init__(why)
        self.missing = missing
        self.written = written


class ChannelTimeout(Exception):
    """No reply line within the call's timeout."""


class ServeUnavailable(Exception):
    """The session runs something that does not answer as `--serve` does (a forced command)."""


class InstallFailed(Exception):
    """The install-and-serve session ended before serving: the install's one-line reason."""


class AgentChannel:
    """One SSH session running `agent --serve`: request line out, reply line in."""

    def __init__(self, chan: paramiko.Channel) -> None:
        self.chan = chan
        self.buffer = b""
        self.requests = 0
        self._sent = 0  # bytes of the current line already out

    @classmethod
    def open(cls, transport: paramiko.Transport, sha: str, timeout: float, become: str | None = None) -> "AgentChannel":
        chan = transport.open_session(timeout=timeout)
        try:
            chan.exec_command(serve_command(sha, become))
        except BaseException:
            chan.close()
            raise
        return cls(chan)

    @classmethod
    def install_and_serve(cls, transport: paramiko.Transport, sha: str, data: bytes,
                          timeout: float, become: str | None = None) -> "AgentChannel":
        """First contact in one session: the installer (INSTALL_SCRIPT, or sudo.INSTALLER as root)
        receives the zipapp on stdin and installs it, then the resident agent serves the rest of
        the session (probe first)."""
        if become == "sudo":
            command, stdin = sudo.install_and_serve_command(sha, len(data)), data
        else:
            command, stdin = install_command(sha, serve=True), install_input(data)
        chan = transport.open_session(timeout=timeout)
        try:
            chan.settimeout(timeout)
            chan.exec_command(command)
            chan.sendall(stdin)
        except BaseException:
            chan.close()
            raise
        return cls(chan)

    def exit_status(self) -> int | None:
        return self.chan.recv_exit_status() if self.chan.exit_status_ready() else None

    def stderr_after_exit(self, timeout: float = 5.0) -> str:
        """All the session wrote on stderr once it ended (why an install failed)."""
        out = b""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                self.chan.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = self.chan.recv_stderr(65536)
                if not chunk:
                    break
                out += chunk
        except Exception:
            pass
        return out.decode(errors="replace")

    def dead(self) -> bool:
        """Already known to be gone, before we write anything to it."""
        chan = self.chan
        return bool(chan.closed or chan.eof_received or chan.exit_status_ready())

    def _broken(self, why: str) -> ChannelBroken:
        missing = False
        if not self.buffer.strip():
            # the exit status may arrive just after the EOF: give it a moment (paramiko sets
            # status_event on the exit status and on the session's close, whichever comes first)
            deadline = time.monotonic() + 2.0
            event = getattr(self.chan, "status_event", None)
            while not self.chan.exit_status_ready() and time.monotonic() < deadline:
                if event is not None:
                    event.wait(deadline - time.monotonic())
                else:
                    time.sleep(0.005)
            if self.chan.exit_status_ready():
                missing = self.chan.recv_exit_status() == MISSING_RC
        return ChannelBroken(why, missing=missing, written=self._sent > 0)

    def probe(self, timeout: float) -> None:
        """Prove the session serves: SERVE_PROBE must come back as one JSON reply within `timeout`.
        ServeUnavailable otherwise; ChannelBroken when the session ends (e.g. exit 111)."""
        try:
            line = self._exchange(SERVE_PROBE, timeout)
        except ChannelTimeout:
            raise ServeUnavailable(f"no answer to the serve probe within {timeout:g} s") from None
        if Reply.decode(line) is None:
            raise ServeUnavailable(f"the session answered {line[:80]!r}, not as the agent's serve mode")

    def request(self, payload: bytes, timeout: float) -> tuple[str, str]:
        """Send one request line, return (reply line, stderr the agent wrote meanwhile)."""
        line = self._exchange(payload.replace(b"\n", b" ") + b"\n", timeout)
        self.requests += 1
        return line, self._stderr()

    def _exchange(self, data: bytes, timeout: float) -> str:
        """Write one line, read one line. ChannelBroken says whether any of it went out."""
        self._sent = 0
        if self.dead():  # e.g. exit 111 before the probe: _broken tells a missing agent
            raise self._broken("the session had ended")
        deadline = time.monotonic() + timeout
        try:
            self.chan.settimeout(timeout)
            self._write(data)
            while b"\n" not in self.buffer:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ChannelTimeout()
                self.chan.settimeout(left)
                chunk = self.chan.recv(65536)
                if not chunk:
                    raise self._broken("the agent closed its output")
                self.buffer += chunk
        except socket.timeout:
            raise ChannelTimeout() from None
        except (EOFError, OSError) as err:  # paramiko: SSHException is an Exception, OSError on closed
            raise self._broken(f"{type(err).__name__}: {err}") from None
        except Exception as err:
            if type(err).__module__.startswith("paramiko"):
                raise self._broken(f"{type(err).__name__}: {err}") from None
            raise
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode(errors="replace")

    def _write(self, data: bytes) -> None:
        """send() until all of it is out, counting what went (sendall would not say)."""
        while self._sent < len(data):
            n = self.chan.send(data[self._sent:])
            if n <= 0:
                raise EOFError("the session takes no more input")
            self._sent += n

    def _stderr(self) -> str:
        """What the agent wrote on stderr (tracebacks), drained so its window never fills."""
        out = b""
        try:
            while self.chan.recv_stderr_ready():
                out += self.chan.recv_stderr(65536)
        except Exception:
            pass
        return out.decode(errors="replace")

    def close(self) -> None:
        try:
            self.chan.close()
        except Exception:
            pass


class _HostSlot:
    __slots__ = ("lock", "channel", "one_shot", "unknown")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.channel: AgentChannel | None = None
        self.one_shot = ""          # why this host cannot serve: the one-shot exec for the run
        self.unknown: dict[str, str] = {}  # reqid -> why its outcome is unknown: never resent


class SSHTransport(Transport):
    """Requests over SSH: the pool's connections and, on them, one resident agent per host (a
    slot: lock + session) for the run. `resident=False`: the one-shot exec for every call."""

    def __init__(self, pool: SSHPool, *, resident: bool = True) -> None:
        self.pool = pool
        self.resident = resident
        self.lock = threading.Lock()
        self.slots: dict[str, _HostSlot] = {}
        self.opened = 0  # resident sessions started: tests prove reuse with it

    def slot(self, host_name: str) -> _HostSlot:
        with self.lock:
            return self.slots.setdefault(host_name, _HostSlot())

    def connect(self, hosts: Sequence[Host]) -> None:
        self.pool.check_keys(list(hosts))  # a bad key file: one error, not "unreachable" on every host

    def close(self) -> None:
        """Close every session now, without the slot locks (a worker holds its slot's lock for a
        whole request, so waiting for it would make Ctrl-C wait out the longest running action):
        closing the channel ends the worker's read, and its result says the outcome is unknown.
        Then the connections."""
        with self.lock:
            slots = list(self.slots.values())
        for slot in slots:
            channel, slot.channel = slot.channel, None
            if channel is not None:
                channel.close()
        self.pool.close()

    def call(self, host: Host, request: Request, timeout: float | None) -> HostResult:
        """The request on the host's resident agent, or by the one-shot exec when the host cannot
        serve. Transport errors propagate (the fan-out makes them UNREACHABLE)."""
        timeout = 300.0 if timeout is None else timeout
        data, sha = agent_archive()
        payload = request.encode(dict(host.facts))
        started = time.monotonic()
        if self.resident:
            result = self._call_resident(host, request, payload, timeout, started)
            if result is not None:
                return result
        command = agent_command(sha, getattr(host, "become", None))
        try:
            r = self.pool.exec(host, command, stdin=payload, timeout=timeout)
            if r.rc == MISSING_RC and not r.stdout.strip():
                try:
                    upload_agent(self.pool, host, data, sha, timeout=timeout)
                except RuntimeError as e:
                    return HostResult(host=host.name, status=Status.FAILED, message=f"{request.label}: {e}",
                                      rc=MISSING_RC, duration=time.monotonic() - started)
                r = self.pool.exec(host, command, stdin=payload, timeout=timeout)
        except OutcomeUnknownError as err:
            slot = self.slot(host.name)  # _call_resident answers a retry of this reqid without sending it
            with slot.lock:
                slot.unknown[request.reqid] = str(err)
            raise
        refused = sudo.refusal(host.name, _login_user(self.pool, host), r.rc, r.stdout, r.stderr) if getattr(host, "become", None) else None
        if refused:
            return HostResult(host=host.name, status=Status.FAILED, message=f"{request.label}: {refused}", rc=r.rc,
                              stderr=r.stderr, duration=time.monotonic() - started)
        return parse_reply(host.name, request.label, r.rc, r.stdout, r.stderr, time.monotonic() - started)

    def _serving_channel(self, host: Host, slot: _HostSlot, sha: str, timeout: float,
                         install: bytes | None = None) -> AgentChannel:
        """The host's live resident session, opened and probed if there is none (caller holds
        slot.lock); with `install` (the zipapp), the session installs it first (first contact).
        Raises what opening or probing raised; InstallFailed when the install did not complete;
        TransportError when the host is gone."""
        channel = slot.channel
        if channel is not None and channel.dead():
            channel.close()
            channel = slot.channel = None
        if channel is None:
            transport = self.pool.transport(host)
            become = getattr(host, "become", None)
            if install is not None:
                channel = AgentChannel.install_and_serve(transport, sha, install, timeout, become)
            else:
                channel = AgentChannel.open(transport, sha, timeout, become)
            self.opened += 1
            try:
                # an install compiles the agent first: it has the call's timeout, not the probe's
                channel.probe(timeout if install is not None else min(timeout, SERVE_PROBE_TIMEOUT))
            except ChannelBroken as broken:
                if install is not None and not _exited_ok(channel):  # (exit 0: installed, but not serving)
                    why = channel.stderr_after_exit()
                    rc = channel.exit_status()
                    channel.close()
                    raise InstallFailed(install_failure(self.pool, host, sha, rc, why or str(broken))) from None
                channel.close()
                raise
            except BaseException:
                channel.close()
                raise
            slot.channel = channel
        return channel

    def _call_resident(self, host: Host, request: Request, payload: bytes, timeout: float,
                       started: float) -> HostResult | None:
        """The call over the host's resident agent; None when the one-shot exec must do it, which
        is only ever when the request was not written. TransportError (the host cannot be reached
        at all, or the request timed out) propagates."""
        data, sha = agent_archive()
        label, reqid = request.label, request.reqid
        slot = self.slot(host.name)
        with slot.lock:
            if reqid in slot.unknown:  # a retry (tries) of a request that may have run
                return _unknown(host, label, reqid, slot.unknown[reqid], started)
            if slot.one_shot:
                return None
            installed = False
            install: bytes | None = None
            for attempt in (1, 2, 3):  # serve; on exit 111 install + serve; a plain serve once more
                try:
                    channel = self._serving_channel(host, slot, sha, timeout, install)
                    install = None
                except TransportError:
                    raise
                except ServeUnavailable as why:  # a forced command: do not wait for it again
                    slot.one_shot = str(why)
                    return None
                except InstallFailed as e:
                    return HostResult(host=host.name, status=Status.FAILED, message=f"{label}: {e}",
                                      rc=MISSING_RC, duration=time.monotonic() - started)
                except ChannelBroken as broken:
                    install = None
                    if broken.missing and not installed:
                        installed = True
                        install = data  # the next session installs, then serves
                    continue
                except Exception:  # the session could not be opened
                    continue
                try:
                    line, stderr = channel.request(payload, timeout)
                except ChannelTimeout:
                    channel.close()
                    slot.channel = None
                    slot.unknown[reqid] = f"no reply came within {timeout:g} s"
                    raise TransportError(f"{host.name}: command timed out after {timeout:g} s (request {reqid} "
                                         f"may or may not have run; it is not sent again)") from None
                except ChannelBroken as broken:
                    channel.close()
                    slot.channel = None
                    if broken.written:
                        slot.unknown[reqid] = f"the agent's session broke: {broken}"
                        return _unknown(host, label, reqid, slot.unknown[reqid], started)
                    continue  # nothing went out: safe on a new session, or by the one-shot exec
                return parse_reply(host.name, label, 0, line, stderr, time.monotonic() - started)
        return None


def _exited_ok(channel: AgentChannel) -> bool:
    chan = channel.chan
    return bool(chan.exit_status_ready() and chan.recv_exit_status() == 0)


def _unknown(host: Host, label: str, reqid: str, why: str, started: float) -> HostResult:
    """The result of a request that went out and whose reply never came."""
    return HostResult(host=host.name, status=Status.UNREACHABLE, duration=time.monotonic() - started,
                      message=f"{label}: outcome unknown: {host.name} became unreachable after request {reqid} "
                              f"was sent ({why}); it may or may not have run, and is not sent again")
