"""Session behaviour that needs no lab: discovery works offline, and a lab that is down is never
sent a packet (its addresses exist only on its bridge)."""
from __future__ import annotations

import json
import signal
import threading

import pytest

from orchestrator_lib.controller.discovery import Filter
from orchestrator_lib.controller.errors import FilterError, OrchestratorError
from orchestrator_lib.controller.orchestration import HostResult, RunOptions, Status
from orchestrator_lib.controller import session as session_module
from orchestrator_lib.controller.session import Interrupted, Session
from orchestrator_lib.lab import network, refuse_if_down

ENV = """
name: offline
known_hosts: state/known_hosts
defaults: {key: state/id_ed25519}
lab: {bridge: labnone0, subnet: 10.231.7.0/24}
hosts:
  web1: {address: 10.231.7.11, facts: {hagroup: a}, classes: [roles::web]}
  web2: {address: 10.231.7.12, facts: {hagroup: b}, classes: [roles::web]}
"""


@pytest.fixture
def offline(tmp_path):
    (tmp_path / "environments").mkdir()
    env = tmp_path / "environments" / "offline.yaml"
    env.write_text(ENV)
    with Session(env, preflight=refuse_if_down) as session:
        yield session


def test_discovery_needs_no_connection(offline):
    assert [h.name for h in offline.select(Filter.parse(facts=["hagroup=b"]))] == ["web2"]


def test_an_unknown_fact_names_the_known_ones(offline):
    with pytest.raises(FilterError, match=r"unknown fact hagrup .*known facts: hagroup"):
        offline.select(Filter.parse(facts=["hagrup=a"]))


def test_a_host_name_no_host_has_is_an_error_with_a_suggestion_not_a_smaller_set(offline):
    with pytest.raises(FilterError) as caught:
        offline.select(Filter.parse(identities=["web1", "wbe2"]))
    assert str(caught.value) == ("unknown host 'wbe2' (did you mean 'web2'?) in filter -I web1 -I wbe2: "
                                 "no host of offline.yaml is called that")
    assert [h.name for h in offline.select(Filter.parse(identities=["web1", "/web[3-9]/"]))] == ["web1"]


def test_a_bare_word_naming_no_host_and_no_class_is_an_error_not_a_larger_set(offline):
    with pytest.raises(FilterError) as caught:
        offline.select(Filter.parse(compound="roles::web and not wbe2"))
    assert str(caught.value) == ("unknown name 'wbe2' (did you mean 'web2'?) in filter -S 'roles::web and not wbe2': "
                                 "neither a host nor a class of offline.yaml")
    with pytest.raises(FilterError, match="unknown name 'roles::wbe' \\(did you mean 'roles::web'\\?\\)"):
        offline.select(Filter.parse(compound="roles::wbe"))
    assert [h.name for h in offline.select(Filter.parse(compound="roles::web and not web2"))] == ["web1"]


def test_a_lab_that_is_down_is_refused_before_any_connection(offline):
    hosts = offline.select(Filter.parse(classes=["roles::web"]))
    for attempt in (lambda: offline.call(hosts, "rpcutil", "ping"), lambda: offline.shell(hosts, "true")):
        with pytest.raises(OrchestratorError, match="is not up .*labnone0"):
            attempt()
    assert offline.pool.connects == 0


def test_a_lab_without_a_bridge_key_is_guarded_on_the_labs_default_bridge(tmp_path, monkeypatch):
    """The default made absent, so the test never depends on (or sends to) a running lab."""
    monkeypatch.setattr(network, "DEFAULT_BRIDGE", "labnone9")
    env = tmp_path / "nobridge.yaml"
    env.write_text("lab: {subnet: 10.231.9.0/24}\nhosts:\n  web1: {address: 127.0.0.1, port: 1}\n")
    with Session(env, audit_path=None, preflight=refuse_if_down) as session:
        with pytest.raises(OrchestratorError, match="is not up .*labnone9"):
            session.call(session.select(Filter.parse(identities="web1")), "rpcutil", "ping")
        assert session.pool.connects == 0


