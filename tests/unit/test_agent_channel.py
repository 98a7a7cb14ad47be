"""The resident agent (`--serve`) and rpc's channel to it: framing, per-request audit, reopen after
a dead session, install on exit 111, fallback to the one-shot exec, timeouts, close. No lab."""
import io
import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import pytest

from orchestrator_lib.controller.transports import ssh_agent as rpc
from orchestrator_lib.host import core
from orchestrator_lib.host.audit import results as audit_results
from orchestrator_lib.controller.errors import OutcomeUnknownError, TransportError, UnreachableError
from orchestrator_lib.controller.orchestration.results import Status
from orchestrator_lib.controller.transports.ssh import SSHPool
from orchestrator_lib.protocol import Request

HOST = SimpleNamespace(name="web1", facts={"cluster": "alfa"})
HOST_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def ok_line(message="pong", **kw):
    return json.dumps({"status": "ok", "changed": False, "message": message, "data": {}, **kw}) + "\n"


# ---- host side: the serve loop ------------------------------------------------------------------
def test_serve_answers_one_line_per_request_and_audits_each(tmp_path, monkeypatch):
    log = tmp_path / "audit.jsonl"
    monkeypatch.setenv("ORCHESTRATOR_AUDIT_LOG", str(log))
    boom = core.load_agent("rpcutil")

    def explode(req):
        raise RuntimeError("kaboom\nsecond line")

    monkeypatch.setitem(boom.actions, "explode", explode)
    requests = [{"reqid": "r1", "caller": "a@c", "agent": "rpcutil", "action": "ping"},
                "not json",
                {"reqid": "r2", "caller": "b@c", "agent": "rpcutil", "action": "explode"},
                {"reqid": "r3", "caller": "c@c", "agent": "nosuch", "action": "x"},
                {"reqid": "r4", "caller": "d@c", "agent": "rpcutil", "action": "ping"}]
    text = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in requests) + "\n"
    out = io.StringIO()
    assert core.main(io.StringIO(text), out, argv=["--serve"]) == 0
    replies = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["status"] for r in replies] == ["ok", "failed", "failed", "failed", "ok"]
    assert replies[1]["message"].startswith("protocol error: request is not JSON")
    assert replies[2]["message"] == "rpcutil#explode: RuntimeError: kaboom second line"
    audit = audit_results(str(log))
    assert [(a["event"], a["reqid"], a["declared_caller"], a["status"]) for a in audit] == [
        ("result", "r1", "a@c", "ok"), ("rejected", "", "", "failed"), ("result", "r2", "b@c", "failed"),
        ("result", "r3", "c@c", "failed"), ("result", "r4", "d@c", "ok")]


def test_serve_reads_the_host_afresh_for_every_request(monkeypatch, tmp_path):
    """Nothing read from the host is kept: a package changed between two requests shows."""
    monkeypatch.setenv("ORCHESTRATOR_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    versions = iter(["1.0", "2.0"])

    class Host(core.System):
        def run(self, cmd, input=None, timeout=60.0, env=None):
            argv = cmd if isinstance(cmd, list) else [cmd]
            if argv[0] == "dpkg-query":
                return core.CmdResult(0, f"install ok installed\t{next(versions)}\n", "")
            return core.CmdResult(0, "", "")

        def read_text(self, path):
            return "ID=debian\n" if path.endswith("os-release") else None

    req = json.dumps({"agent": "package", "action": "status", "args": {"name": "app"}})
    out = io.StringIO()
    with core.use_system(Host()):
        core.serve(io.StringIO(f"{req}\n{req}\n"), out)
    replies = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["data"].get("version") for r in replies] == ["1.0", "2.0"], replies


SNIFF = r"""
import sys
sys.path.insert(0, sys.argv[1])
from orchestrator_lib.host import core
agent = core.Agent("sniff")

@agent.action
def stdin(req):
    r = core.run(["sh", "-c", "readlink /proc/self/fd/0; cat"])
    return core.Reply.ok(r.stdout.replace(chr(10), " ").strip())

sys.argv[1:] = ["--serve"]
sys.exit(core.main())
"""


