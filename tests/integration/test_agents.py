"""Every agent against real lab hosts: its change path, its no-op path, and the host's real state
checked around the deployer (lab.exec_in, HTTP, HAProxy's own socket)."""
from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import paramiko
import pytest


from orchestrator_lib.controller.orchestration import RunOptions, Status
from orchestrator_lib.controller.session import Session
from tests.conftest import ROOT
from tests.integration.labcheck import eventually, health, op_states, web

LB = "10.231.0.2"








def dpkg_log_lines(lab, host: str) -> int:
    return len(lab.exec_in(host, ["cat", "/var/log/dpkg.log"]).stdout.splitlines())











# ---- appmgr + package ----------------------------------------------------------------------------
def test_appmgr_deploys_in_batches_then_a_rerun_changes_nothing(session, fresh_lab):
    hosts = web(session)
    args = {"app": "mywebapp", "revision": "4.2.6-3.el5"}
    first = session.call(hosts, "appmgr", "deploy", args, options=RunOptions(batch_size=2))
    assert first.ok, first.tally()
    assert first.changed == [h.name for h in hosts]
    assert all(health(h.address)["version"] == "4.2.6-3.el5" for h in hosts)

    writes = {h.name: dpkg_log_lines(fresh_lab, h.name) for h in hosts}
    again = session.call(hosts, "appmgr", "deploy", args, options=RunOptions(batch_size=2))
    assert again.ok and again.changed == []
    assert all(r.status is Status.OK for r in again.results.values())
    assert {h.name: dpkg_log_lines(fresh_lab, h.name) for h in hosts} == writes, "a converged run wrote through dpkg"
    assert "ok on 9 of 9 hosts" in again.tally()


def test_package_update_then_noop_and_downgrade_only_when_asked(session, fresh_lab):
    hosts = web(session, "web1 or web2")
    update = session.call(hosts, "package", "update", {"name": "mywebapp", "version": "4.2.6-3.el5"})
    assert update.ok and update.changed == ["web1", "web2"]
    assert update.results["web1"].before == "4.2.5-1.el5" and update.results["web1"].after == "4.2.6-3.el5"
    # the app keeps reporting what it started with until restarted: the package does not restart it
    assert health("10.231.0.11")["version"] == "4.2.5-1.el5"
    noop = session.call(hosts, "package", "update", {"name": "mywebapp", "version": "4.2.6-3.el5"})
    assert noop.ok and noop.changed == []
    refused = session.call(hosts, "package", "install", {"name": "mywebapp", "version": "4.2.5-1.el5"})
    assert refused.failed == ["web1", "web2"] and "downgrade" in refused.results["web1"].message
    down = session.call(hosts, "package", "install", {"name": "mywebapp", "version": "4.2.5-1.el5", "downgrade": True})
    assert down.ok and down.changed == ["web1", "web2"]
    status = session.call(hosts, "package", "status", {"name": "mywebapp"})
    assert status.summary("version") == "Summary of version: 4.2.5-1.el5 = 2"


def test_package_remove_and_install(session, fresh_lab):
    host = web(session, "web3")
    removed = session.call(host, "package", "remove", {"name": "openssl-lab"})
    # nginx depends on openssl-lab: apt refuses, or removes both; either way the result says so
    if removed.ok:
        assert fresh_lab.exec_in("web3", ["dpkg-query", "-W", "-f=${Status}", "openssl-lab"]).stdout.find("not-installed") >= 0 \
            or fresh_lab.exec_in("web3", ["dpkg-query", "-W", "openssl-lab"]).returncode != 0
        again = session.call(host, "package", "remove", {"name": "openssl-lab"})
        assert again.ok and again.changed == []
        assert session.call(host, "package", "install", {"name": "openssl-lab"}).changed == ["web3"]
    else:
        assert removed.failed == ["web3"]


def test_the_broken_release_fails_its_health_check_on_exactly_the_hosts_it_reaches(session, fresh_lab):
    hosts = web(session, "hagroup=a")  # web1, web4, web7
    result = session.call(hosts, "appmgr", "deploy", {"app": "mywebapp", "revision": "4.2.7-1.el5", "deadline": 3}, options=RunOptions(batch_size=2))
    assert result.failed == ["web1", "web4"]
    assert result.not_attempted == ["web7"]
    assert "health" in result.results["web1"].message.lower() or "4.2.7" in result.results["web1"].message
    assert eventually(lambda: op_states(fresh_lab)["web1"] == 0), "HAProxy must see the broken app DOWN"
    assert health("10.231.0.17")["version"] == "4.2.5-1.el5"


