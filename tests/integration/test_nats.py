"""The same deploys over NATS, on the lab's default estate (its broker and every host's NATS agent
come up with it): the shipped features and the README's Gherkin pass with `-D transport=nats`, a
re-run changes nothing, a stopped host is named, and requests that are unsigned, signed by an
unknown key, badly signed, replayed or expired are refused by every agent, audited, and not run."""
from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import pytest

from orchestrator_lib.controller.discovery import Filter
from orchestrator_lib.controller.errors import DiscoveryError
from orchestrator_lib.controller.orchestration import RunOptions
from orchestrator_lib.controller.session import Session
from orchestrator_lib.controller.transports.nats import Signer
from orchestrator_lib.host.signing import seal
from orchestrator_lib.protocol import Request
from tests.integration.test_features import DE, NEW, OLD, ROOT, behave, blocked, own_feature, readme_gherkin, \
    snapshot, version

NATS = ("-D", "transport=nats")
AUDIT = "/var/log/orchestrator/audit.jsonl"


def audit_lines(lab, host: str, reqid: str) -> list[dict]:
    text = lab.exec_in(host, ["cat", AUDIT]).stdout
    return [e for e in map(json.loads, text.splitlines())
            if e["reqid"].split(".")[0] == reqid and e.get("event") != "received"]  # one result line per request


def audit_reqid(lab, host: str, marker: str) -> str:
    """The reqid of the last request on `host` whose arguments mention `marker`."""
    text = lab.exec_in(host, ["cat", AUDIT]).stdout
    return [e for e in map(json.loads, text.splitlines()) if marker in json.dumps(e["args"])][-1]["reqid"]


def deployer_fingerprint(lab) -> str:
    from orchestrator_lib.host import policy
    return policy.fingerprint((lab.client_key.parent / f"{lab.client_key.name}.pub").read_text().split()[1])


def test_the_seed_deploy_runs_over_nats_and_a_second_run_changes_nothing(fresh_lab, tmp_path):
    first = behave(tmp_path, "features/deploy_webapp.feature", *NATS, name="first")
    assert first.rc == 0, first.out
    assert {h: version(fresh_lab, h) for h in ("web1", "web4", "web5")} == {"web1": NEW, "web4": NEW, "web5": OLD}
    assert not any(blocked(fresh_lab, h) for h in DE)
    # it went over the broker: the host audited the verified key as the caller (SSH records user@host)
    update = [e for e in map(json.loads, fresh_lab.exec_in("web1", ["cat", AUDIT]).stdout.splitlines())
              if e["agent"] == "package" and e["action"] == "update"]
    assert update and update[-1]["caller"] == deployer_fingerprint(fresh_lab)  # the verified key (issue 12)

    second = behave(tmp_path, "features/deploy_webapp.feature", *NATS, name="second")
    assert second.rc == 0, second.out
    cells = second.step("I update the package mywebapp").cells
    assert {h: c.status.value for h, c in cells.items()} == {h: "ok" for h in DE}
    assert all(second.matrix.recap(h).lasting == [] for h in second.matrix.hosts)


def test_the_readme_gherkin_the_rolling_upgrade_and_the_openssl_patch_pass_over_nats(fresh_lab, tmp_path):
    readme = behave(tmp_path, *own_feature(tmp_path, "readme", readme_gherkin()), *NATS, name="readme")
    assert readme.rc == 0, readme.out
    assert {h: version(fresh_lab, h) for h in (*DE, "web5")} == {**{h: NEW for h in DE}, "web5": OLD}
    for feature in ("rolling_upgrade", "openssl_patch"):
        done = behave(tmp_path, f"features/{feature}.feature", *NATS, name=feature)
        assert done.rc == 0, done.out
    assert all(version(fresh_lab, f"web{i}", "openssl-lab") == "3.0.13-1" for i in range(1, 10))


