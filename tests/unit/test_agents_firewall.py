"""firewall agent: block/unblock are idempotent and touch only our tagged rule."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from test_agents_fakes import FakeSystem, call  # noqa: E402

BAD_RULE = "iptables: Bad rule (does a matching rule exist in that chain?).\n"


def iptables_host(copies: int = 0) -> FakeSystem:
    """iptables whose INPUT chain holds `copies` of our rule."""
    state = {"copies": copies}
    fake = FakeSystem(tools={"iptables", "nft"})
    fake.on(r"^iptables -w 10 -C ", lambda _l: (0, "", "") if state["copies"] else (1, "", BAD_RULE))
    fake.on(r"^iptables -w 10 -I ", lambda _l: (state.update(copies=state["copies"] + 1), (0, "", ""))[1])
    fake.on(r"^iptables -w 10 -D ", lambda _l: (state.update(copies=max(state["copies"] - 1, 0)), (0, "", ""))[1])
    fake.state = state
    return fake


def test_block_inserts_tagged_drop_rule_once():
    fake = iptables_host()
    r = call(fake, "firewall", "block", source="10.231.0.2")
    assert (r.status, r.before, r.after) == ("changed", "unblocked", "blocked")
    assert fake.writes() == ["iptables -w 10 -I INPUT -s 10.231.0.2 -m comment --comment deployer-block-10.231.0.2 -j DROP"]
    r = call(fake, "firewall", "block", source="10.231.0.2")
    assert (r.status, r.changed, r.message) == ("ok", False, "10.231.0.2 already blocked")
    assert len(fake.writes()) == 1 and fake.state["copies"] == 1


def test_unblock_removes_every_copy_and_is_idempotent():
    fake = iptables_host(copies=2)
    r = call(fake, "firewall", "unblock", source="10.231.0.2", comment="deployer-block-lb")
    assert r.status == "changed" and fake.state["copies"] == 0
    assert all("--comment deployer-block-lb" in w for w in fake.writes())
    r = call(fake, "firewall", "unblock", source="10.231.0.2", comment="deployer-block-lb")
    assert (r.status, r.changed) == ("ok", False)


def test_status_reports_blocked():
    assert call(iptables_host(1), "firewall", "status", source="10.231.0.2").data["blocked"] is True
    assert call(iptables_host(0), "firewall", "status", source="10.231.0.2").after == "unblocked"


def test_check_errors_are_not_taken_for_absent():
    fake = FakeSystem(tools={"iptables"})
    fake.on(r"^iptables -w 10 -C", (4, "", "iptables v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied\n"))
    r = call(fake, "firewall", "block", source="10.231.0.2")
    assert r.status == "failed" and "Permission denied" in r.message and fake.writes() == []


def test_ipv6_uses_ip6tables_and_bad_source_is_rejected():
    fake = FakeSystem(tools={"iptables"}).on(r"^ip6tables -w 10 -C", (0, "", ""))
    assert call(fake, "firewall", "block", source="fd00::2").status == "ok"
    r = call(FakeSystem(tools={"iptables"}), "firewall", "block", source="10.0.0.2; reboot")
    assert r.status == "failed" and "source must be an IP address" in r.message


NFT_LISTING = """table inet deployer {
	chain input { # handle 1
		type filter hook input priority -10; policy accept;
		ip saddr 10.231.0.2 drop comment "deployer-block-10.231.0.2" # handle 4
		ip saddr 10.231.0.3 drop comment "deployer-block-10.231.0.3" # handle 5
		ip saddr 10.231.0.2 drop comment "someone-else" # handle 6
	}
}
"""


def test_nft_parse_handles():
    from orchestrator_lib.agents.firewall import Nft
    assert Nft.parse_handles(NFT_LISTING, "10.231.0.2", "deployer-block-10.231.0.2") == ["4"]
    assert Nft.parse_handles(NFT_LISTING, "10.231.0.9", "deployer-block-10.231.0.9") == []


def test_nft_block_creates_own_table_and_unblock_deletes_by_handle():
    state = {"listed": "table inet deployer {\n\tchain input { # handle 1\n\t}\n}\n", "missing": True}
    fake = FakeSystem(tools={"nft"})
    fake.on(r"^nft -a list chain", lambda _l: (1, "", "Error: No such file or directory\n") if state["missing"] else (0, state["listed"], ""))
    fake.on(r"^nft add (table|chain)", lambda _l: (state.update(missing=False), (0, "", ""))[1])
    fake.on(r"^nft insert rule", lambda _l: (state.update(listed=NFT_LISTING), (0, "", ""))[1])
    fake.on(r"^nft delete rule inet deployer input handle 4$", lambda _l: (state.update(listed=""), (0, "", ""))[1])
    r = call(fake, "firewall", "block", source="10.231.0.2")
    assert (r.status, r.data["backend"]) == ("changed", "nft")
    assert "nft insert rule inet deployer input ip saddr 10.231.0.2 drop comment '\"deployer-block-10.231.0.2\"'" in fake.calls
    assert call(fake, "firewall", "block", source="10.231.0.2").status == "ok"
    assert call(fake, "firewall", "unblock", source="10.231.0.2").status == "changed"