# ---- service -------------------------------------------------------------------------------------
def nginx_pid(lab, host: str) -> str:
    return lab.exec_in(host, ["sv", "status", "nginx"]).stdout.split("(pid ")[1].split(")")[0]


def test_service_restart_status_stop_start(session, fresh_lab):
    hosts = web(session, "hagroup=c")
    before = {h.name: nginx_pid(fresh_lab, h.name) for h in hosts}
    restart = session.call(hosts, "service", "restart", {"name": "nginx"})
    assert restart.ok and restart.changed == ["web3", "web6", "web9"]
    assert all(nginx_pid(fresh_lab, n) != pid for n, pid in before.items())
    assert nginx_pid(fresh_lab, "web1")  # other groups untouched
    status = session.call(hosts, "service", "status", {"name": "nginx"})
    assert status.ok and status.changed == []
    start = session.call(hosts, "service", "start", {"name": "nginx"})
    assert start.ok and start.changed == [], "starting a running service is a no-op"
    stop = session.call(hosts[:1], "service", "stop", {"name": "nginx"})
    assert stop.changed == ["web3"]
    assert "down" in fresh_lab.exec_in("web3", ["sv", "status", "nginx"]).stdout
    assert session.call(hosts[:1], "service", "stop", {"name": "nginx"}).changed == []
    assert session.call(hosts[:1], "service", "start", {"name": "nginx"}).changed == ["web3"]
    assert health("10.231.0.13", 80)["status"] == "ok"


# ---- haproxy -------------------------------------------------------------------------------------
def served(count: int = 18) -> set[str]:
    hosts = set()
    for _ in range(count):
        with urllib.request.urlopen(f"http://{LB}/", timeout=2) as reply:
            hosts.add(reply.read().decode().split()[-1])
    return hosts


def test_haproxy_disable_and_enable_show_in_state_and_in_where_requests_go(session, fresh_lab):
    lb = [session.host("lb1")]
    args = {"backend": "app", "servers": ["web1", "web2"]}
    disable = session.call(lb, "haproxy", "disable", args)
    assert disable.ok and disable.changed == ["lb1"]
    assert served().isdisjoint({"web1", "web2"})
    again = session.call(lb, "haproxy", "disable", args)
    assert again.ok and again.changed == []
    state = session.call(lb, "haproxy", "status", {"backend": "app"})
    assert "web1" in json.dumps(state.results["lb1"].data)
    enable = session.call(lb, "haproxy", "enable", args)
    assert enable.ok and enable.changed == ["lb1"]
    assert eventually(lambda: {"web1", "web2"} <= served())
    assert session.call(lb, "haproxy", "enable", args).changed == []


def test_haproxy_drain_waits_and_reports(session, fresh_lab):
    lb = [session.host("lb1")]
    drain = session.call(lb, "haproxy", "drain", {"backend": "app", "servers": ["web3"], "deadline": 5})
    assert drain.ok and drain.changed == ["lb1"]
    assert "web3" not in served()
    session.call(lb, "haproxy", "enable", {"backend": "app", "servers": ["web3"]})


def test_haproxy_unknown_server_is_a_clear_failure(session, fresh_lab):
    result = session.call([session.host("lb1")], "haproxy", "disable", {"backend": "app", "servers": ["web42"]})
    assert result.failed == ["lb1"] and "web42" in result.results["lb1"].message


