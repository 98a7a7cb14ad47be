"""The lab is made of real parts: these tests check them directly, around the deployer."""
from __future__ import annotations

import json
import socket
import subprocess
import time
from collections import Counter
from pathlib import Path

import paramiko
import pytest

from orchestrator_lib.controller.inventory import load_inventory
from orchestrator_lib.lab import Lab
from tests.integration.labcheck import eventually, haproxy, http_get, op_states














def served_hosts(count: int = 18) -> Counter:
    return Counter(http_get("http://10.231.0.2/").split()[-1] for _ in range(count))


def test_every_host_answers_ssh_and_its_services(fresh_lab):
    rows = fresh_lab.status()
    assert len(rows) == 12
    assert all(row.healthy for row in rows), [r for r in rows if not r.healthy]
    health = json.loads(http_get("http://10.231.0.13:8080/health"))
    assert health == {"status": "ok", "version": "4.2.5-1.el5", "host": "web3"}


def test_a_package_installed_on_one_host_is_on_no_other_nor_on_the_machine(fresh_lab):
    install = fresh_lab.exec_in("web3", ["sh", "-c", "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mywebapp=4.2.6-3.el5"])
    assert install.returncode == 0, install.stderr

    def version(host: str) -> str:
        return fresh_lab.exec_in(host, ["dpkg-query", "-W", "-f=${Version}", "mywebapp"]).stdout

    assert version("web3") == "4.2.6-3.el5"
    assert version("web2") == "4.2.5-1.el5"
    on_machine = subprocess.run(["dpkg-query", "-W", "mywebapp"], capture_output=True, text=True)
    assert on_machine.returncode != 0
    assert not Path("/usr/lib/mywebapp").exists()


def test_hosts_are_separate_machines(fresh_lab):
    names = {fresh_lab.exec_in(h, ["hostname"]).stdout.strip() for h in ("web1", "web2", "lb1")}
    assert names == {"web1", "web2", "lb1"}
    # the root filesystem outside the overlays is read-only for a host
    denied = fresh_lab.exec_in("web1", ["touch", "/lab-write-test"])
    assert denied.returncode != 0 and "Read-only" in denied.stderr


def test_haproxy_routes_to_the_web_hosts_and_stops_at_maint(fresh_lab):
    assert eventually(lambda: set(op_states(fresh_lab).values()) == {2})
    assert set(served_hosts()) == {f"web{i}" for i in range(1, 10)}
    assert haproxy(fresh_lab, "set server app/web4 state maint").strip() == ""
    served = served_hosts()
    assert "web4" not in served and len(served) == 8
    haproxy(fresh_lab, "set server app/web4 state ready")
    assert eventually(lambda: "web4" in served_hosts())


def test_reset_changed_boots_again_exactly_the_hosts_changed_in_any_way(fresh_lab):
    """The fixture's reset (fresh_lab): a file in a tmpfs, an HAProxy runtime command, a firewall
    rule, a killed process, an agent request over SSH; every other host is left running as is."""
    assert fresh_lab.changed_hosts() == []
    pids = {h.name: fresh_lab._running_pid(h) for h in fresh_lab.hosts}
    fresh_lab.exec_in("web3", ["touch", "/tmp/left-behind"])
    haproxy(fresh_lab, "set server app/web4 state drain")
    fresh_lab.exec_in("web5", ["iptables", "-I", "INPUT", "-s", "10.231.0.2", "-j", "DROP"])
    fresh_lab.exec_in("web6", ["pkill", "-f", "[n]ginx-lab/server.py"])
    from orchestrator_lib.controller.session import Session
    with Session(Path(__file__).resolve().parents[2] / "environments" / "local.yaml") as session:
        assert session.call([session.inventory.host("web7")], "package", "status", {"name": "mywebapp"}).ok
    assert eventually(lambda: fresh_lab.changed_hosts() == ["lb1", "web3", "web5", "web6", "web7"]), \
        fresh_lab.changed_hosts()
    assert fresh_lab.reset_changed() == ["lb1", "web3", "web5", "web6", "web7"]
    assert fresh_lab.changed_hosts() == []
    after = {h.name: fresh_lab._running_pid(h) for h in fresh_lab.hosts}
    assert {n for n in pids if after[n] != pids[n]} == {"lb1", "web3", "web5", "web6", "web7"}
    assert fresh_lab.exec_in("web3", ["test", "-e", "/tmp/left-behind"]).returncode != 0
    assert "DROP" not in fresh_lab.exec_in("web5", ["iptables", "-S", "INPUT"]).stdout
    assert set(op_states(fresh_lab).values()) == {2}


def test_a_firewall_rule_on_one_host_makes_haproxy_mark_it_down(fresh_lab):
    assert eventually(lambda: op_states(fresh_lab)["web5"] == 2)
    block = fresh_lab.exec_in("web5", ["iptables", "-I", "INPUT", "-s", "10.231.0.2", "-j", "DROP"])
    assert block.returncode == 0, block.stderr
    assert eventually(lambda: op_states(fresh_lab)["web5"] == 0)
    # the controller, whose address differs, still reaches the host
    assert json.loads(http_get("http://10.231.0.15:8080/health"))["host"] == "web5"
    # and the machine's own ruleset is untouched
    machine = subprocess.run(["iptables", "-S", "INPUT"], capture_output=True, text=True).stdout
    assert "10.231.0.2" not in machine
    fresh_lab.exec_in("web5", ["iptables", "-D", "INPUT", "-s", "10.231.0.2", "-j", "DROP"])
    assert eventually(lambda: op_states(fresh_lab)["web5"] == 2)


