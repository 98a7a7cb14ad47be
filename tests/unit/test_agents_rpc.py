"""rpc (controller side): one exec per action, upload on exit 111, replies become HostResults."""
import json
import os
import pathlib
import subprocess
import sys
import time
from dataclasses import dataclass, field
from types import SimpleNamespace


from orchestrator_lib.controller.transports import ssh_agent as rpc
from orchestrator_lib.controller.orchestration.results import Status
from orchestrator_lib.host.audit import results as audit_results  # noqa: E402
from orchestrator_lib.protocol import Request

HOST = SimpleNamespace(name="web1", facts={"cluster": "alfa"})


@dataclass
class Exec:
    rc: int
    stdout: str = ""
    stderr: str = ""
    duration: float = 0.01


def one_shot(pool, request):
    return rpc.SSHTransport(pool, resident=False).call(HOST, request, 60)


@dataclass
class ScriptedPool:
    """Answers exec() from a list; records every call."""
    answers: list
    calls: list = field(default_factory=list)
    puts: list = field(default_factory=list)

    def exec(self, host, command, stdin=None, timeout=60):
        self.calls.append((command, stdin))
        return self.answers.pop(0)

    def put(self, host, data, path, mode=0o644):
        self.puts.append((path, len(data), mode))


def ok_reply(**kw):
    return json.dumps({"status": "ok", "changed": False, "message": "pong", "data": {"pong": 1.0}, **kw})


def test_request_and_command_shape():
    pool = ScriptedPool([Exec(0, ok_reply())])
    r = one_shot(pool, Request("rpcutil", "ping", {}, reqid="r1", caller="rip@ctl"))
    (command, stdin), = pool.calls
    _, sha = rpc.agent_archive()
    assert command == (f"[ -f /var/lib/orchestrator/agent-{sha}/__main__.py ] || exit 111; "
                       f"exec /usr/bin/python3 -S -E /var/lib/orchestrator/agent-{sha}/__main__.py")
    sent = json.loads(stdin)
    assert sent.pop("time") > 0
    assert sent == {"reqid": "r1", "caller": "rip@ctl", "agent": "rpcutil", "action": "ping", "args": {},
                    "facts": {"cluster": "alfa"}, "dry_run": False, "ttl": 3600.0}
    assert (r.host, r.status, r.message, r.data, r.rc) == ("web1", Status.OK, "pong", {"pong": 1.0}, 0)
    assert pool.puts == []


def test_missing_agent_is_installed_by_one_exec_then_run():
    pool = ScriptedPool([Exec(111), Exec(0), Exec(0, json.dumps(
        {"status": "changed", "changed": True, "message": "m", "data": {"version": "2"}, "before": "1", "after": "2"}))])
    r = one_shot(pool, Request("package", "update", {"name": "x"}, reqid="r", caller="c"))
    assert (r.status, r.before, r.after, r.data) == (Status.CHANGED, "1", "2", {"version": "2"})
    data, sha = rpc.agent_archive()
    assert pool.calls[1] == (rpc.install_command(sha), b"%d\n" % len(data) + data)  # no SFTP, no mkdir
    assert pool.calls[1][0].startswith("/usr/bin/python3 -S -E -c ") and pool.puts == []
    assert pool.calls[2][0] == pool.calls[0][0]


def test_non_json_reply_is_failed_with_stderr_line():
    pool = ScriptedPool([Exec(1, "", "Traceback (most recent call last):\n  File ...\nSyntaxError: bad\n")])
    r = one_shot(pool, Request("rpcutil", "ping", {}, reqid="r", caller="c"))
    assert r.status is Status.FAILED and r.rc == 1
    assert r.message == "rpcutil#ping: no valid reply from the agent (rc 1): SyntaxError: bad"
    assert "\n" not in r.message


def test_failed_and_protocol_error_replies():
    pool = ScriptedPool([Exec(0, json.dumps({"status": "failed", "changed": False, "message": "denied by policy: x"})),
                         Exec(2, json.dumps({"status": "failed", "message": "protocol error: bad"})),
                         Exec(3, ok_reply()),
                         Exec(127, "", "sh: 1: exec: /usr/bin/python3: not found\n")])
    assert one_shot(pool, Request("a", "b", {}, reqid="r", caller="c")).message == "denied by policy: x"
    assert one_shot(pool, Request("a", "b", {}, reqid="r", caller="c")).message == "protocol error: bad"
    r = one_shot(pool, Request("a", "b", {}, reqid="r", caller="c"))
    assert r.status is Status.FAILED and r.message.startswith("a#b: agent exited 3")
    r = one_shot(pool, Request("a", "b", {}, reqid="r", caller="c"))
    assert r.status is Status.FAILED and r.message.endswith("/usr/bin/python3: not found")


def test_failed_install_is_reported():
    pool = ScriptedPool([Exec(111), Exec(1, "", "OSError: [Errno 30] Read-only file system: '/var/lib/orchestrator'\n")])
    r = one_shot(pool, Request("a", "b", {}, reqid="r", caller="c"))
    assert r.status is Status.FAILED and "Read-only file system" in r.message and pool.puts == []


def test_new_reqid_and_caller():
    a, b = rpc.new_reqid(), rpc.new_reqid()
    assert a != b and len(a) == 32 and int(a, 16) >= 0
    assert "@" in rpc.default_caller()