# ---- firewall ------------------------------------------------------------------------------------
def test_firewall_block_marks_the_host_down_and_unblock_brings_it_back(session, fresh_lab):
    hosts = web(session, "web5 or web6")
    block = session.call(hosts, "firewall", "block", {"source": LB})
    assert block.ok and block.changed == ["web5", "web6"]
    assert eventually(lambda: op_states(fresh_lab)["web5"] == 0 and op_states(fresh_lab)["web6"] == 0)
    assert session.call(hosts, "firewall", "block", {"source": LB}).changed == []
    assert all(r.data["blocked"] for r in session.call(hosts, "firewall", "status", {"source": LB}).results.values())
    assert health("10.231.0.15")["host"] == "web5", "the deployer still reaches a blocked host"
    unblock = session.call(hosts, "firewall", "unblock", {"source": LB})
    assert unblock.ok and unblock.changed == ["web5", "web6"]
    assert eventually(lambda: op_states(fresh_lab)["web5"] == 2 and op_states(fresh_lab)["web6"] == 2)
    assert session.call(hosts, "firewall", "unblock", {"source": LB}).changed == []


# ---- health --------------------------------------------------------------------------------------
def test_health_http_load_and_command(session, fresh_lab):
    hosts = web(session, "cluster=alfa")
    ok = session.call(hosts, "health", "http", {"url": "http://127.0.0.1:8080/health", "field": "version",
                                                 "expect": "4.2.5-1.el5", "deadline": 5})
    assert ok.ok and ok.changed == []
    wrong = session.call(hosts[:1], "health", "http", {"url": "http://127.0.0.1:8080/health", "field": "version",
                                                        "expect": "9.9", "deadline": 1, "interval": 0.2})
    assert wrong.failed == ["web1"] and "9.9" in wrong.results["web1"].message
    assert wrong.results["web1"].data["attempts"] >= 2
    assert session.call(hosts, "health", "load", {"threshold": 10000, "deadline": 5}).ok
    nrpe = session.call(hosts[:1], "health", "command", {"command": "exit 2", "deadline": 0.5, "interval": 0.1})
    assert nrpe.failed == ["web1"] and "CRITICAL" in nrpe.results["web1"].message


# ---- notify, rpcutil -----------------------------------------------------------------------------
def test_notify_posts_to_the_webhook_on_a_notification_host(session, fresh_lab):
    sent = session.call([session.host("notify1")], "notify", "send",
                        {"recipient": "ops@example.com", "message": "updated 4 hosts",
                         "webhook": "http://127.0.0.1:8025/notify"})
    assert sent.ok, sent.tally()
    with urllib.request.urlopen("http://10.231.0.21:8025/messages", timeout=2) as reply:
        messages = json.loads(reply.read())
    assert messages[-1]["recipient"] == "ops@example.com" and messages[-1]["message"] == "updated 4 hosts"


def test_rpcutil_facts_are_read_on_the_host(session):
    """Built-in facts and the facts and classes the lab wrote onto the host, each with its source."""
    data = session.call([session.host("web3")], "rpcutil", "facts").results["web3"].data
    assert (data["facts"]["hostname"], data["facts"]["os_family"], data["facts"]["cluster"]) == ("web3", "Debian", "alfa")
    assert data["sources"]["cluster"] == "/etc/orchestrator/facts.d/lab.yaml" and data["classes"] == ["roles::web"]


# ---- security: the hosts' allow-list ------------------------------------------------------------
def auditor_session(lab, tmp_path) -> Session:
    """A Session on the default estate that authenticates with the lab's auditor key."""
    env = tmp_path / "auditor.yaml"
    local = (ROOT / "environments" / "local.yaml").read_text().replace("../.lab/", f"{ROOT}/.lab/")
    env.write_text(local.replace("key: " + f"{ROOT}/.lab/local/id_ed25519", f"key: {lab.auditor_key}"))
    return Session(env, audit_path=None)


def host_audit(lab, host: str) -> list[dict]:
    lines = [json.loads(line) for line in
             lab.exec_in(host, ["cat", "/var/log/orchestrator/audit.jsonl"]).stdout.splitlines()]
    return [line for line in lines if line.get("event") != "received"]  # one result line per request


def install_agent(session, *names: str) -> None:
    """The deployer installs the agent (an auditor cannot: its gate refuses the install steps)."""
    assert session.call([session.host(n) for n in names], "rpcutil", "ping").ok


