"""The orchestration core against the lab: discovery, strict host keys, fan-out, batches."""
from __future__ import annotations

import json
import re
import time

import pytest

from orchestrator_lib.controller.discovery import CountContract, Filter
from orchestrator_lib.controller.errors import DiscoveryError, FilterError, HostKeyError
from orchestrator_lib.controller.inventory import Inventory, load_inventory
from orchestrator_lib.controller.orchestration import RunOptions, Status
from orchestrator_lib.controller.session import Session
from orchestrator_lib.controller.transports.ssh import SSHPool
from tests.conftest import ROOT

LOCAL = ROOT / "environments" / "local.yaml"





def names(hosts) -> list[str]:
    return [h.name for h in hosts]


def test_ping_every_host_selected_by_a_fact(session):
    hosts = session.discover(Filter.parse(facts=["cluster=alfa"]), CountContract.exactly(4))
    assert names(hosts) == ["web1", "web2", "web3", "web4"]
    result = session.call(hosts, "rpcutil", "ping")
    assert result.ok and result.tally().startswith("rpcutil#ping: ok on 4 of 4 hosts after 1 try")


def test_a_compound_filter_selects_exactly_the_expected_hosts(session):
    flt = Filter.parse(compound="cluster=alfa and (hagroup=a or hagroup=b) and not web4", classes=["roles::web"])
    assert names(session.select(flt)) == ["web1", "web2"]
    flt = Filter.parse(identities=["/web[5-9]/"], facts=["country!=nl"])
    assert names(session.select(flt)) == ["web8", "web9"]


def test_an_unknown_fact_is_a_one_line_error_not_an_empty_set(session):
    with pytest.raises(FilterError) as err:
        session.select(Filter.parse(facts=["contry=de"]))
    assert "contry" in str(err.value) and "\n" not in str(err.value)


def test_a_mistyped_host_name_fails_live_discovery_before_any_host_is_pinged(session):
    for flt in (Filter.parse(identities=["web1", "wbe2"]), Filter.parse(compound="roles::web and not wbe3")):
        with pytest.raises(FilterError, match=r"'wbe\d' \(did you mean 'web\d'\?\)"):
            session.discover(flt)
    assert session.pool.connects == 0


def test_the_count_contract_fails_naming_what_was_found(session):
    with pytest.raises(DiscoveryError, match="expected exactly 5 hosts, discovered 4"):
        session.discover(Filter.parse(facts=["country=de"], classes=["roles::web"]), CountContract.exactly(5))


def test_a_stopped_host_is_unreachable_while_the_others_succeed(session, fresh_lab):
    fresh_lab.stop_host("web5")
    try:
        hosts = session.select(Filter.parse(facts=["cluster=bravo"]))
        result = session.call(hosts, "rpcutil", "ping")
        assert result.unreachable == ["web5"]
        assert sorted(result.by_status()[Status.OK]) == ["web6", "web7", "web8", "web9"]
        assert "web5" in result.results["web5"].message and "unreachable" in result.results["web5"].message
        with pytest.raises(DiscoveryError, match="web5"):
            session.discover(Filter.parse(facts=["cluster=bravo"]))
    finally:
        fresh_lab.start_host("web5")


def local_with_known_hosts(tmp_path) -> Inventory:
    """The default estate, with its known_hosts at tmp_path/known_hosts instead of the lab's."""
    env = tmp_path / "env.yaml"
    text = LOCAL.read_text().replace("../.lab/local/", str(ROOT / ".lab" / "local") + "/")
    env.write_text(text.replace(f"known_hosts: {ROOT}/.lab/local/known_hosts", f"known_hosts: {tmp_path}/known_hosts"))
    return load_inventory(env)


def test_a_rekeyed_host_is_refused_with_a_host_key_error(session, fresh_lab):
    fresh_lab.rekey("web2")
    try:
        result = session.call(session.select(Filter.parse(identities=["web1", "web2"])), "rpcutil", "ping")
        assert result.results["web1"].status is Status.OK
        assert result.results["web2"].status is Status.UNREACHABLE
        assert "host key changed" in result.results["web2"].message
        assert re.search(r"known_hosts:\d+", result.results["web2"].message), "names the line it expected"
    finally:
        fresh_lab.rekey("web2", update_known_hosts=True)


def test_unknown_host_keys_are_refused_unless_trust_on_first_use_is_asked(fresh_lab, tmp_path):
    inventory = local_with_known_hosts(tmp_path)
    web1 = inventory.host("web1")
    with SSHPool(inventory) as strict:
        with pytest.raises(Exception, match="is not in .*known_hosts"):
            strict.exec(web1, "true")
    with SSHPool(inventory, trust_on_first_use=True) as tofu:
        assert tofu.exec(web1, "echo ok").stdout == "ok\n"
    assert "10.231.0.11" in (tmp_path / "known_hosts").read_text()
    with SSHPool(inventory) as strict_again:  # now known, so strict mode accepts it
        assert strict_again.exec(web1, "true").rc == 0