def test_commands_run_by_actions_cannot_read_the_request_stream(tmp_path):
    """In serve mode the protocol pipes are private: a child gets /dev/null (EOF), as in one-shot
    mode, and cannot swallow the next request line."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(core.__file__))))
    req = json.dumps({"agent": "sniff", "action": "stdin"}) + "\n"
    p = subprocess.run([sys.executable, "-c", SNIFF, root], input=(req * 2).encode(), capture_output=True,
                       timeout=60, env={"PATH": "/usr/bin:/bin", "ORCHESTRATOR_AUDIT_LOG": str(tmp_path / "a")})
    replies = [json.loads(line) for line in p.stdout.decode().splitlines()]
    assert [r["message"] for r in replies] == ["/dev/null", "/dev/null"], p.stderr.decode()


# ---- controller side: fakes ---------------------------------------------------------------------
PROBE_REPLY = json.dumps({"status": "failed", "changed": False, "data": {}, "before": None, "after": None,
                          "message": "protocol error: request needs a non-empty string 'agent'"}) + "\n"


class FakeChan:
    """A paramiko Channel as rpc uses it. `answer(line) -> str | None`: a reply line, or None to
    die (EOF) with `exit_rc`; `hang=True` never answers (timeout). `probe`: how the session takes
    rpc's serve probe: "serve" answers as the agent's serve mode does, "die" ends with `exit_rc`
    (a missing agent, a forced command that exits), "silent" waits (a one-shot agent waiting for
    EOF). `refuse_send`: writing a request fails before a byte goes out."""

    def __init__(self, answer, exit_rc=-1, hang=False, probe="serve", refuse_send=False):
        self.answer, self.exit_rc, self.hang = answer, exit_rc, hang
        self.probe, self.refuse_send = probe, refuse_send
        self.command = None
        self.sent = []     # request lines (the probe is counted in `probes`)
        self.probes = 0
        self.out = b""
        self.err = b""
        self.closed = self.eof_received = False
        self.status = None

    # paramiko API
    def exec_command(self, command):
        self.command = command

    def sendall(self, data):  # rpc uses it for the zipapp of an install
        self.installed = getattr(self, "installed", []) + [bytes(data)]

    def settimeout(self, t):
        self.timeout = t

    def send(self, data):
        data = bytes(data)
        if self.closed:
            raise OSError("Socket is closed")
        if data == rpc.SERVE_PROBE:
            self.probes += 1
            if self.probe == "serve":
                self.out += PROBE_REPLY.encode()
            elif self.probe == "die":
                self.die(self.exit_rc)
            return len(data)
        if self.refuse_send:
            raise OSError("Socket is closed")
        self.sent.append(data)
        for line in data.decode().splitlines():
            reply = self.answer(line)
            if reply is None:
                self.die(self.exit_rc)
            else:
                self.out += reply.encode()
        return len(data)

    def recv(self, n):
        if self.out:
            chunk, self.out = self.out[:n], self.out[n:]
            return chunk
        if self.eof_received or self.closed:
            return b""
        if self.hang:
            raise socket.timeout()
        raise AssertionError("recv would block forever")

    def recv_stderr_ready(self):
        return bool(self.err)

    def recv_stderr(self, n):
        chunk, self.err = self.err[:n], self.err[n:]
        return chunk

    def exit_status_ready(self):
        return self.status is not None

    def recv_exit_status(self):
        return self.status

    def close(self):
        self.closed = True

    # test helpers
    def die(self, rc=-1):
        self.eof_received, self.status = True, rc


class FakeTransport:
    def __init__(self, pool):
        self.pool = pool

    def open_session(self, timeout=None):
        if not self.pool.chans:
            raise EOFError("no more sessions")
        chan = self.pool.chans.pop(0)
        self.pool.opened.append(chan)
        return chan


class FakePool:
    """transport()/exec()/put()/close(): what SSHTransport needs of an SSHPool."""

    def __init__(self, chans, execs=(), unreachable=False):
        self.chans = list(chans)
        self.opened = []
        self.execs = list(execs)
        self.exec_calls = []
        self.puts = []
        self.unreachable = unreachable

    def transport(self, host, fresh=False):
        if self.unreachable:
            raise UnreachableError(f"{host.name}: unreachable at 10.0.0.1:22: connection refused")
        return FakeTransport(self)

    def close(self):
        pass

    def exec(self, host, command, stdin=None, timeout=60):
        self.exec_calls.append((command, stdin))
        return self.execs.pop(0)

    def put(self, host, data, path, mode=0o644):
        self.puts.append(path)


def Exec(rc, stdout="", stderr=""):
    return SimpleNamespace(rc=rc, stdout=stdout, stderr=stderr, duration=0.01)


def echo_reqid(line):
    return ok_line(json.loads(line)["reqid"])


def transport_of(pool):
    """The pool's SSHTransport, made on first use (the one-shot exec only for a pool without sessions)."""
    if not hasattr(pool, "ssh"):
        pool.ssh = rpc.SSHTransport(pool, resident=hasattr(pool, "transport"))
    return pool.ssh