def test_a_read_only_caller_may_read_state_but_not_change_it(session, fresh_lab, tmp_path):
    install_agent(session, "web1")
    with auditor_session(fresh_lab, tmp_path) as auditor:
        hosts = [auditor.host("web1")]
        assert auditor.call(hosts, "package", "status", {"name": "mywebapp"}).ok
        denied = auditor.call(hosts, "package", "update", {"name": "mywebapp", "version": "4.2.6-3.el5"})
    assert denied.failed == ["web1"] and "denied by policy: package#update" in denied.results["web1"].message
    assert fresh_lab.exec_in("web1", ["dpkg-query", "-W", "-f=${Version}", "mywebapp"]).stdout == "4.2.5-1.el5"
    audit = fresh_lab.exec_in("web1", ["cat", "/var/log/orchestrator/audit.jsonl"]).stdout.splitlines()
    assert "denied" in audit[-1] and "package" in audit[-1]


def test_the_auditor_reads_every_status_but_runs_no_command_nor_fetch(session, fresh_lab, tmp_path):
    """The review's root shell: health#command (and its alias health#runcommand) ran `sh -c` as root."""
    install_agent(session, "web1", "lb1")
    with auditor_session(fresh_lab, tmp_path) as auditor:
        web1, lb1 = [auditor.host("web1")], [auditor.host("lb1")]
        for agent, action, args, hosts in [("rpcutil", "ping", {}, web1), ("rpcutil", "facts", {}, web1),
                                           ("package", "status", {"name": "mywebapp"}, web1),
                                           ("service", "status", {"name": "nginx"}, web1),
                                           ("firewall", "status", {"source": LB}, web1),
                                           ("health", "load", {"threshold": 10000}, web1),
                                           ("haproxy", "status", {"backend": "app"}, lb1)]:
            result = auditor.call(hosts, agent, action, args)
            assert result.ok, (agent, action, result.tally(), [r.message for r in result.results.values()])
        for action, args in [("command", {"command": "id > /tmp/pwned"}), ("runcommand", {"command": "id > /tmp/pwned"}),
                             ("http", {"url": "http://10.231.0.21:8025/messages"})]:
            result = auditor.call(web1, "health", action, args)
            assert result.failed == ["web1"], result.tally()
            assert result.results["web1"].message.startswith(f"denied by policy: health#{action}")
        for agent, action, args in [("package", "purge", {"name": "mywebapp"}),
                                    ("package", "uninstall", {"name": "mywebapp"}),
                                    ("appmgr", "upgrade", {"app": "mywebapp", "revision": "4.2.6-3.el5"}),
                                    ("notify", "sendmsg", {"recipient": "x", "message": "y"}),
                                    ("firewall", "block", {"source": LB}), ("service", "restart", {"name": "mywebapp"})]:
            result = auditor.call(web1, agent, action, args)
            assert result.results["web1"].message.startswith(f"denied by policy: {agent}#{action}"), result.tally()
    assert fresh_lab.exec_in("web1", ["test", "-e", "/tmp/pwned"]).returncode != 0
    assert fresh_lab.exec_in("web1", ["dpkg-query", "-W", "-f=${Version}", "mywebapp"]).stdout == "4.2.5-1.el5"
    denials = [a for a in host_audit(fresh_lab, "web1") if a["status"] == "failed"]
    assert {a["action"] for a in denials} >= {"command", "runcommand", "http", "purge", "uninstall", "upgrade"}


def test_the_auditor_keeps_one_resident_agent_per_host(session, fresh_lab, tmp_path):
    """Through the gate, `--serve` still reaches the agent: one session answers every call quickly
    (a forced command that dropped --serve left the controller waiting until its timeout)."""
    from orchestrator_lib.controller.transports import ssh_agent as rpc
    install_agent(session, "web2")
    with auditor_session(fresh_lab, tmp_path) as auditor:
        hosts = [auditor.host("web2")]
        started = time.monotonic()
        for _ in range(5):
            assert auditor.call(hosts, "rpcutil", "ping", options=RunOptions(timeout=10)).ok
        assert time.monotonic() - started < 5
        assert auditor.transport.opened == 1
    pings = [a for a in host_audit(fresh_lab, "web2") if a["action"] == "ping"]
    assert len(pings) >= 5


