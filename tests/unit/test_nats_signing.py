"""Signed requests (host/signing.py) and the NATS agent's request path (host/nats_service.Responder),
off the broker: what is refused, why, and what the audit says. The broker path is in
tests/integration/test_nats.py."""
from __future__ import annotations

import json
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from orchestrator_lib.controller.errors import FilterError, InventoryError
from orchestrator_lib.controller.inventory import load_inventory
from orchestrator_lib.host import policy
from orchestrator_lib.host.nats_service import LocalHost, Responder
from orchestrator_lib.host.signing import ReplayCache, Refused, open_envelope, seal


def keypair() -> tuple[str, object]:
    key = Ed25519PrivateKey.generate()
    line = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return line.decode().split()[1], key


BLOB, KEY = keypair()
FP = policy.fingerprint(BLOB)


def body(**over) -> dict:
    return {"reqid": "r1", "caller": "me", "agent": "rpcutil", "action": "ping", "args": {},
            "time": 1000.0, "ttl": 60, "collective": "orch", **over}


def opened(data: bytes, now: float = 1001.0, replays: ReplayCache | None = None, allowed=(FP,)):
    return open_envelope(data, identity="web1", collective="orch", now=now, started=900.0,
                         replays=replays or ReplayCache(), key_allowed=lambda fp: fp in allowed,
                         fingerprint=policy.fingerprint)


def test_a_well_signed_request_opens_with_the_verified_key():
    got, fp = opened(seal(body(to="web1"), BLOB, KEY.sign))
    assert fp == FP and got["reqid"] == "r1"


@pytest.mark.parametrize("data, now, why", [
    (json.dumps({"body": json.dumps(body())}).encode(), 1001.0, "unsigned request"),
    (b"not json", 1001.0, "unsigned request"),
    (seal(body(), BLOB, KEY.sign).replace(b"ping", b"pong"), 1001.0, "bad signature"),
    (seal(body(), BLOB, Ed25519PrivateKey.generate().sign), 1001.0, "bad signature"),
    (seal(body(), BLOB, KEY.sign), 1061.0, "expired request"),
    (seal(body(time=1010.0), BLOB, KEY.sign), 1001.0, "from the future"),
    (seal(body(time=800.0, ttl=3600), BLOB, KEY.sign), 1001.0, "before this agent started"),
    (seal(body(to="web2"), BLOB, KEY.sign), 1001.0, "addressed to 'web2'"),
    (seal(body(collective="other"), BLOB, KEY.sign), 1001.0, "collective 'other'"),
    (seal(body(ttl=0), BLOB, KEY.sign), 1001.0, "valid time and ttl"),
])
def test_requests_that_are_not_fresh_signed_and_ours_are_refused(data, now, why):
    with pytest.raises(Refused, match=why):
        opened(data, now=now)


def test_a_key_the_policy_does_not_name_is_refused_and_a_replay_within_the_ttl_too():
    data = seal(body(), BLOB, KEY.sign)
    with pytest.raises(Refused, match="not in the host policy") as refused:
        opened(data, allowed=())
    assert refused.value.key == FP and refused.value.body["reqid"] == "r1"
    replays = ReplayCache()
    opened(data, replays=replays)
    with pytest.raises(Refused, match="replayed request"):
        opened(data, now=1002.0, replays=replays)


def test_only_a_policy_rule_naming_the_key_makes_it_known(tmp_path):
    path = tmp_path / "policy.json"
    assert not policy.names_key(FP, str(path))                       # no policy: no key is known
    path.write_text(json.dumps({"default": "allow", "rules": [{"key": "*", "allow": ["*"]}]}))
    path.chmod(0o644)
    assert not policy.names_key(FP, str(path))                       # "*" names no key
    path.write_text(json.dumps({"rules": [{"key": FP, "allow": ["rpcutil#*"]}]}))
    assert policy.names_key(FP, str(path))