def test_a_stopped_host_is_named_as_not_answering_and_nothing_changes(lab, tmp_path):
    before = snapshot(lab, ["web1", "web2", "web4"])["hosts"]
    lab.stop_host("web3")
    try:
        with Session(ROOT / "environments" / "local.yaml", transport="nats") as session:
            with pytest.raises(DiscoveryError, match=r"1 of 4 discovered hosts did not answer: web3: did not answer"):
                session.discover(Filter.parse(classes="roles::web", facts="country=de"))
            ping = session.call([session.host("web3")], "rpcutil", "ping")
            assert ping.results["web3"].status.value == "unreachable"
            assert "not connected to the NATS broker" in ping.results["web3"].message
            # tries: the retry is a new request to the host (reqid.2), not refused as a replay
            tried = session.call([session.host("web1")], "health", "command", {"command": "false # tries-over-nats"},
                                 RunOptions(tries=2))
            assert tried.results["web1"].tries == 2 and tried.results["web1"].status.value == "failed"
            reqid = audit_reqid(lab, "web1", "tries-over-nats").split(".")[0]
            assert [e["reqid"] for e in audit_lines(lab, "web1", reqid)] == [reqid, f"{reqid}.2"]
        orch = subprocess.run([sys.executable, "-m", "orchestrator_lib.cli", "ping", "-W", "country=de",
                               "--transport", "nats", "-v", "--no-progress"], cwd=ROOT, capture_output=True,
                              text=True, timeout=120)
        assert orch.returncode == 1 and "Traceback" not in orch.stderr
        assert "web3" in orch.stdout and "unreachable" in orch.stdout and "web1" in orch.stdout
        done = behave(tmp_path, "features/deploy_webapp.feature", *NATS)
    finally:
        lab.start_host("web3")
    assert done.rc != 0 and "Traceback" not in done.out
    assert "1 of 4 discovered hosts did not answer: web3" in done.out
    assert snapshot(lab, ["web1", "web2", "web4"])["hosts"] == before


def test_unsigned_unknown_badly_signed_replayed_and_expired_requests_are_refused_by_every_agent(lab, tmp_path):
    from orchestrator_lib.lab.estate import _write_ssh_key
    _write_ssh_key(tmp_path / "stranger", "stranger@nowhere")
    hosts = [h.name for h in lab.hosts]
    with Session(ROOT / "environments" / "local.yaml", transport="nats") as session:
        nats = session.transport.connect()
        deployer, stranger = nats.signer, Signer(tmp_path / "stranger")
        marker = f"/tmp/refused-{uuid.uuid4().hex[:8]}"

        def body(reqid: str, sent: float | None = None, ttl: float = 60.0) -> dict:
            return {"reqid": reqid, "caller": "root@controller", "agent": "health", "action": "command",
                    "args": {"command": f"touch {marker}"}, "time": time.time() if sent is None else sent,
                    "ttl": ttl, "collective": "orch"}

        def publish(payload: bytes) -> dict:
            return nats.broadcast(Request("health", "command"), payload=payload, timeout=1.0)

        cases = {}
        reqid = cases["unsigned"] = uuid.uuid4().hex
        publish(json.dumps({"body": json.dumps(body(reqid))}).encode())
        reqid = cases["not in the host policy"] = uuid.uuid4().hex
        publish(seal(body(reqid), stranger.public_blob, stranger.sign))
        reqid = cases["bad signature"] = uuid.uuid4().hex
        forged = json.loads(seal(body(reqid), deployer.public_blob, deployer.sign))
        forged["body"] = forged["body"].replace(marker, "/tmp/elsewhere")
        publish(json.dumps(forged).encode())
        reqid = cases["expired"] = uuid.uuid4().hex
        publish(seal(body(reqid, sent=time.time() - 120), deployer.public_blob, deployer.sign))
        # replayed: a legitimate ping, answered by all, then the very same bytes again
        reqid = cases["replayed"] = uuid.uuid4().hex
        ping = {**body(reqid), "agent": "rpcutil", "action": "ping", "args": {}}
        original = seal(ping, deployer.public_blob, deployer.sign)
        assert sorted(publish(original)) == sorted(hosts)
        assert publish(original) == {}

    for host in hosts:
        for why, reqid in cases.items():
            lines = audit_lines(lab, host, reqid)
            refused = [e for e in lines if e["status"] == "failed" and e["message"].startswith("refused:")]
            assert len(refused) == 1 and why in refused[0]["message"], (host, why, lines)
            ran = [e for e in lines if e["status"] != "failed"]
            assert len(ran) == (1 if why == "replayed" else 0), (host, why, lines)  # the original ping only
        assert lab.exec_in(host, ["test", "-e", marker]).returncode == 1, host  # no touch ran anywhere