def test_the_auditor_cannot_install_the_agent(fresh_lab, tmp_path):
    """A fresh host has no agent: the gate answers 111 like the original command, then refuses the
    install steps (mkdir, SFTP, python3 -), so the call fails in one line and nothing is written."""
    with auditor_session(fresh_lab, tmp_path) as auditor:
        result = auditor.call([auditor.host("web3")], "rpcutil", "ping", options=RunOptions(timeout=10))
    assert result.failed == ["web3"], result.tally()
    assert "orchestrator-gate: refused installing the agent" in result.results["web3"].message
    installed = fresh_lab.exec_in("web3", ["sh", "-c", "ls /var/lib/orchestrator"]).stdout.split()
    assert [d for d in installed if not d.startswith("nats-")] == []  # nats-*: the image's NATS service


def auditor_client(lab, host: str) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.load_host_keys(str(lab.known_hosts))
    client.connect(lab.host(host).address, username="deploy", key_filename=str(lab.auditor_key),
                   look_for_keys=False, allow_agent=False, timeout=5)
    return client


def run_as_auditor(client: paramiko.SSHClient, command: str, env: dict | None = None,
                   stdin: bytes = b"") -> tuple[int, str, str]:
    chan = client.get_transport().open_session(timeout=5)
    if env:
        chan.update_environment(env)
    chan.settimeout(10)
    chan.exec_command(command)
    if stdin:
        chan.sendall(stdin)
    chan.shutdown_write()
    out, err = b"", b""
    while True:
        data = chan.recv(65536)
        if not data:
            break
        out += data
    while chan.recv_stderr_ready() or not chan.exit_status_ready():
        chunk = chan.recv_stderr(65536)
        if not chunk:
            break
        err += chunk
    rc = chan.recv_exit_status()
    chan.close()
    return rc, out.decode(), err.decode()


def test_the_auditor_key_gets_no_shell_no_sftp_and_cannot_fake_the_deployer(session, fresh_lab, tmp_path):
    """Plain SSH with the auditor key: every command but the agent's is refused by the gate, so it
    can neither run code as root nor write an auth file naming the deployer's key."""
    from orchestrator_lib.controller.transports import ssh_agent as rpc
    from orchestrator_lib.host.build import agent_archive
    install_agent(session, "web4")
    sha = agent_archive()[1]
    deployer_pub = Path(f"{fresh_lab.client_key}.pub").read_text().split()
    forged = f"printf 'publickey {deployer_pub[0]} {deployer_pub[1]}\\n' > /tmp/auth"
    client = auditor_client(fresh_lab, "web4")
    try:
        for command in ["id", forged, "sh -c id", f"mkdir -p {rpc.AGENT_DIR}",
                        f"SSH_USER_AUTH=/tmp/auth {rpc.agent_command(sha)}", rpc.agent_command(sha) + "; id"]:
            rc, out, err = run_as_auditor(client, command)
            assert rc == 99 and out == "" and err.startswith("orchestrator-gate: refused"), (command, rc, out, err)
        with pytest.raises(paramiko.SSHException):
            client.open_sftp()
        chan = client.get_transport().open_session(timeout=5)
        chan.settimeout(10)
        chan.invoke_shell()
        assert chan.recv_exit_status() == 99
        chan.close()
        # The environment a caller sends is not the agent's: sshd accepts none of these names, and the
        # installed agent ignores test-only overrides anyway.
        request = json.dumps({"reqid": "spoof1", "agent": "package", "action": "update",
                              "args": {"name": "mywebapp", "version": "4.2.6-3.el5"}}).encode()
        rc, out, err = run_as_auditor(client, rpc.agent_command(sha, "sudo"), stdin=request,
                                      env={"SSH_USER_AUTH": "/tmp/auth", "ORCHESTRATOR_AUDIT_LOG": "/tmp/audit.jsonl",
                                           "LC_ALL": "C"})
        assert rc == 0, err
        assert json.loads(out)["message"].startswith("denied by policy: package#update for SHA256:"), out
    finally:
        client.close()
    assert fresh_lab.exec_in("web4", ["test", "-e", "/tmp/auth"]).returncode != 0
    assert fresh_lab.exec_in("web4", ["test", "-e", "/tmp/audit.jsonl"]).returncode != 0
    assert [a["reqid"] for a in host_audit(fresh_lab, "web4")][-1] == "spoof1"
    assert fresh_lab.exec_in("web4", ["dpkg-query", "-W", "-f=${Version}", "mywebapp"]).stdout == "4.2.5-1.el5"
