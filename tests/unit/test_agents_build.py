"""The zipapp: deterministic bytes, only the agents package, and it runs with the hosts' python3."""
import io
import json
import os
import pathlib
import shutil
import subprocess
import sys
import zipfile

import pytest

from orchestrator_lib.host import build
from orchestrator_lib.host.audit import results as audit_results  # noqa: E402

HOST_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def test_archive_is_deterministic_and_cached():
    data, sha = build.agent_archive()
    assert build.agent_archive() is build.agent_archive()
    assert build.build(build.sources()) == data
    assert sha == build.sha12(data) and len(sha) == 12


def test_archive_contents():
    data, _ = build.agent_archive()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        infos = zf.infolist()
    names = [i.filename for i in infos]
    assert names == sorted(names)
    assert "__main__.py" in names and "orchestrator_lib/__init__.py" in names
    assert "orchestrator_lib/host/core.py" in names and "orchestrator_lib/host/agents/package.py" in names
    assert "orchestrator_lib/host/build.py" not in names
    assert not any("__pycache__" in n for n in names)
    assert not any(n.startswith("orchestrator_lib/controller/") for n in names)
    assert [n for n in names if not n.startswith("orchestrator_lib/host/")] == [
        "__main__.py", "orchestrator_lib/__init__.py", "orchestrator_lib/protocol.py", "orchestrator_lib/protocol_args.py"]
    assert {i.date_time for i in infos} == {build.FIXED_TIME}


def test_changed_source_changes_the_hash():
    files = build.sources()
    before = build.sha12(build.build(files))
    files["orchestrator_lib/host/core.py"] += b"\n# changed\n"
    assert build.sha12(build.build(files)) != before


def run_pyz(path: pathlib.Path, request: dict, tmp_path: pathlib.Path) -> tuple[int, dict, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "ORCHESTRATOR_AUDIT_LOG": str(tmp_path / "audit.jsonl")}
    p = subprocess.run([HOST_PYTHON, str(path)], input=json.dumps(request), capture_output=True, text=True,
                       env=env, cwd=tmp_path, timeout=60)
    return p.returncode, json.loads(p.stdout), p.stderr


def test_zipapp_answers_ping_with_the_hosts_python(tmp_path):
    data, sha = build.agent_archive()
    pyz = tmp_path / f"agent-{sha}.pyz"
    pyz.write_bytes(data)
    rc, reply, err = run_pyz(pyz, {"reqid": "z1", "caller": "t@c", "agent": "rpcutil", "action": "ping"}, tmp_path)
    assert rc == 0, err
    assert reply["status"] == "ok" and isinstance(reply["data"]["pong"], float)
    [audit] = audit_results(str(tmp_path / "audit.jsonl"))
    assert (audit["reqid"], audit["agent"], audit["action"]) == ("z1", "rpcutil", "ping")
    rc, reply, _ = run_pyz(pyz, {"agent": "rpcutil", "action": "agents"}, tmp_path)
    assert reply["data"]["agents"] == ["appmgr", "firewall", "haproxy", "health", "lease", "nats", "notify", "package", "rpcutil", "service"]


def test_zipapp_protocol_error_exit_code(tmp_path):
    data, sha = build.agent_archive()
    pyz = tmp_path / "a.pyz"
    pyz.write_bytes(data)
    p = subprocess.run([HOST_PYTHON, str(pyz)], input="garbage", capture_output=True, text=True, cwd=tmp_path,
                       env={"PATH": "/usr/bin:/bin", "ORCHESTRATOR_AUDIT_LOG": str(tmp_path / "a.jsonl")})
    assert p.returncode == 2 and json.loads(p.stdout)["message"].startswith("protocol error")


#: Never loaded by a ping: each costs every run 2-8 ms of CPU (subprocess, socket...: only in the
#: actions that need them; typing, dataclasses: nowhere in the agent; pkgutil: AGENTS is a static
#: list; hashlib/_hashlib: OpenSSL, while the caller's key fingerprint uses the built-in SHA-256).
HEAVY = {"typing", "dataclasses", "inspect", "pkgutil", "subprocess", "shutil", "hashlib", "_hashlib",
         "traceback", "socket", "platform", "urllib.request", "ssl", "email", "zipfile"}
#: What sshd writes to $SSH_USER_AUTH with ExposeAuthInfo (a throwaway ed25519 key).
AUTH_INFO = "publickey ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIw9H8Qhl/5JwaUOhTWToGSa8Oc5x+uCBK/8cfv52Y3/\n"


@pytest.mark.parametrize("action, heavy", [
    ("ping", HEAVY),
    ("agents", {"typing", "dataclasses", "inspect", "pkgutil", "subprocess", "hashlib", "_hashlib", "urllib.request"}),
])
def test_startup_stays_lean(tmp_path, action, heavy):
    """Interpreter start and imports are most of what an action costs the host: check what loads."""
    with zipfile.ZipFile(io.BytesIO(build.agent_archive()[0])) as zf:
        zf.extractall(tmp_path / "agent")
    (tmp_path / "auth").write_text(AUTH_INFO)
    probe = ("import io, sys; from orchestrator_lib.host import core; "
             "core.main(io.StringIO(sys.argv[1]), io.StringIO()); print(*sys.modules)")
    p = subprocess.run([HOST_PYTHON, "-S", "-E", "-c", probe, json.dumps({"agent": "rpcutil", "action": action})],
                       capture_output=True, text=True, cwd=tmp_path / "agent", timeout=60,
                       env={"PATH": "/usr/bin:/bin", "ORCHESTRATOR_AUDIT_LOG": str(tmp_path / "audit.jsonl"),
                            "SSH_USER_AUTH": str(tmp_path / "auth")})
    loaded = set(p.stdout.split())
    assert p.returncode == 0 and "orchestrator_lib.host.agents.rpcutil" in loaded, p.stderr
    assert audit_results(str(tmp_path / "audit.jsonl"))[0]["caller"] == "SHA256:BQr00Dj4EuEXOv5kUqRH3zcWM11liLd+Blbvfpntg9g"
    assert loaded & heavy == set()


@pytest.mark.skipif(not shutil.which("python3"), reason="no python3")
def test_build_cli(tmp_path, capsys):
    assert build.main([str(tmp_path / "out.pyz")]) == 0
    _, sha = build.agent_archive()
    assert capsys.readouterr().out.startswith(f"agent-{sha}.pyz ")
    assert (tmp_path / "out.pyz").read_bytes() == build.agent_archive()[0]


def test_the_nats_service_ships_in_its_bundle_only():
    ssh = build.sources()
    nats = build.nats_sources()
    for rel in build.NATS_ONLY:
        assert "orchestrator_lib/" + rel not in ssh and "orchestrator_lib/" + rel in nats
