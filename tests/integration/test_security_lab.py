"""Issue 12's lab acceptance: with the policy file removed a gate-restricted key runs nothing and
the refusal is audited; a request whose audit log cannot be written is refused; an older agent
cannot be selected through the gate, and an install removes it."""
from __future__ import annotations

import json

import pytest

from orchestrator_lib.controller.session import Session
from orchestrator_lib.controller.transports import ssh_agent as rpc
from orchestrator_lib.host.build import agent_archive
from orchestrator_lib.host.policy import fingerprint
from tests.conftest import ROOT
from tests.integration.test_agents import auditor_session, install_agent

pytestmark = pytest.mark.lab
LOG = "/var/log/orchestrator/audit.jsonl"
POLICY = "/etc/orchestrator/policy.json"


def host_log(lab, host: str) -> list[dict]:
    return [json.loads(x) for x in lab.exec_in(host, ["cat", LOG]).stdout.splitlines() if x.strip()]


def test_without_a_policy_file_a_restricted_key_runs_nothing_and_the_refusal_is_audited(session, fresh_lab, tmp_path):
    install_agent(session, "web1")
    auditor_fp = fingerprint(open(f"{fresh_lab.auditor_key}.pub").read().split()[1])
    assert fresh_lab.exec_in("web1", ["mv", POLICY, POLICY + ".away"]).returncode == 0
    try:
        with auditor_session(fresh_lab, tmp_path) as auditor:
            web1 = [auditor.host("web1")]
            ran = auditor.call(web1, "health", "command", {"command": "touch /tmp/issue12-ran"})
            ping = auditor.call(web1, "rpcutil", "ping")
        for result in (ran, ping):
            assert result.failed == ["web1"] and "no policy" in result.results["web1"].message
        assert fresh_lab.exec_in("web1", ["test", "-e", "/tmp/issue12-ran"]).returncode != 0
        last = host_log(fresh_lab, "web1")[-2:]  # refused before anything ran: one line each
        assert [(x["event"], x["action"], x.get("status")) for x in last] == [
            ("result", "command", "failed"), ("result", "ping", "failed")]
        assert all(x["caller"] == auditor_fp for x in last)  # the verified key, not a self-declared name
    finally:
        fresh_lab.exec_in("web1", ["mv", POLICY + ".away", POLICY])


def test_a_request_whose_audit_log_cannot_be_written_is_refused(session, fresh_lab):
    install_agent(session, "web2")
    # root can write any file: a directory where the log file should be makes the write fail
    assert fresh_lab.exec_in("web2", ["sh", "-c", f"mv {LOG} {LOG}.away; mkdir {LOG}"]).returncode == 0
    try:
        done = session.call([session.host("web2")], "service", "stop", {"name": "mywebapp"})
        assert done.failed == ["web2"] and "refused: cannot write audit log" in done.results["web2"].message
        assert session.call([session.host("web2")], "service", "status", {"name": "mywebapp"}).failed == ["web2"]
    finally:
        fresh_lab.exec_in("web2", ["sh", "-c", f"rmdir {LOG} && mv {LOG}.away {LOG}"])
    status = session.call([session.host("web2")], "service", "status", {"name": "mywebapp"})
    assert status.ok and status.results["web2"].data.get("state") == "running"  # the stop never ran


def test_an_older_agent_cannot_be_selected_and_an_install_removes_it(session, fresh_lab, tmp_path):
    sha = agent_archive()[1]
    older = "0123456789ab"
    install_agent(session, "web3")
    assert fresh_lab.exec_in("web3", ["cat", f"{rpc.AGENT_DIR}/current"]).stdout == sha + "\n"
    # an older agent still on disk (as every install used to leave them)
    assert fresh_lab.exec_in("web3", ["cp", "-a", rpc.agent_path(sha), rpc.agent_path(older)]).returncode == 0
    with auditor_session(fresh_lab, tmp_path) as auditor:
        web3 = auditor.host("web3")
        picked = auditor.pool.exec(web3, rpc.agent_command(older), stdin=b'{"agent": "rpcutil", "action": "ping"}')
        assert picked.rc == 99 and f"installed agent-{sha} last" in picked.stderr and picked.stdout == ""
        assert auditor.call([web3], "rpcutil", "ping").ok  # the pinned one still runs
    # a new install (the agent removed, as after an upgrade) pins it again and removes the older one;
    # a new session, so no resident agent of the old one answers instead
    assert fresh_lab.exec_in("web3", ["rm", "-rf", rpc.agent_path(sha)]).returncode == 0
    with Session(ROOT / "environments" / "local.yaml", audit_path=None) as fresh:
        install_agent(fresh, "web3")
    listing = fresh_lab.exec_in("web3", ["ls", rpc.AGENT_DIR]).stdout.split()
    assert f"agent-{older}" not in listing and f"agent-{sha}" in listing and "current" in listing