def test_the_responder_runs_the_ssh_pipeline_as_the_verified_key_and_audits_refusals(tmp_path):
    rules = tmp_path / "policy.json"
    rules.write_text(json.dumps({"rules": [{"key": FP, "allow": ["rpcutil#*"]}]}))
    rules.chmod(0o644)
    audit = tmp_path / "audit.jsonl"
    responder = Responder("web1", "orch", match=lambda flt, host: host.facts.get("country") == flt["facts"][0][-2:],
                          local_host=lambda: LocalHost("web1", {"country": "de"}, (), ()),
                          policy_path=str(rules), env={"ORCHESTRATOR_AUDIT_LOG": str(audit)}, started=0.0)
    now = time.time()
    ok = responder.respond(seal(body(time=now, reqid="a", caller="liar"), BLOB, KEY.sign), broadcast=False)
    assert ok["status"] == "ok" and ok["identity"] == "web1"
    denied = responder.respond(seal(body(time=now, reqid="b", agent="health", action="command",
                                         args={"command": "true"}), BLOB, KEY.sign), broadcast=False)
    assert denied["status"] == "failed" and denied["message"].startswith("denied by policy")
    assert responder.respond(seal(body(time=now, reqid="c", filter={"facts": ["country=nl"]}), BLOB, KEY.sign),
                             broadcast=True) is None                 # filter does not match: silence
    assert responder.respond(b'{"body": "{}"}', broadcast=True) is None  # refused broadcast: silence
    lines = [json.loads(line) for line in audit.read_text().splitlines()]
    lines = [e for e in lines if e.get("event") != "received"]     # each request's line before it runs
    assert [(e["reqid"], e["status"]) for e in lines] == [("a", "ok"), ("b", "failed"), ("", "failed")]
    assert lines[0]["caller"] == FP and "liar" not in json.dumps(lines[0])  # never the body's "liar"
    assert lines[2]["message"].startswith("refused: unsigned request")


def test_an_estate_asking_for_nats_needs_its_servers(tmp_path):
    env = tmp_path / "e.yaml"
    env.write_text("transport: nats\nhosts:\n  a: {address: 10.0.0.1}\n")
    with pytest.raises(InventoryError, match=r"e.yaml:1: transport: transport nats needs a 'nats:' section"):
        load_inventory(env)
    env.write_text("transport: nats\nnats: {servers: [http://x]}\nhosts:\n  a: {address: 10.0.0.1}\n")
    with pytest.raises(InventoryError, match=r"nats.servers\[0\]: expected nats://HOST:PORT"):
        load_inventory(env)
    env.write_text("transport: nats\nnats: {servers: nats://10.0.0.9:4222, ttl: 30}\nhosts:\n  a: {address: 10.0.0.1}\n")
    assert load_inventory(env).nats.servers == ("nats://10.0.0.9:4222",) and load_inventory(env).nats.ttl == 30.0


def test_a_filter_travels_as_typed_and_matches_a_host_by_its_own_facts():
    from orchestrator_lib.controller.discovery import Filter
    flt = Filter.parse(classes="roles::web", facts="country=de", compound="cluster=alfa and not web3")
    wire = json.loads(json.dumps(flt.to_wire()))
    assert Filter.from_wire(wire) == flt
    assert Filter.from_wire(wire).matches(LocalHost("web1", {"country": "de", "cluster": "alfa"}, ("roles::web",), ()))
    assert not Filter.from_wire(wire).matches(LocalHost("web3", {"country": "de", "cluster": "alfa"}, ("roles::web",), ()))
    with pytest.raises(FilterError):
        Filter.from_wire({"facts": "country=de"})