def call(pool, reqid="r", timeout=60):
    return transport_of(pool).call(HOST, Request("rpcutil", "ping", {}, reqid=reqid, caller="t@c"), timeout)


def test_many_calls_share_one_session_one_line_each():
    chan = FakeChan(echo_reqid)
    pool = FakePool([chan])
    results = [call(pool, reqid=f"r{i}") for i in range(5)]
    assert [r.message for r in results] == [f"r{i}" for i in range(5)]
    assert all(r.status is Status.OK and r.rc == 0 for r in results)
    assert pool.opened == [chan] and pool.exec_calls == []
    _, sha = rpc.agent_archive()
    assert chan.command == rpc.agent_command(sha) + " --serve"
    assert all(d.endswith(b"\n") and d.count(b"\n") == 1 for d in chan.sent)
    first = json.loads(chan.sent[0])
    assert first.pop("time") > 0
    assert first == {"reqid": "r0", "caller": "t@c", "agent": "rpcutil", "action": "ping", "args": {},
                     "facts": {"cluster": "alfa"}, "dry_run": False, "ttl": 3600.0}
    assert transport_of(pool).opened == 1


def test_replies_split_across_reads_and_stderr_is_kept():
    chan = FakeChan(lambda line: ok_line("x" * 200_000))
    chan.err = b"Traceback...\nValueError: v\n"
    r = call(FakePool([chan]))
    assert r.status is Status.OK and r.message == "x" * 200_000 and "ValueError" in r.stderr


def test_a_dead_session_is_reopened_transparently():
    first, second = FakeChan(echo_reqid), FakeChan(echo_reqid)
    pool = FakePool([first, second])
    assert call(pool, reqid="a").message == "a"
    first.die()  # e.g. pkill on the host between two calls
    assert call(pool, reqid="b").message == "b"
    assert pool.opened == [first, second] and first.closed and pool.exec_calls == []


def test_a_request_whose_session_dies_after_it_was_written_is_never_sent_again():
    """The agent may have run it (a notify sent, a package updated): the host's outcome is unknown,
    named by reqid, and neither a new session, the one-shot exec nor a retry sends it again."""
    dies = FakeChan(lambda line: None)
    good = FakeChan(echo_reqid)
    pool = FakePool([dies, good], execs=[Exec(0, ok_line("oneshot"))])
    r = call(pool, reqid="z")
    assert r.status is Status.UNREACHABLE and pool.opened == [dies] and pool.exec_calls == []
    assert r.message == ("rpcutil#ping: outcome unknown: web1 became unreachable after request z was sent "
                         "(the agent's session broke: the agent closed its output); it may or may not have run, "
                         "and is not sent again")
    assert len(dies.sent) == 1
    again = call(pool, reqid="z")  # what `tries` does: the same request again
    assert again.status is Status.UNREACHABLE and "request z" in again.message
    assert pool.opened == [dies] and pool.exec_calls == [] and len(dies.sent) == 1
    assert call(pool, reqid="next").message == "next" and pool.opened == [dies, good]


def test_a_request_that_could_not_be_written_goes_to_a_new_session():
    refuses = FakeChan(echo_reqid, refuse_send=True)
    good = FakeChan(echo_reqid)
    pool = FakePool([refuses, good])
    r = call(pool, reqid="w")
    assert r.message == "w" and pool.opened == [refuses, good] and refuses.sent == [] and pool.exec_calls == []