def test_the_central_audit_log_defaults_to_reports_beside_environments(offline, tmp_path):
    assert offline.audit.path == tmp_path / "reports" / "audit.jsonl"


def test_ctrl_c_during_a_call_is_audited_then_raised_with_what_finished(tmp_path, monkeypatch):
    """web1 answers; web2 is running when SIGINT reaches the main thread; web3's batch never starts."""
    env = tmp_path / "environments" / "nolab.yaml"
    env.parent.mkdir()
    env.write_text("hosts:\n" + "".join(f"  web{i}: {{address: 127.0.0.1, port: 1}}\n" for i in (1, 2, 3)))
    web1_reported, release = threading.Event(), threading.Event()

    def fake_call(transport, host, request, timeout) -> HostResult:
        if host.name == "web2":
            web1_reported.wait(5)
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
            release.wait(5)
        return HostResult(host.name, Status.OK, "pong")

    monkeypatch.setattr(session_module.rpc.SSHTransport, "call", fake_call)
    # Python's own Ctrl-C handler, even where the suite was started with SIGINT ignored (`cmd &`)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    with Session(env) as session:
        hosts = list(session.inventory.hosts.values())
        try:
            with pytest.raises(Interrupted) as caught:
                session.call(hosts, "rpcutil", "ping",
                             on_result=lambda r: r.host == "web1" and web1_reported.set(), options=RunOptions(batch_size=2))
        finally:
            release.set()
            signal.signal(signal.SIGINT, previous)
    stop = caught.value
    assert isinstance(stop, KeyboardInterrupt) and stop.running == ["web2"]
    assert {n: (str(r.status), r.message) for n, r in stop.result.results.items()} == {
        "web1": ("ok", "pong"), "web2": ("failed", "interrupted while running: outcome unknown"),
        "web3": ("not attempted", "interrupted")}
    lines = [json.loads(line) for line in (tmp_path / "reports" / "audit.jsonl").read_text().splitlines()]
    assert sorted(e["host"] for e in lines if e["status"] == "sent") == ["web1", "web2"]   # web3 never went out
    lines = [e for e in lines if e["status"] != "sent"]
    assert [(e["host"], e["status"]) for e in lines] == [("web1", "ok"), ("web2", "failed"), ("web3", "not attempted")]
    assert len({e["reqid"] for e in lines}) == 1


def test_a_missing_key_file_is_one_error_before_any_host_is_contacted(tmp_path):
    """Loopback addresses and no lab: were the check missing, the call would try to connect."""
    env = tmp_path / "keyless.yaml"
    env.write_text("known_hosts: kh\ndefaults: {key: no_such_key}\n"
                   "hosts:\n  a: {address: 127.0.0.1, port: 9}\n  b: {address: 127.0.0.1, port: 9}\n")
    with Session(env, audit_path=None) as session:
        with pytest.raises(OrchestratorError, match=rf"^{env}: private key {tmp_path}/no_such_key does not exist "
                                                    r"\(the key of a, b\)$"):
            session.call(list(session.inventory.hosts.values()), "rpcutil", "ping")
        assert session.pool.connects == 0


def test_an_unwritable_central_audit_log_stops_the_call_before_any_host_is_contacted(tmp_path, monkeypatch):
    """Issue 12: the log was written after the fan-out, so an unwritable one raised then and the
    results of a request that had run were lost."""
    env = tmp_path / "environments" / "nolab.yaml"
    env.parent.mkdir()
    env.write_text("hosts:\n  web1: {address: 127.0.0.1, port: 1}\n")
    contacted = []
    monkeypatch.setattr(session_module.rpc.SSHTransport, "call",
                        lambda transport, host, *a, **kw: contacted.append(host.name) or HostResult(host.name, Status.OK))
    (tmp_path / "reports").write_text("")  # a file where the log's directory should be
    with Session(env) as session:
        with pytest.raises(OrchestratorError, match="cannot write the central audit log .*nothing was sent"):
            session.call(list(session.inventory.hosts.values()), "rpcutil", "ping")
    assert contacted == []