def test_a_stopped_host_refuses_connections_and_starts_again(fresh_lab):
    fresh_lab.stop_host("web6")
    with pytest.raises(OSError):
        socket.create_connection(("10.231.0.16", 22), timeout=1).close()
    assert [r.running for r in fresh_lab.status() if r.name == "web6"] == [False]
    fresh_lab.start_host("web6")
    socket.create_connection(("10.231.0.16", 22), timeout=1).close()


def test_start_returns_once_the_host_answers_while_another_is_out_of_the_load_balancer(fresh_lab):
    """After a failed deploy a host stays blocked on purpose: `start` of another host used to wait
    60 s for HAProxy to see every web host UP, then fail."""
    fresh_lab.exec_in("web2", ["iptables", "-I", "INPUT", "-s", "10.231.0.2", "-j", "DROP"])
    assert eventually(lambda: op_states(fresh_lab)["web2"] == 0)
    fresh_lab.stop_host("web6")
    started = time.monotonic()
    fresh_lab.start_host("web6")
    assert time.monotonic() - started < 10
    socket.create_connection(("10.231.0.16", 22), timeout=1).close()


def served_host_key(address: str) -> paramiko.PKey:
    transport = paramiko.Transport((address, 22))
    try:
        transport.start_client(timeout=5)
        return transport.get_remote_server_key()
    finally:
        transport.close()


def known_key(lab: Lab, name: str) -> paramiko.PKey:
    keys = paramiko.HostKeys(str(lab.known_hosts))
    return keys.lookup(name)["ssh-ed25519"]


def test_rekey_gives_a_host_a_new_key_that_known_hosts_does_not_match(fresh_lab):
    assert served_host_key("10.231.0.17") == known_key(fresh_lab, "web7")
    fresh_lab.rekey("web7")
    assert served_host_key("10.231.0.17") != known_key(fresh_lab, "web7")
    fresh_lab.rekey("web7", update_known_hosts=True)
    assert served_host_key("10.231.0.17") == known_key(fresh_lab, "web7")


SMALL_ESTATE = """
name: tiny
known_hosts: state/known_hosts
defaults: {{key: state/id_ed25519}}
lab: {{bridge: labt0, subnet: 10.231.9.0/24, gateway: 10.231.9.1}}
hosts:
  edge1: {{address: 10.231.9.2, lab: {{role: lb}}}}
  app1: {{address: 10.231.9.10, facts: {{tier: x}}, lab: {{role: web}}}}
  app2: {{address: 10.231.9.11, lab: {{role: web}}}}
  box: {{address: 10.231.9.20}}
"""


def lab_traces(bridge: str, state_dir: Path) -> list[str]:
    """Everything of a lab that could outlive it: named after its bridge, or run from its state."""
    traces = [ns for ns in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
              if ns.startswith(bridge)]
    traces += [link for link in (p.name for p in Path("/sys/class/net").iterdir()) if link.startswith(bridge)]
    traces += [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if bridge in line]
    ps = subprocess.run(["ps", "-eo", "stat,args"], capture_output=True, text=True).stdout.splitlines()
    traces += [line for line in ps if str(state_dir) in line and not line.startswith("Z")]
    return traces


def test_any_estate_comes_up_and_down_leaves_nothing_behind(tmp_path, lab):
    env = tmp_path / "tiny.yaml"
    env.write_text(SMALL_ESTATE.format())
    tiny = Lab(load_inventory(env))
    try:
        tiny.up(progress=lambda _m: None)
        assert [r.healthy for r in tiny.status()] == [True] * 4
        assert http_get("http://10.231.9.10:8080/").startswith("mywebapp 4.2.5-1.el5 on app1")
        assert eventually(lambda: http_get("http://10.231.9.2/").split()[-1] in {"app1", "app2"})
        assert lab_traces("labt0", tiny.state_dir)
    finally:
        tiny.down(progress=lambda _m: None)
    assert lab_traces("labt0", tiny.state_dir) == []
    pids = [p.read_text() for p in (tmp_path / "state").rglob("pid")]
    assert pids == []


def test_reset_clears_a_firewall_rule_left_by_an_interrupted_deploy(fresh_lab):
    block = fresh_lab.exec_in("web8", ["iptables", "-I", "INPUT", "-s", "10.231.0.2", "-j", "DROP"])
    assert block.returncode == 0, block.stderr
    fresh_lab.reset(["web8"])
    rules = fresh_lab.exec_in("web8", ["iptables", "-S", "INPUT"]).stdout
    assert "10.231.0.2" not in rules
    assert eventually(lambda: op_states(fresh_lab)["web8"] == 2)


def test_hosts_restrict_the_auditor_key_to_the_gate_and_keep_the_policy_roots(fresh_lab):
    from orchestrator_lib.lab.estate import GATE
    keys = fresh_lab.exec_in("web1", ["cat", "/home/deploy/.ssh/authorized_keys"]).stdout.splitlines()
    auditor = Path(f"{fresh_lab.auditor_key}.pub").read_text().split()[1]
    deployer = Path(f"{fresh_lab.client_key}.pub").read_text().split()[1]
    [auditor_line] = [line for line in keys if auditor in line]
    assert auditor_line.startswith(f'restrict,command="{GATE}" ssh-ed25519 ')
    assert [line.split()[1] for line in keys if deployer in line] == [deployer]
    modes = fresh_lab.exec_in("web1", ["stat", "-c", "%U %a %n", GATE, "/etc/orchestrator/policy.json"]).stdout
    assert modes.splitlines() == [f"root 755 {GATE}", "root 644 /etc/orchestrator/policy.json"]
    policy = json.loads(fresh_lab.exec_in("web1", ["cat", "/etc/orchestrator/policy.json"]).stdout)
    assert all("health#*" not in rule["allow"] for rule in policy["rules"])