def test_a_partly_written_request_counts_as_written():
    class Trickle(FakeChan):
        def send(self, data):
            if bytes(data) == rpc.SERVE_PROBE:
                return super().send(data)
            if self.sent:
                self.die()
                raise OSError("Socket is closed")
            self.sent.append(bytes(data[:10]))
            return 10

    chan = Trickle(echo_reqid)
    pool = FakePool([chan, FakeChan(echo_reqid)], execs=[Exec(0, ok_line("oneshot"))])
    r = call(pool, reqid="p")
    assert r.status is Status.UNREACHABLE and "request p" in r.message and pool.exec_calls == []


def test_missing_agent_exit_111_installs_and_serves_on_one_session():
    missing = FakeChan(lambda line: None, exit_rc=111, probe="die")
    good = FakeChan(echo_reqid)
    pool = FakePool([missing, good])
    r = call(pool, reqid="i")
    assert r.status is Status.OK and r.message == "i"
    data, sha = rpc.agent_archive()
    assert good.command == rpc.install_command(sha, serve=True) and good.installed == [rpc.install_input(data)]
    assert pool.exec_calls == [] and pool.puts == []  # no mkdir, no SFTP, no separate install exec
    assert pool.opened == [missing, good] and missing.sent == []  # found missing by the probe


def test_failed_install_is_a_failed_host_not_a_fallback():
    failing = FakeChan(lambda line: None, exit_rc=1, probe="die")
    failing.err = b"Traceback (most recent call last):\nOSError: [Errno 30] Read-only file system\n"
    pool = FakePool([FakeChan(lambda line: None, exit_rc=111, probe="die"), failing])
    r = call(pool)
    assert r.status is Status.FAILED and "Read-only file system" in r.message and r.rc == 111
    assert pool.exec_calls == [] and failing.closed


def test_reopen_failing_falls_back_to_the_one_shot_exec():
    pool = FakePool([FakeChan(echo_reqid, probe="die"), FakeChan(echo_reqid, probe="die")],
                    execs=[Exec(0, ok_line("oneshot"))])
    r = call(pool)
    assert r.message == "oneshot" and len(pool.opened) == 2
    [(command, stdin)] = pool.exec_calls
    _, sha = rpc.agent_archive()
    assert command == rpc.agent_command(sha) and json.loads(stdin)["reqid"] == "r"


def test_a_forced_command_that_waits_for_eof_falls_back_to_the_one_shot_exec_quickly(monkeypatch):
    """authorized_keys runs the agent one-shot whatever we ask: it reads until EOF and never
    answers the probe. The host is found unable to serve within SERVE_PROBE_TIMEOUT (not the
    call's timeout), and later calls go straight to the one-shot exec."""
    monkeypatch.setattr(rpc, "SERVE_PROBE_TIMEOUT", 0.2)
    forced = FakeChan(echo_reqid, hang=True, probe="silent")
    pool = FakePool([forced, FakeChan(echo_reqid)], execs=[Exec(0, ok_line("a")), Exec(0, ok_line("b"))])
    t0 = time.monotonic()
    assert call(pool, reqid="a", timeout=300).message == "a"
    assert time.monotonic() - t0 < 2
    assert forced.closed and forced.sent == [] and forced.probes == 1  # the request never went to it
    assert call(pool, reqid="b", timeout=300).message == "b"
    assert pool.opened == [forced] and len(pool.exec_calls) == 2


def test_a_forced_command_that_prints_something_else_falls_back_to_the_one_shot_exec():
    class Banner(FakeChan):
        def send(self, data):
            self.out += b"This key may only run backups.\n"
            return len(data)

    chan = Banner(echo_reqid)
    pool = FakePool([chan], execs=[Exec(0, ok_line("oneshot"))])
    assert call(pool).message == "oneshot" and chan.closed and chan.sent == []
    assert "not as the agent's serve mode" in transport_of(pool).slot("web1").one_shot


def test_unreachable_host_propagates():
    pool = FakePool([], unreachable=True)
    with pytest.raises(UnreachableError, match="web1"):
        call(pool)
    assert pool.exec_calls == []