def test_the_service_bundle_runs_on_the_hosts_python_without_the_controller(tmp_path):
    """Debian's python3 (the lab hosts'), isolated: the bundle's own nats-py, discovery's matchers
    without the inventory (no PyYAML), the ed25519 check by python3-nacl (libsodium), which
    scripts/setup installs beside python3-cryptography."""
    import subprocess
    import zipfile
    from io import BytesIO

    from orchestrator_lib.host.build import nats_archive
    data, _sha = nats_archive()
    zipfile.ZipFile(BytesIO(data)).extractall(tmp_path)
    script = f"""
import sys; sys.path.insert(0, {str(tmp_path)!r})
import nats, orchestrator_lib.host.nats_service as svc
from orchestrator_lib.controller.discovery.filters import Filter
from orchestrator_lib.host import signing
host = svc.LocalHost("web1", {{"country": "de"}}, ("roles::web",), ())
assert Filter.from_wire({{"facts": ["country=/^d/"], "classes": ["roles::web"]}}).matches(host)
assert "yaml" not in sys.modules and "orchestrator_lib.controller.inventory" not in sys.modules
print(signing._verifier().__name__, nats.__file__.startswith({str(tmp_path)!r}))
"""
    done = subprocess.run(["/usr/bin/python3", "-I", "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["verify_nacl", "True"]


def test_without_pynacl_the_check_falls_back_to_cryptography(monkeypatch):
    """A host without python3-nacl verifies with python3-cryptography: same answers."""
    import sys

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from orchestrator_lib.host import signing
    for module in ("nacl.signing", "nacl.bindings", "nacl.exceptions"):
        monkeypatch.setitem(sys.modules, module, None)  # import fails as on a host without it
    verify = signing._verifier()
    assert verify.__name__ == "verify_cryptography"
    key = Ed25519PrivateKey.generate()
    from cryptography.hazmat.primitives import serialization
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert verify(raw, key.sign(b"m"), b"m") and not verify(raw, key.sign(b"m"), b"n")


def test_the_libsodium_check_refuses_a_wrong_key_a_wrong_message_and_malformed_input():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from orchestrator_lib.host import signing
    verify = signing._verifier()
    assert verify.__name__ == "verify_nacl"
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    sig = key.sign(b"m")
    assert verify(raw, sig, b"m")
    assert not verify(raw, sig, b"n") and not verify(raw, other.sign(b"m"), b"m")
    assert not verify(raw, sig[:63], b"m") and not verify(raw, sig + b"\0", b"m") and not verify(raw[:31], sig, b"m")
    assert not verify(raw, bytes([sig[0] ^ 1]) + sig[1:], b"m")


def _batch_responder(tmp_path, audit_path, name="web1"):
    rules = tmp_path / "policy.json"
    rules.write_text(json.dumps({"rules": [{"key": FP, "allow": ["rpcutil#*"]}]}))
    rules.chmod(0o644)
    return Responder(name, "orch", match=lambda flt, host: True, local_host=lambda: LocalHost(name, {}, (), ()),
                     policy_path=str(rules), env={"ORCHESTRATOR_AUDIT_LOG": str(audit_path)}, started=0.0)


def test_a_batch_writes_its_lines_before_handing_out_any_reply_and_keeps_the_chain(tmp_path):
    from orchestrator_lib.host import audit
    from orchestrator_lib.host.nats_service import Batch
    log = tmp_path / "audit.jsonl"
    agents = [_batch_responder(tmp_path, log, f"sim{i}") for i in range(3)]
    payload = seal(body(time=time.time(), reqid="p1", to=None), BLOB, KEY.sign)
    batch = Batch()
    for agent in agents:
        batch.answer(agent, payload, True, "inbox")
    assert not log.exists()                                  # held: no reply has left yet
    out = batch.replies()
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert [(e["event"], e["reqid"], e["status"]) for e in lines] == [("result", "p1", "ok")] * 3
    assert [json.loads(data)["identity"] for _, data in out] == ["sim0", "sim1", "sim2"]
    assert audit.verify(str(log)) is None and batch.replies() == []


def test_a_batch_whose_lines_cannot_be_written_refuses_the_replies_it_held(tmp_path):
    from orchestrator_lib.host.nats_service import Batch
    (tmp_path / "file").write_text("")                        # a file where the log's directory should be
    agent = _batch_responder(tmp_path, tmp_path / "file" / "audit.jsonl")
    batch = Batch()
    batch.answer(agent, seal(body(time=time.time(), reqid="p2"), BLOB, KEY.sign), True, "inbox")
    [(subject, data)] = batch.replies()
    reply = json.loads(data)
    assert subject == "inbox" and reply["status"] == "failed" and reply["message"].startswith("refused: cannot write")
    assert reply["reqid"] == "p2" and not reply["data"]