HOST_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def install(home, data: bytes, sha: str, *mode: str) -> subprocess.Popen:
    """INSTALL_SCRIPT as the host runs it: the zipapp on stdin after its length."""
    argv = [HOST_PYTHON, "-S", "-E", "-c", rpc.INSTALL_SCRIPT, str(home), sha, *mode]
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdin.write(rpc.install_input(data))
    p.stdin.flush()
    return p


def test_install_is_atomic_and_concurrent_installs_agree(tmp_path):
    """Several workers reaching a fresh host at once each install a copy: the first rename wins,
    the others drop theirs; no temporary file or directory is left, and the agent runs."""
    data, sha = rpc.agent_archive()
    final = tmp_path / f"agent-{sha}"
    procs = [install(tmp_path, data, sha) for _ in range(4)]
    for p in procs:
        p.stdin.close()
        assert p.wait(timeout=120) == 0, p.stderr.read()
    assert sorted(p.name for p in tmp_path.iterdir()) == [final.name, "current"]  # and the pin naming it
    assert (tmp_path / "current").read_text() == final.name[len("agent-"):] + "\n"
    assert list((final / "orchestrator_lib" / "host" / "__pycache__").glob("core.*.pyc"))
    env = {"PATH": "/usr/bin:/bin", "ORCHESTRATOR_AUDIT_LOG": str(tmp_path.parent / "audit.jsonl")}
    run = subprocess.run([HOST_PYTHON, "-S", "-E", str(final / "__main__.py")], input=b'{"agent": "rpcutil", "action": "ping"}',
                         capture_output=True, env=env, timeout=60)
    assert json.loads(run.stdout)["status"] == "ok", run.stderr

    (final / "__main__.py").unlink()  # an incomplete directory in the way is an error, not an install
    p = install(tmp_path, data, sha)
    p.stdin.close()
    assert p.wait(timeout=120) != 0 and "Directory not empty" in p.stderr.read().decode()
    assert sorted(p.name for p in tmp_path.iterdir()) == [final.name, "current"]


def test_install_refuses_bytes_whose_hash_is_not_the_name_and_then_serves_the_same_session(tmp_path):
    """The directory's name is the content's hash: other bytes are refused before anything is
    unpacked. With --serve the installed agent answers on the same stdin, right after the zipapp."""
    data, sha = rpc.agent_archive()
    p = install(tmp_path, data[:-1] + bytes([data[-1] ^ 1]), sha)
    p.stdin.close()
    assert p.wait(timeout=60) != 0 and b"does not have hash" in p.stderr.read()
    assert list(tmp_path.iterdir()) == []
    env = {"PATH": "/usr/bin:/bin", "ORCHESTRATOR_AUDIT_LOG": str(tmp_path / "audit.jsonl")}
    argv = [HOST_PYTHON, "-S", "-E", "-c", rpc.INSTALL_SCRIPT, str(tmp_path / "lib"), sha, "--serve"]
    done = subprocess.run(argv, input=rpc.install_input(data) + rpc.SERVE_PROBE, capture_output=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[0])["status"] == "failed"  # the probe's refusal: serving
    assert (tmp_path / "lib" / "current").read_text() == sha + "\n"


class LocalPool:
    """Runs commands on this machine with sh, as sshd would on a host (ping only: harmless)."""

    def __init__(self, tmp):
        self.env = {"PATH": "/usr/bin:/bin", "ORCHESTRATOR_AUDIT_LOG": str(tmp / "audit.jsonl")}
        self.installs = 0

    def exec(self, host, command, stdin=None, timeout=60):
        t = time.monotonic()
        self.installs += "-c" in command.split()
        p = subprocess.run(["/bin/sh", "-c", command], input=stdin, capture_output=True, env=self.env, timeout=timeout)
        return Exec(p.returncode, p.stdout.decode(), p.stderr.decode(), time.monotonic() - t)



def test_end_to_end_through_a_shell(tmp_path, monkeypatch):
    monkeypatch.setattr(rpc, "AGENT_DIR", str(tmp_path / "lib" / "orchestrator"))
    if not os.path.exists("/usr/bin/python3"):
        monkeypatch.setattr(rpc, "PYTHON", sys.executable)
    pool = LocalPool(tmp_path)
    r = one_shot(pool, Request("rpcutil", "ping", {}, reqid="e2e", caller="t@c"))
    assert r.status is Status.OK and pool.installs == 1 and r.duration > 0
    r = one_shot(pool, Request("rpcutil", "facts", {}, reqid="e2e2", caller="t@c"))
    assert r.status is Status.OK and pool.installs == 1 and r.data["facts"]["os_family"] and "cluster" not in r.data["facts"]
    installed, pin = sorted((tmp_path / "lib" / "orchestrator").iterdir())  # no temporary file or directory left
    assert pin.name == "current"
    assert installed.name == f"agent-{rpc.agent_archive()[1]}"
    cached = {p.name.split(".")[0] for d in ("host", "host/agents")
              for p in (installed / "orchestrator_lib" / d / "__pycache__").iterdir()}
    assert {"core", "policy", "audit", "rpcutil", "package"} <= cached  # compiled at install, not at each run
    lines = [json.dumps(line) for line in audit_results(str(tmp_path / "audit.jsonl"))]
    assert [json.loads(x)["reqid"] for x in lines] == ["e2e", "e2e2"]
