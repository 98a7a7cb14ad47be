"""Session behaviour that needs no lab: discovery works offline, and a lab that is down is never
sent a packet (its addresses exist only on its bridge)."""
from __future__ import annotations

import pytest

from orchestrator_lib.discovery import Filter
from orchestrator_lib.errors import FilterError, OrchestratorError
from orchestrator_lib.session import Session

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
    with Session(env) as session:
        yield session


def test_discovery_needs_no_connection(offline):
    assert [h.name for h in offline.select(Filter.parse(facts=["hagroup=b"]))] == ["web2"]


def test_an_unknown_fact_names_the_known_ones(offline):
    with pytest.raises(FilterError, match=r"unknown fact hagrup .*known facts: hagroup"):
        offline.select(Filter.parse(facts=["hagrup=a"]))


def test_a_lab_that_is_down_is_refused_before_any_connection(offline):
    hosts = offline.select(Filter.parse(classes=["roles::web"]))
    for attempt in (lambda: offline.call(hosts, "rpcutil", "ping"), lambda: offline.shell(hosts, "true")):
        with pytest.raises(OrchestratorError, match="is not up .*labnone0"):
            attempt()
    assert offline.pool.connects == 0


def test_the_central_audit_log_defaults_to_reports_beside_environments(offline, tmp_path):
    assert offline.audit.path == tmp_path / "reports" / "audit.jsonl"
