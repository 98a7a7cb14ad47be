"""policy: caller = the SSH key sshd accepted (ExposeAuthInfo); allow-lists per key; denials audited."""
import io
import json
import pathlib
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from test_agents_fakes import isolated  # noqa: E402,F401

from orchestrator_lib.agents import core, policy  # noqa: E402

# A throwaway key generated for this test with `ssh-keygen -t ed25519`; `ssh-keygen -lf` says:
PUB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIw9H8Qhl/5JwaUOhTWToGSa8Oc5x+uCBK/8cfv52Y3/ test"
FP = "SHA256:BQr00Dj4EuEXOv5kUqRH3zcWM11liLd+Blbvfpntg9g"


def test_fingerprint_matches_ssh_keygen():
    assert policy.fingerprint(PUB.split()[1]) == FP


def test_builtin_sha256_is_sha256():
    import hashlib
    for data in (b"", b"abc", bytes(range(256)) * 100):
        assert policy.sha256(data) == hashlib.sha256(data).digest()


@pytest.mark.skipif(not shutil.which("ssh-keygen"), reason="no ssh-keygen")
def test_fingerprint_of_a_fresh_key(tmp_path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
    blob = (tmp_path / "k.pub").read_text().split()[1]
    out = subprocess.run(["ssh-keygen", "-lf", str(tmp_path / "k.pub")], capture_output=True, text=True, check=True)
    assert policy.fingerprint(blob) == out.stdout.split()[1]


def test_parse_auth_info():
    text = f"publickey {PUB.split()[0]} {PUB.split()[1]}\nkeyboard-interactive\npublickey ssh-ed25519 !!notbase64\n"
    assert policy.parse_auth_info(text) == (FP,)
    assert policy.parse_auth_info("") == ()


RULES = {"default": "deny", "rules": [
    {"key": FP, "allow": ["rpcutil#*", "package#status"]},
    {"key": "*", "allow": ["rpcutil#ping"]},
    {"key": "SHA256:other", "allow": ["*"], "deny": ["firewall#*"]},
]}


def test_decide():
    me, other, nobody = policy.Identity((FP,)), policy.Identity(("SHA256:other",)), policy.Identity(())
    assert policy.decide(RULES, "rpcutil#facts", me)
    assert policy.decide(RULES, "package#status", me)
    assert not policy.decide(RULES, "package#update", me)
    assert policy.decide(RULES, "rpcutil#ping", nobody) and not policy.decide(RULES, "rpcutil#facts", nobody)
    assert policy.decide(RULES, "package#update", other) and not policy.decide(RULES, "firewall#block", other)
    assert policy.decide({"default": "allow", "rules": []}, "x#y", nobody)


def write_policy(tmp, obj):
    (tmp / "policy.json").write_text(obj if isinstance(obj, str) else json.dumps(obj))


def auth_file(tmp):
    f = tmp / "auth"
    f.write_text(f"publickey {PUB.split()[0]} {PUB.split()[1]}\n")
    return {"SSH_USER_AUTH": str(f)}


def test_no_policy_file_allows_all(isolated):
    assert policy.check("package", "update", policy.Identity(())) is None


def test_denied_request_fails_and_is_audited(isolated):
    write_policy(isolated, RULES)
    env = auth_file(isolated)
    reply = core.handle({"reqid": "r9", "caller": "rip@ctl", "agent": "package", "action": "update",
                         "args": {"name": "mywebapp"}}, env=env)
    assert reply.status == "failed"
    assert reply.message == f"denied by policy: package#update for {FP}"
    [line] = (isolated / "audit.jsonl").read_text().splitlines()
    rec = json.loads(line)
    assert (rec["reqid"], rec["key"], rec["status"], rec["message"]) == ("r9", FP, "failed", reply.message)


def test_allowed_request_runs(isolated):
    write_policy(isolated, RULES)
    reply = core.handle({"agent": "rpcutil", "action": "ping"}, env=auth_file(isolated))
    assert reply.status == "ok" and "pong" in reply.data


def test_unknown_key_and_broken_policy_are_denied(isolated):
    write_policy(isolated, RULES)
    reply = core.handle({"agent": "rpcutil", "action": "facts"}, env={})
    assert reply.message == "denied by policy: rpcutil#facts for unknown key"
    write_policy(isolated, "{not json")
    reply = core.handle({"agent": "rpcutil", "action": "ping"}, env=auth_file(isolated))
    assert reply.status == "failed" and reply.message.startswith("denied by policy:") and "is invalid" in reply.message


def test_denial_through_main_still_exits_zero(isolated, monkeypatch):
    write_policy(isolated, RULES)
    monkeypatch.setenv("SSH_USER_AUTH", auth_file(isolated)["SSH_USER_AUTH"])
    out = io.StringIO()
    rc = core.main(io.StringIO(json.dumps({"agent": "package", "action": "remove", "args": {"name": "x"}})), out)
    assert rc == 0 and json.loads(out.getvalue())["message"].startswith("denied by policy: package#remove")
