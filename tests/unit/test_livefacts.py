"""Live facts: the host side's file formats (facts.d JSON and the documented YAML subset, the
classes file), the controller's merge rule and the TTL cache. The lab tests run them on hosts."""
from __future__ import annotations

import pytest

from orchestrator_lib.controller.discovery.livefacts import FactsCache, merge
from orchestrator_lib.controller.errors import InventoryError
from orchestrator_lib.controller.inventory import Host, load_inventory
from orchestrator_lib.host import facts


def test_yaml_subset_reads_flat_pairs_comments_and_quotes():
    text = "---\n# a comment\ncountry: de\nrack: 'r 12'  \nnote: \"a # b\"\nsize: 10 # trailing\nempty_ok: ''\n"
    assert facts.parse_yaml("f.yaml", text) == {"country": "de", "rack": "r 12", "note": "a # b", "size": "10",
                                                "empty_ok": ""}


@pytest.mark.parametrize("text, line, why", [
    ("country: de\nroles:\n  - web\n", 2, "no value"),
    ("country: de\n  nested: x\n", 2, "indented line"),
    ("a: b\njust words\n", 2, "expected 'name: value'"),
    ("a: [1, 2]\n", 1, "unsupported YAML value"),
    ("a: 'open\n", 1, "unterminated"),
    ("a: 1\na: 2\n", 2, "duplicate fact 'a', first defined at line 1"),
    ("bad name: 1\n", 1, "invalid fact name"),
])
def test_yaml_outside_the_subset_names_file_and_line(text, line, why):
    with pytest.raises(facts.FactsError) as err:
        facts.parse_yaml("/etc/orchestrator/facts.d/x.yaml", text)
    assert str(err.value).startswith(f"/etc/orchestrator/facts.d/x.yaml:{line}: ") and why in str(err.value)


def test_json_facts_scalars_only_with_the_line():
    assert facts.parse_json("f.json", '{"cpus": 4, "ssd": true, "zone": "a"}') == {"cpus": "4", "ssd": "true", "zone": "a"}
    with pytest.raises(facts.FactsError, match=r"^f.json:3: invalid JSON"):
        facts.parse_json("f.json", '{\n "a": 1,\n }')
    with pytest.raises(facts.FactsError, match=r"^f.json:2: tags: expected a string, number or boolean, got list"):
        facts.parse_json("f.json", '{"a": 1,\n "tags": [1]}')


def test_custom_facts_directory_later_file_wins_and_sources_name_the_file(tmp_path):
    (tmp_path / "10-base.yaml").write_text("zone: a\nrack: r1\n")
    (tmp_path / "20-site.json").write_text('{"zone": "b"}')
    (tmp_path / "README").write_text("ignored: yes\n")
    values, sources = facts.custom(str(tmp_path))
    assert values == {"zone": "b", "rack": "r1"}
    assert sources == {"zone": str(tmp_path / "20-site.json"), "rack": str(tmp_path / "10-base.yaml")}
    assert facts.custom(str(tmp_path / "missing")) == ({}, {})


def test_classes_file(tmp_path):
    path = tmp_path / "classes.txt"
    assert facts.classes(str(path)) is None
    path.write_text("roles::web\n\n# c\nsettings\nroles::web\n")
    assert facts.classes(str(path)) == ["roles::web", "settings"]
    path.write_text("roles::web\ntwo words\n")
    with pytest.raises(facts.FactsError, match=r"classes.txt:2: expected one class name per line"):
        facts.classes(str(path))


