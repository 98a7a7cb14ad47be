"""The default estate logs in as `deploy` and runs the agent as root through `sudo -n`: root
logins are refused, the agent is installed root-owned through the sudo installer, the audit log
names the login user and the key, and a host without the sudo rule is a one-line error."""
from __future__ import annotations

import json

import paramiko
import pytest

from orchestrator_lib.controller.inventory import load_inventory
from orchestrator_lib.controller.orchestration import Status
from orchestrator_lib.controller.session import Session
from orchestrator_lib.controller.transports.ssh_agent import AGENT_DIR
from orchestrator_lib.host.policy import fingerprint
from tests.conftest import ROOT

LOCAL = ROOT / "environments" / "local.yaml"
SUDOERS = "/etc/sudoers.d/orchestrator"


def test_root_cannot_log_in_and_deploy_can(lab):
    key = paramiko.Ed25519Key.from_private_key_file(str(lab.client_key))
    for user, ok in (("root", False), ("deploy", True)):
        transport = paramiko.Transport(("10.231.0.11", 22))
        try:
            transport.connect()
            try:
                transport.auth_publickey(user, key)
                logged_in = True
            except paramiko.AuthenticationException:
                logged_in = False
        finally:
            transport.close()
        assert logged_in is ok, user


def test_the_agent_runs_as_root_from_a_root_owned_directory_and_the_audit_names_deploy(session, lab):
    web1 = session.inventory.host("web1")
    assert (web1.user, web1.become) == ("deploy", "sudo")
    result = session.call([web1], "rpcutil", "ping")
    assert result.ok, result.results["web1"].message
    owners = lab.exec_in("web1", ["sh", "-c", f"stat -c '%U %a %n' {AGENT_DIR}/agent-*/ {AGENT_DIR}/agent-*/__main__.py; "
                                              "ls -A /home/deploy"]).stdout
    lines = owners.splitlines()
    assert lines[0].startswith("root 755 ") and lines[1].startswith("root 644 "), owners
    assert not any(".orchestrator-agent-" in line for line in lines), "the upload was left in the home directory"
    audit = lab.exec_in("web1", ["tail", "-1", "/var/log/orchestrator/audit.jsonl"]).stdout
    entry = json.loads(audit)
    deployer = fingerprint((lab.client_key.parent / (lab.client_key.name + ".pub")).read_text().split()[1])
    assert (entry["user"], entry["caller"], entry["action"]) == ("deploy", deployer, "ping")


@pytest.mark.parametrize("rule, reason", [
    (None, "a password is required"),
    ("deploy ALL=(root) ALL\n", "a password is required"),   # a rule that asks for a password
])
def test_a_host_without_the_sudo_rule_is_one_line_naming_host_and_rule(fresh_lab, rule, reason):
    saved = fresh_lab.exec_in("web2", ["cat", SUDOERS]).stdout
    assert "ORCHESTRATOR_AGENT" in saved
    script = f"rm -f {SUDOERS}" if rule is None else f"printf '%s' '{rule}' > {SUDOERS} && chmod 440 {SUDOERS}"
    fresh_lab.exec_in("web2", ["sh", "-c", script])
    try:
        inventory = load_inventory(LOCAL)
        with Session(LOCAL) as session:
            result = session.call([inventory.host("web1"), inventory.host("web2")], "rpcutil", "ping")
        assert result.results["web1"].status is Status.OK
        bad = result.results["web2"]
        assert bad.status is Status.FAILED and "\n" not in bad.message
        assert f"web2: sudo -n will not run the agent as root for deploy ({reason})" in bad.message
        assert "deploy ALL=(root) NOPASSWD: ORCHESTRATOR_AGENT" in bad.message and SUDOERS in bad.message
    finally:
        fresh_lab.reset(["web2"])
