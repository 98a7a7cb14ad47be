"""The resident agent on real lab hosts: one `--serve` process per host for a whole run, fresh host
state on every request, a killed agent survived, a stopped host still UNREACHABLE."""
from __future__ import annotations

import json
import time


from orchestrator_lib.controller.transports import ssh_agent as rpc
from orchestrator_lib.controller.discovery import Filter
from orchestrator_lib.controller.orchestration import Status
from tests.integration.labcheck import eventually, web

OLD, NEW = "4.2.5-1.el5", "4.2.6-3.el5"








def serving(lab, host: str) -> list[str]:
    """Pids of resident agents on the host: the python3 processes (not the sudo above each, nor nsenter)."""
    return lab.exec_in(host, ["pgrep", "-f", "^/usr/bin/python3 .*agent-.*__main__.py --serve"]).stdout.split()


def audit_reqids(lab, host: str) -> list[str]:
    text = lab.exec_in(host, ["cat", "/var/log/orchestrator/audit.jsonl"]).stdout
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [line["reqid"] for line in lines if line.get("event") != "received"]  # one result line per request





def test_many_calls_start_one_agent_process_per_host(session, fresh_lab):
    hosts = web(session)
    logged_before = {h.name: len(audit_reqids(fresh_lab, h.name)) for h in hosts[:3]}
    first = session.call(hosts, "rpcutil", "ping")
    assert first.ok, first.tally()
    pids = {h.name: serving(fresh_lab, h.name) for h in hosts}
    assert all(len(p) == 1 for p in pids.values()), pids
    channels = session.transport
    opened = channels.opened
    runs = [session.call(hosts, "rpcutil", "ping") for _ in range(10)]
    runs.append(session.call(hosts, "package", "status", {"name": "mywebapp"}))
    assert all(r.ok for r in runs)
    assert channels.opened == opened, "a warm call started a new agent"
    assert {h.name: serving(fresh_lab, h.name) for h in hosts} == pids
    assert session.pool.connects == 9
    # every request still has its own audit line on the host, with its own reqid
    for h in hosts[:3]:
        logged = audit_reqids(fresh_lab, h.name)[logged_before[h.name]:]
        assert len(logged) == 12 and len(set(logged)) == 12
    session.close()
    assert all(eventually(lambda h=h: serving(fresh_lab, h.name) == []) for h in hosts), "close() left agents running"


def test_converged_runs_read_fresh_state_after_a_change_around_the_deployer(session, fresh_lab):
    hosts = web(session, "web1 or web2 or web3")
    args = {"app": "mywebapp", "revision": NEW}
    assert session.call(hosts, "appmgr", "deploy", args).changed == ["web1", "web2", "web3"]
    again = session.call(hosts, "appmgr", "deploy", args)
    assert again.ok and again.changed == []
    status = session.call(hosts, "package", "status", {"name": "mywebapp"})
    assert {r.data["version"] for r in status.results.values()} == {NEW}

    pid = serving(fresh_lab, "web2")
    down = fresh_lab.exec_in("web2", ["sh", "-c", "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
                                                  f"--allow-downgrades mywebapp={OLD}"], timeout=120)
    assert down.returncode == 0, down.stderr
    status = session.call(hosts, "package", "status", {"name": "mywebapp"})
    assert {n: r.data["version"] for n, r in status.results.items()} == {"web1": NEW, "web2": OLD, "web3": NEW}
    redeploy = session.call(hosts, "appmgr", "deploy", args)
    assert redeploy.ok and redeploy.changed == ["web2"], redeploy.tally()
    assert serving(fresh_lab, "web2") == pid, "the same resident agent answered"


def test_a_killed_agent_is_survived_transparently(session, fresh_lab):
    hosts = web(session)
    assert session.call(hosts, "rpcutil", "ping").ok
    channels = session.transport
    opened = channels.opened
    before = serving(fresh_lab, "web4")
    assert len(before) == 1
    kill = fresh_lab.exec_in("web4", ["pkill", "-f", "[a]gent-.*--serve"])
    assert kill.returncode == 0, kill.stderr
    assert eventually(lambda: serving(fresh_lab, "web4") == [])
    result = session.call(hosts, "rpcutil", "ping")
    assert result.ok and result.results["web4"].status is Status.OK, result.tally()
    after = serving(fresh_lab, "web4")
    assert len(after) == 1 and after != before
    assert channels.opened == opened + 1
    assert session.pool.connects == 9, "the connection itself was kept"


def test_a_host_stopped_mid_run_is_unreachable(session, fresh_lab):
    hosts = session.select(Filter.parse(facts=["cluster=bravo"]))
    assert session.call(hosts, "rpcutil", "ping").ok  # resident agents open on all of them
    fresh_lab.stop_host("web5")
    try:
        started = time.monotonic()
        result = session.call(hosts, "rpcutil", "ping")
        assert result.unreachable == ["web5"], result.tally()
        assert sorted(result.by_status()[Status.OK]) == ["web6", "web7", "web8", "web9"]
        assert "web5" in result.results["web5"].message and "unreachable" in result.results["web5"].message
        assert time.monotonic() - started < 30
    finally:
        fresh_lab.start_host("web5")
    back = session.call(hosts, "rpcutil", "ping")
    assert back.ok, back.tally()