def test_builtin_facts_from_proc_and_os_release():
    files = {"/etc/os-release": 'ID=rocky\nID_LIKE="rhel centos fedora"\nNAME="Rocky Linux"\nVERSION_ID="8.9"\n',
             "/proc/meminfo": "MemTotal:        2048000 kB\n",
             "/proc/net/fib_trie": "Main:\n  +-- 10.231.0.0/24 2 0 2\n     |-- 10.231.0.31\n        /32 host LOCAL\n"
                                   "     |-- 127.0.0.1\n        /32 host LOCAL\n",
             "/proc/net/if_inet6": "00000000000000000000000000000001 01 80 10 80       lo\n"}
    found = facts.builtin(files.get)
    assert (found["os_family"], found["distribution"], found["release"]) == ("RedHat", "Rocky Linux", "8.9")
    assert found["ipaddress"] == "10.231.0.31" and found["memorysize_mb"] == "2000"
    assert found["kernel"] and found["architecture"] and found["fqdn"] and int(found["processorcount"]) >= 1


HOST = Host("web3", "10.0.0.3", facts={"cluster": "alfa", "country": "de", "owner": "ops"}, classes=("roles::web",))


def test_merge_host_wins_inventory_only_facts_stay_and_contradictions_are_named():
    reply = {"facts": {"cluster": "bravo", "country": "de", "os": "debian"},
             "sources": {"cluster": "/etc/orchestrator/facts.d/lab.yaml", "country": "/etc/orchestrator/facts.d/lab.yaml",
                         "os": "builtin"},
             "classes": ["roles::web", "roles::db"], "classes_file": "/etc/orchestrator/classes.txt"}
    seen = merge(HOST, reply)
    assert dict(seen.host.facts) == {"cluster": "bravo", "country": "de", "owner": "ops", "os": "debian"}
    assert seen.sources == {"cluster": "host /etc/orchestrator/facts.d/lab.yaml",
                            "country": "inventory + host /etc/orchestrator/facts.d/lab.yaml",
                            "owner": "inventory", "os": "host (built-in)"}
    assert seen.host.classes == ("roles::web", "roles::db")
    assert seen.contradictions == [
        "fact cluster: inventory says 'alfa', the host 'bravo' (host /etc/orchestrator/facts.d/lab.yaml)",
        "classes: roles::db in host /etc/orchestrator/classes.txt, not in the inventory"]


def test_merge_without_a_classes_file_keeps_the_inventorys_classes():
    seen = merge(HOST, {"facts": {}, "classes": None})
    assert seen.host.classes == ("roles::web",) and seen.classes_source == "inventory" and not seen.contradictions


def test_cache_entries_expire_after_the_ttl(tmp_path):
    cache = FactsCache(tmp_path / "reports" / "facts-x.json", ttl=10)
    cache.store({"web1": {"facts": {"a": "1"}}}, now=1000.0)
    again = FactsCache(tmp_path / "reports" / "facts-x.json", ttl=10)
    assert again.fresh("web1", now=1009.0) == {"facts": {"a": "1"}}
    assert again.fresh("web1", now=1010.0) is None and again.fresh("web2", now=1000.0) is None
    (tmp_path / "reports" / "facts-x.json").write_text("not json")
    assert FactsCache(tmp_path / "reports" / "facts-x.json", ttl=10).fresh("web1", now=1000.0) is None


def test_inventory_facts_setting(tmp_path):
    env = tmp_path / "e.yaml"
    env.write_text("facts: cached\nfacts_ttl: 30\nhosts:\n  web1: {address: 10.0.0.1}\n")
    inv = load_inventory(env)
    assert (inv.facts_source, inv.facts_ttl) == ("cached", 30.0)
    env.write_text("facts: live\nhosts:\n  web1: {address: 10.0.0.1}\n")
    assert load_inventory(env).facts_source == "live"
    env.write_text("facts: facter\nhosts:\n  web1: {address: 10.0.0.1}\n")
    with pytest.raises(InventoryError, match=r"e.yaml:1: facts: expected one of inventory, live, cached, got 'facter'"):
        load_inventory(env)
    env.write_text("facts: cached\nfacts_ttl: -1\nhosts:\n  web1: {address: 10.0.0.1}\n")
    with pytest.raises(InventoryError, match=r"e.yaml:2: facts_ttl: expected a positive number of seconds"):
        load_inventory(env)
