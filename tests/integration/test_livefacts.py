"""Live facts on the lab: the lab writes each host's facts and classes onto the host, so an estate
reading them from the hosts (`facts: live|cached`) discovers the same hosts as the inventory; a
fact changed on a host is seen live at once and through the cache after its TTL; a malformed facts
file names the host, the file and the line."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from orchestrator_lib.controller.discovery import Filter
from orchestrator_lib.controller.errors import DiscoveryError
from orchestrator_lib.controller.session import Session
from tests.conftest import ROOT

FILTERS = [Filter.parse(classes="roles::web", facts="country=de"),
           Filter.parse(compound="cluster=alfa and not hagroup=c"),
           Filter.parse(classes="roles::lb"), Filter.parse(facts="country=nl"),
           Filter.parse(classes="roles::notify", facts="role=notify")]


def estate(tmp_path: Path, source: str, ttl: float | None = None) -> Path:
    """environments/local.yaml reading its facts from the hosts."""
    text = (ROOT / "environments" / "local.yaml").read_text().replace("../.lab/", f"{ROOT}/.lab/")
    path = tmp_path / f"{source}.yaml"
    path.write_text(text + f"facts: {source}\n" + (f"facts_ttl: {ttl}\n" if ttl else ""))
    return path


def names(session: Session, flt: Filter) -> list[str]:
    return [h.name for h in session.select(flt)]


def test_live_discovery_selects_the_same_hosts_as_the_inventory(lab, tmp_path):
    warnings: list[str] = []
    with Session(ROOT / "environments" / "local.yaml") as by_file, \
            Session(estate(tmp_path, "live"), warn=warnings.append) as live:
        assert [names(live, f) for f in FILTERS] == [names(by_file, f) for f in FILTERS]
        assert names(live, Filter.parse(facts="os_family=Debian", classes="roles::web")) == [f"web{i}" for i in range(1, 10)]
        web1 = live.facts_report["web1"]
        assert web1.sources["cluster"] == "inventory + host /etc/orchestrator/facts.d/lab.yaml"
        assert web1.sources["os_family"] == "host (built-in)" and web1.host.facts["ipaddress"] == "10.231.0.11"
        assert web1.classes_source == "inventory + host /etc/orchestrator/classes.txt"
    assert warnings == []


def test_a_fact_changed_on_a_host_is_seen_live_at_once_and_cached_after_the_ttl(fresh_lab, tmp_path):
    de = Filter.parse(facts="country=de", classes="roles::web")
    cached_env, cache = estate(tmp_path, "cached", ttl=3), tmp_path / "facts-cache.json"
    with Session(cached_env, facts_cache=cache) as before:
        assert names(before, de) == ["web1", "web2", "web3", "web4"]
    fresh_lab.exec_in("web5", ["sh", "-c", "echo 'country: de' > /etc/orchestrator/facts.d/zz-moved.yaml"])
    changed = time.monotonic()
    warnings: list[str] = []
    with Session(estate(tmp_path, "live"), warn=warnings.append) as live:
        assert names(live, de) == ["web1", "web2", "web3", "web4", "web5"]
        assert live.facts_report["web5"].sources["country"] == "host /etc/orchestrator/facts.d/zz-moved.yaml"
    assert warnings == ["web5: fact country: inventory says 'nl', the host 'de' "
                        "(host /etc/orchestrator/facts.d/zz-moved.yaml)"]
    with Session(cached_env, facts_cache=cache, warn=lambda _line: None) as within_ttl:
        assert names(within_ttl, de) == ["web1", "web2", "web3", "web4"], "the cache still holds web5's old facts"
    time.sleep(max(0.0, 3.1 - (time.monotonic() - changed)))
    with Session(cached_env, facts_cache=cache, warn=lambda _line: None) as after_ttl:
        assert names(after_ttl, de) == ["web1", "web2", "web3", "web4", "web5"]


def test_a_malformed_facts_file_names_the_host_file_and_line(fresh_lab, tmp_path):
    fresh_lab.exec_in("web2", ["sh", "-c", "printf 'rack: r1\\nroles:\\n  - web\\n' > /etc/orchestrator/facts.d/bad.yaml"])
    with Session(estate(tmp_path, "live")) as live, pytest.raises(DiscoveryError) as err:
        live.select(FILTERS[0])
    assert "1 of 12 hosts" in str(err.value)
    assert "web2: facts: /etc/orchestrator/facts.d/bad.yaml:2: roles: no value" in str(err.value)