def test_a_host_key_marked_revoked_is_refused_though_it_is_known(fresh_lab, tmp_path):
    known = (ROOT / ".lab" / "local" / "known_hosts").read_text()
    web1_key = next(line.split()[1:3] for line in known.splitlines() if line.startswith("web1,"))
    (tmp_path / "known_hosts").write_text(known + f"@revoked * {' '.join(web1_key)}\n")
    inventory = local_with_known_hosts(tmp_path)
    with SSHPool(inventory, trust_on_first_use=True) as pool:
        with pytest.raises(HostKeyError, match="web1: host key SHA256:.* is marked @revoked"):
            pool.exec(inventory.host("web1"), "true")
        assert pool.exec(inventory.host("web2"), "echo ok").stdout == "ok\n"


def test_connections_are_opened_once_per_run_and_warm_calls_are_fast(session):
    web = session.select(Filter.parse(classes=["roles::web"]))
    session.call(web, "rpcutil", "ping")
    assert session.pool.connects == 9
    started = time.monotonic()
    results = [session.call(web, "rpcutil", "ping") for _ in range(3)]
    per_call = (time.monotonic() - started) / 3
    assert all(r.ok for r in results)
    assert session.pool.connects == 9, "every step must reuse the open connections"
    assert per_call < 1.0, f"a warm ping of 9 hosts took {per_call:.2f} s"


def host_audit(lab, host: str) -> list[dict]:
    text = lab.exec_in(host, ["cat", "/var/log/orchestrator/audit.jsonl"]).stdout
    lines = [json.loads(line) for line in text.splitlines()]
    return [line for line in lines if line.get("event") != "received"]  # one result line per request


def test_batches_run_in_order_and_stop_after_a_failed_batch(session, fresh_lab):
    hosts = session.select(Filter.parse(identities=["web1", "web2", "web3", "web4", "web5", "web6"]))
    fresh_lab.stop_host("web4")
    try:
        result = session.call(hosts, "rpcutil", "ping", options=RunOptions(batch_size=2))
    finally:
        fresh_lab.start_host("web4")
    assert result.by_status()[Status.OK] == ["web1", "web2", "web3"]
    assert result.unreachable == ["web4"]
    assert result.not_attempted == ["web5", "web6"]
    # the hosts' own audit trails show batch 1 finished before batch 2 began, and nothing on web5
    times = {h: host_audit(fresh_lab, h)[-1]["time"] for h in ("web1", "web2", "web3")}
    assert max(times["web1"], times["web2"]) < times["web3"]
    assert [e for e in host_audit(fresh_lab, "web5") if e.get("reqid") == host_audit(fresh_lab, "web1")[-1]["reqid"]] == []


def test_a_failure_percentage_lets_later_batches_run(session, fresh_lab):
    from orchestrator_lib.controller.orchestration import FailurePolicy

    hosts = session.select(Filter.parse(classes=["roles::web"]))
    fresh_lab.stop_host("web1")
    try:
        result = session.call(hosts, "rpcutil", "ping", options=RunOptions(batch_size=3, policy=FailurePolicy(max_fail_percentage=20)))
    finally:
        fresh_lab.start_host("web1")
    assert result.unreachable == ["web1"] and result.not_attempted == []
    assert len(result.by_status()[Status.OK]) == 8


def test_the_central_audit_log_names_caller_agent_action_and_redacts_secrets(fresh_lab, tmp_path):
    audit = tmp_path / "audit.jsonl"
    with Session(LOCAL, audit_path=audit, caller="alice@ci") as s:
        s.call([s.host("web1")], "health", "http", {"url": "http://127.0.0.1:8080/health?token=hunter2"})
    line = json.loads(audit.read_text().splitlines()[-1])
    assert (line["caller"], line["agent"], line["action"], line["host"]) == ("alice@ci", "health", "http", "web1")
    assert "hunter2" not in audit.read_text()
    on_host = host_audit(fresh_lab, "web1")[-1]
    assert on_host["reqid"] == line["reqid"] and "hunter2" not in json.dumps(on_host)


def test_a_plain_command_fans_out_with_a_result_per_host(session):
    web = session.select(Filter.parse(facts=["hagroup=a"]))
    result = session.shell(web, "hostname")
    assert {name: r.stdout.strip() for name, r in result.results.items()} == {"web1": "web1", "web4": "web4", "web7": "web7"}
    failed = session.shell(web, "test $(hostname) != web4")
    assert failed.failed == ["web4"] and "exit 1" in failed.results["web4"].message