def test_a_timeout_closes_the_session_and_fails_like_the_one_shot_exec():
    """The action may still run: it is neither re-sent nor run again by the one-shot exec."""
    slow, fresh = FakeChan(echo_reqid, hang=True), FakeChan(echo_reqid)
    slow.answer = lambda line: ""  # swallows the request, never answers
    pool = FakePool([slow, fresh])
    with pytest.raises(TransportError, match=r"web1: command timed out after 0.2 s \(request r may or may not "
                                             r"have run; it is not sent again\)"):
        call(pool, timeout=0.2)
    assert slow.closed and pool.exec_calls == [] and len(slow.sent) == 1
    retried = call(pool, timeout=0.2)  # tries: the same reqid
    assert retried.status is Status.UNREACHABLE and "request r" in retried.message and pool.opened == [slow]
    assert call(pool, reqid="next").message == "next" and pool.opened == [slow, fresh]


def test_pool_close_closes_the_sessions_and_a_later_call_reopens():
    a, b = FakeChan(echo_reqid), FakeChan(echo_reqid)
    pool = FakePool([a, b])
    call(pool)
    transport_of(pool).close()
    assert a.closed
    assert call(pool, reqid="again").message == "again" and pool.opened == [a, b]


def test_pools_without_sessions_and_opted_out_pools_use_the_one_shot_exec():
    class ExecOnly:
        def __init__(self):
            self.calls = 0

        def exec(self, host, command, stdin=None, timeout=60):
            self.calls += 1
            return Exec(0, ok_line())

    assert call(ExecOnly()).status is Status.OK
    pool = FakePool([FakeChan(echo_reqid)], execs=[Exec(0, ok_line("oneshot"))])
    pool.ssh = rpc.SSHTransport(pool, resident=False)
    assert call(pool).message == "oneshot" and pool.opened == []


def test_one_request_at_a_time_per_host_under_concurrent_callers():
    inflight, peak = [0], [0]
    lock = threading.Lock()

    def answer(line):
        with lock:
            inflight[0] += 1
            peak[0] = max(peak[0], inflight[0])
        reply = echo_reqid(line)
        with lock:
            inflight[0] -= 1
        return reply

    pool = FakePool([FakeChan(answer)])
    out = {}
    threads = [threading.Thread(target=lambda i=i: out.__setitem__(i, call(pool, reqid=f"t{i}").message))
               for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == {i: f"t{i}" for i in range(16)} and len(pool.opened) == 1 and peak[0] == 1


# ---- controller + real serve loop, through a local shell ------------------------------------------
class ProcChan:
    """A session run by /bin/sh on this machine, as sshd would run it (pipes, exit status)."""

    def __init__(self, env):
        self.env, self.p = env, None
        self.closed = self.eof_received = False

    def exec_command(self, command):
        self.p = subprocess.Popen(["/bin/sh", "-c", command], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=self.env)

    def settimeout(self, t):
        self.timeout = t

    def sendall(self, data):
        try:
            self.p.stdin.write(data)
            self.p.stdin.flush()
        except (BrokenPipeError, ValueError) as e:
            raise OSError(str(e)) from None

    def send(self, data):
        self.sendall(data)
        return len(data)

    def recv(self, n):
        ready, _, _ = select.select([self.p.stdout], [], [], self.timeout)
        if not ready:
            raise socket.timeout()
        chunk = os.read(self.p.stdout.fileno(), n)
        if not chunk:
            self.eof_received = True
        return chunk

    def recv_stderr_ready(self):
        return bool(select.select([self.p.stderr], [], [], 0)[0])

    def recv_stderr(self, n):
        return os.read(self.p.stderr.fileno(), n)

    def exit_status_ready(self):
        return self.p.poll() is not None

    def recv_exit_status(self):
        return self.p.wait()

    def close(self):
        self.closed = True
        try:
            self.p.stdin.close()
        except OSError:
            pass
        try:
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        self.p.stdout.close()
        self.p.stderr.close()


class ForcedOneShotChan(ProcChan):
    """authorized_keys' command="..." running the agent one-shot, whatever the controller asked."""

    def exec_command(self, command):
        super().exec_command(command.replace(" " + rpc.SERVE_FLAG, ""))


class LocalSessions(FakePool):
    def __init__(self, env, chan_class=ProcChan):
        super().__init__([])
        self.env = env
        self.chan_class = chan_class
        self.procs = []

    def transport(self, host, fresh=False):
        pool = self

        class T:
            def open_session(self, timeout=None):
                chan = pool.chan_class(pool.env)
                pool.procs.append(chan)
                return chan
        return T()

    def exec(self, host, command, stdin=None, timeout=60):
        p = subprocess.run(["/bin/sh", "-c", command], input=stdin, capture_output=True, env=self.env, timeout=timeout)
        self.exec_calls.append((command, stdin))
        return Exec(p.returncode, p.stdout.decode(), p.stderr.decode())

    def put(self, host, data, path, mode=0o644):
        self.puts.append(path)
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, mode)


