"""The agent channel's safety on real lab hosts: secrets never reach a log, the console or a report;
a request is never run twice when its resident agent dies mid-request; a forced command that
cannot serve costs a short probe, not the call's timeout; a half-configured package rolls back."""
from __future__ import annotations

import json
import shlex
import threading
import time
import uuid

from orchestrator_lib.controller.transports import ssh_agent as rpc
from orchestrator_lib.controller.orchestration import RunOptions, Status
from orchestrator_lib.controller.session import Session
from tests.conftest import ROOT
from tests.integration.labcheck import eventually

LOCAL = ROOT / "environments" / "local.yaml"
SECRETS = ("S3cretPW", "TOK123", "hunter3", "SECRETPATH")


def host_audit(lab, host: str) -> list[dict]:
    text = lab.exec_in(host, ["cat", "/var/log/orchestrator/audit.jsonl"]).stdout
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [line for line in lines if line.get("event") != "received"]  # one result line per request


def serving(lab, host: str) -> list[str]:
    return lab.exec_in(host, ["pgrep", "-f", "[a]gent-.*__main__.py --serve"]).stdout.split()


def test_secrets_reach_neither_audit_log_nor_the_results(fresh_lab, tmp_path):
    central = tmp_path / "audit.jsonl"
    url = "http://admin:S3cretPW@127.0.0.1:1/health?token=TOK123"
    with Session(LOCAL, audit_path=central) as s:
        checked = s.call([s.host("web1")], "health", "http", {"url": url, "body": "pw=hunter3"})
        notified = s.call([s.host("notify1")], "notify", "send",
                          {"recipient": "ops", "message": "deployed, token=TOK123",
                           "webhook": "http://127.0.0.1:8025/T0/B1/SECRETPATH"})
    web1, notify1 = checked.results["web1"], notified.results["notify1"]
    assert web1.status is Status.FAILED and "http://***@127.0.0.1:1/health?token=***" in web1.message
    shown = json.dumps([[r.message, r.data] for r in (web1, notify1)])  # what the console and reports get
    logged = [json.dumps(host_audit(fresh_lab, "web1")[-1]), json.dumps(host_audit(fresh_lab, "notify1")[-1]),
              central.read_text()]
    for secret in SECRETS:
        assert secret not in shown, secret
        for text in logged:
            assert secret not in text, (secret, text)


def test_a_request_whose_agent_dies_mid_request_is_not_run_again(fresh_lab, tmp_path):
    marker = f"/tmp/once-{uuid.uuid4().hex[:8]}"
    command = f"echo started >> {marker}; sleep 2; echo finished >> {marker}"
    with Session(LOCAL, audit_path=tmp_path / "audit.jsonl") as s:
        web2 = s.host("web2")
        assert s.call([web2], "rpcutil", "ping").ok  # the resident agent is up
        out = {}
        caller = threading.Thread(target=lambda: out.update(
            r=s.call([web2], "health", "command", {"command": command, "timeout": 30}, options=RunOptions(tries=2))))
        caller.start()
        assert eventually(lambda: fresh_lab.exec_in("web2", ["test", "-s", marker]).returncode == 0, 10)
        assert fresh_lab.exec_in("web2", ["pkill", "-f", "[a]gent-.*--serve"]).returncode == 0
        caller.join(60)
        result = out["r"].results["web2"]
        assert result.status is Status.UNREACHABLE and result.tries == 2, result
        assert "may or may not have run" in result.message and "not sent again" in result.message
        reqid = json.loads((tmp_path / "audit.jsonl").read_text().splitlines()[-1])["reqid"]
        assert f"request {reqid}" in result.message
        assert s.call([web2], "rpcutil", "ping").ok  # the next request gets a new agent
    assert eventually(lambda: "finished" in fresh_lab.exec_in("web2", ["cat", marker]).stdout, 10)
    time.sleep(1)
    assert fresh_lab.exec_in("web2", ["cat", marker]).stdout.split() == ["started", "finished"]


def test_a_forced_one_shot_command_falls_back_within_the_probe_time(fresh_lab, tmp_path, monkeypatch):
    """authorized_keys forces the one-shot agent (drops --serve): the probe finds out in
    SERVE_PROBE_TIMEOUT, the calls run one-shot, each exactly once."""
    monkeypatch.setattr(rpc, "SERVE_PROBE_TIMEOUT", 2.0)
    with Session(LOCAL, audit_path=None) as s:
        assert s.call([s.host("web3")], "rpcutil", "ping").ok  # installs the agent while we may
    keys = "/home/deploy/.ssh/authorized_keys"   # the estate logs in as deploy
    original = fresh_lab.exec_in("web3", ["cat", keys]).stdout
    deployer = original.splitlines()[0]
    write(fresh_lab, "web3", keys, 'command="eval \\"${SSH_ORIGINAL_COMMAND% --serve}\\"" ' + deployer + "\n")
    try:
        with Session(LOCAL, audit_path=None) as s:
            web3 = [s.host("web3")]
            started = time.monotonic()
            first = s.call(web3, "rpcutil", "ping", options=RunOptions(timeout=300))
            assert first.ok, first.tally()
            assert time.monotonic() - started < 15
            started = time.monotonic()
            assert s.call(web3, "package", "status", {"name": "mywebapp"}, options=RunOptions(timeout=300)).ok
            assert time.monotonic() - started < 5  # straight to the one-shot exec: no second probe
            assert "no answer to the serve probe within 2 s" in s.transport.slot("web3").one_shot
            assert serving(fresh_lab, "web3") == []
        logged = [e["reqid"] for e in host_audit(fresh_lab, "web3")]
        assert len(logged) == len(set(logged)), "a request ran twice"
    finally:
        write(fresh_lab, "web3", keys, original)


def write(lab, host: str, path: str, text: str) -> None:
    done = lab.exec_in(host, ["sh", "-c", f"printf %s {shlex.quote(text)} > {path}"])
    assert done.returncode == 0, done.stderr


def test_rolling_back_from_a_half_configured_package(session, fresh_lab):
    web4 = [session.host("web4")]
    assert session.call(web4, "package", "update", {"name": "openssl-lab", "version": "3.0.13-1"}).ok
    mark = fresh_lab.exec_in("web4", ["sh", "-c", "sed -i '/^Package: openssl-lab$/,/^$/ s/^Status: install ok "
                                                  "installed$/Status: install ok half-configured/' /var/lib/dpkg/status"])
    assert mark.returncode == 0, mark.stderr
    status = session.call(web4, "package", "status", {"name": "openssl-lab"}).results["web4"]
    assert status.data["state"] == "half-configured", status.data
    back = session.call(web4, "package", "update", {"name": "openssl-lab", "version": "3.0.11-1", "downgrade": True})
    result = back.results["web4"]
    assert result.status is Status.CHANGED, result.message
    assert result.message == "openssl-lab downgraded 3.0.13-1 (half-configured) -> 3.0.11-1"
    assert session.call(web4, "package", "status", {"name": "openssl-lab"}).results["web4"].data["version"] == "3.0.11-1"