def test_end_to_end_install_serve_kill_reopen(tmp_path, monkeypatch):
    monkeypatch.setattr(rpc, "AGENT_DIR", str(tmp_path / "lib"))
    monkeypatch.setattr(rpc, "PYTHON", HOST_PYTHON)
    log = tmp_path / "audit.jsonl"
    pool = LocalSessions({"PATH": "/usr/bin:/bin", "ORCHESTRATOR_AUDIT_LOG": str(log)})
    try:
        results = [call(pool, reqid=f"e{i}") for i in range(4)]
        assert all(r.status is Status.OK for r in results), [r.message for r in results]
        assert pool.puts == [] and pool.exec_calls == []  # exit 111, then install + serve on one session
        serving = pool.procs[-1].p
        assert len(pool.procs) == 2 and serving.poll() is None
        facts = call(pool, reqid="f")
        assert facts.status is Status.OK
        serving.kill()
        serving.wait()
        assert call(pool, reqid="after-kill").status is Status.OK
        assert len(pool.procs) == 3 and pool.exec_calls == []
        audit = [line["reqid"] for line in audit_results(str(log))]
        assert audit == ["e0", "e1", "e2", "e3", "f", "after-kill"]
    finally:
        transport_of(pool).close()
    assert all(c.p.poll() is not None for c in pool.procs)  # EOF ends the serve loop


def test_end_to_end_forced_one_shot_command_falls_back_within_the_probe_time(tmp_path, monkeypatch):
    monkeypatch.setattr(rpc, "AGENT_DIR", str(tmp_path / "lib"))
    monkeypatch.setattr(rpc, "PYTHON", HOST_PYTHON)
    monkeypatch.setattr(rpc, "SERVE_PROBE_TIMEOUT", 1.0)
    log = tmp_path / "audit.jsonl"
    pool = LocalSessions({"PATH": "/usr/bin:/bin", "ORCHESTRATOR_AUDIT_LOG": str(log)}, ForcedOneShotChan)
    try:
        t0 = time.monotonic()
        first = call(pool, reqid="f1", timeout=300)
        assert first.status is Status.OK, first.message
        assert time.monotonic() - t0 < 10
        assert call(pool, reqid="f2", timeout=300).status is Status.OK
        # exit 111; the install session (installed, but the forced command never served); the
        # one-shot agent that never answered the probe
        assert len(pool.procs) == 3
    finally:
        transport_of(pool).close()
    # the probe ran nothing and left no audit line; each request ran once
    assert [line["reqid"] for line in audit_results(str(log))] == ["f1", "f2"]


def test_a_one_shot_request_whose_outcome_is_unknown_is_never_sent_again():
    """A forced-command host (one-shot only): the exec times out after the request went out.
    A retry under the same reqid (tries) gets the same 'outcome unknown', not a second run."""
    class TimingOut(FakePool):
        def exec(self, host, command, stdin=None, timeout=60):
            self.exec_calls.append((command, stdin))
            raise OutcomeUnknownError(f"{host.name}: command timed out after {timeout:g} s (it may or may not "
                                      "have run; not sent again)")

    pool = TimingOut([FakeChan(echo_reqid, probe="die"), FakeChan(echo_reqid, probe="die")])
    with pytest.raises(OutcomeUnknownError, match="may or may not have run"):
        call(pool, reqid="x")
    again = call(pool, reqid="x")
    assert again.status is Status.UNREACHABLE and "outcome unknown" in again.message and "x" in again.message
    assert len(pool.exec_calls) == 1, "the request went out once"
    with pytest.raises(OutcomeUnknownError):
        call(pool, reqid="y")  # another request is sent as usual
    assert len(pool.exec_calls) == 2
