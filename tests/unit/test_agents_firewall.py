"""firewall agent: block/unblock are idempotent and touch only our tagged rules; a block is a
REJECT pair (TCP reset on top, ICMP for the rest); an older agent's DROP still counts and goes."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from test_agents_fakes import FakeSystem, call  # noqa: E402

BAD_RULE = "iptables: Bad rule (does a matching rule exist in that chain?).\n"
RULE = "iptables -w 10 {op} INPUT -s 10.231.0.2 -m comment --comment deployer-block-10.231.0.2 "
REJECT = "-j REJECT"
TCP_RESET = "-p tcp -j REJECT --reject-with tcp-reset"
DROP = "-j DROP"


def kind_of(line: str) -> str:
    return "tcp-reset" if "tcp-reset" in line else "reject" if line.endswith("-j REJECT") else "drop"


def iptables_host(**copies: int) -> FakeSystem:
    """iptables whose INPUT chain holds copies of our rules, by kind (reject, tcp_reset, drop);
    `fake.chain` lists them top first."""
    chain = [k.replace("_", "-") for k, n in copies.items() for _ in range(n)]
    fake = FakeSystem(tools={"iptables", "nft"})
    fake.on(r"^iptables -w 10 -C ", lambda l: (0, "", "") if kind_of(l) in chain else (1, "", BAD_RULE))
    fake.on(r"^iptables -w 10 -I ", lambda l: (chain.insert(0, kind_of(l)), (0, "", ""))[1])
    fake.on(r"^iptables -w 10 -D ", lambda l: (chain.remove(kind_of(l)) if kind_of(l) in chain else None, (0, "", ""))[1])
    fake.chain = chain
    return fake


def test_block_inserts_the_reject_pair_tcp_reset_on_top_once():
    fake = iptables_host()
    r = call(fake, "firewall", "block", source="10.231.0.2")
    assert (r.status, r.before, r.after, r.data["blocked"]) == ("changed", "unblocked", "blocked", True)
    assert fake.writes() == [RULE.format(op="-I") + REJECT, RULE.format(op="-I") + TCP_RESET]
    assert fake.chain == ["tcp-reset", "reject"]
    r = call(fake, "firewall", "block", source="10.231.0.2")
    assert (r.status, r.changed, r.message) == ("ok", False, "10.231.0.2 already blocked")
    assert len(fake.writes()) == 2 and fake.chain == ["tcp-reset", "reject"]
    assert not any(w.endswith(DROP) for w in fake.writes()), "block never adds a DROP"


def test_block_replaces_half_a_pair_so_the_reset_stays_on_top():
    fake = iptables_host(tcp_reset=1)
    assert call(fake, "firewall", "status", source="10.231.0.2").after == "partly blocked"
    r = call(fake, "firewall", "block", source="10.231.0.2")
    assert (r.status, r.before, r.after) == ("changed", "partly blocked", "blocked")
    assert fake.writes() == [RULE.format(op="-D") + TCP_RESET, RULE.format(op="-I") + REJECT,
                             RULE.format(op="-I") + TCP_RESET]
    assert fake.chain == ["tcp-reset", "reject"]


def test_unblock_removes_every_copy_and_is_idempotent():
    fake = iptables_host(reject=2, tcp_reset=2)
    r = call(fake, "firewall", "unblock", source="10.231.0.2", comment="deployer-block-lb")
    assert (r.status, r.before, r.after) == ("changed", "blocked", "unblocked") and fake.chain == []
    assert all("--comment deployer-block-lb" in w for w in fake.writes())
    r = call(fake, "firewall", "unblock", source="10.231.0.2", comment="deployer-block-lb")
    assert (r.status, r.changed) == ("ok", False)


def test_status_reports_blocked():
    assert call(iptables_host(reject=1, tcp_reset=1), "firewall", "status", source="10.231.0.2").data["blocked"] is True
    r = call(iptables_host(), "firewall", "status", source="10.231.0.2")
    assert (r.after, r.data["blocked"]) == ("unblocked", False)


def test_a_legacy_drop_rule_counts_as_blocked_and_unblock_removes_it():
    """Hosts blocked by an older agent carry one tagged DROP rule."""
    fake = iptables_host(drop=1)
    r = call(fake, "firewall", "status", source="10.231.0.2")
    assert (r.after, r.data["blocked"]) == ("blocked", True)
    r = call(fake, "firewall", "block", source="10.231.0.2")
    assert (r.status, r.changed, r.message) == ("ok", False, "10.231.0.2 already blocked")
    assert fake.writes() == []
    r = call(fake, "firewall", "unblock", source="10.231.0.2")
    assert (r.status, r.before, r.after) == ("changed", "blocked", "unblocked")
    assert fake.writes() == [RULE.format(op="-D") + DROP] and fake.chain == []
    assert call(fake, "firewall", "status", source="10.231.0.2").data["blocked"] is False


def test_unblock_removes_a_legacy_drop_next_to_the_new_pair():
    fake = iptables_host(reject=1, tcp_reset=1, drop=1)
    assert call(fake, "firewall", "unblock", source="10.231.0.2").status == "changed"
    assert fake.chain == [] and len(fake.writes()) == 3


def test_check_errors_are_not_taken_for_absent():
    fake = FakeSystem(tools={"iptables"})
    fake.on(r"^iptables -w 10 -C", (4, "", "iptables v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied\n"))
    r = call(fake, "firewall", "block", source="10.231.0.2")
    assert r.status == "failed" and "Permission denied" in r.message and fake.writes() == []


def test_a_failed_insert_fails_the_block():
    fake = iptables_host()
    fake.on(r"^iptables -w 10 -I .*tcp-reset", (2, "", "iptables: No chain/target/match by that name.\n"))
    r = call(fake, "firewall", "block", source="10.231.0.2")
    assert r.status == "failed" and "No chain/target/match" in r.message


def test_ipv6_uses_ip6tables_and_bad_source_is_rejected():
    fake = FakeSystem(tools={"iptables"}).on(r"^ip6tables -w 10 -C", (0, "", ""))
    assert call(fake, "firewall", "block", source="fd00::2").status == "ok"
    fake = FakeSystem(tools={"iptables"}).on(r"^ip6tables -w 10 -C", (1, "", BAD_RULE))
    fake.on(r"^ip6tables -w 10 -I", (0, "", ""))
    call(fake, "firewall", "block", source="fd00::2")
    assert [w.split(" -I ")[0] for w in fake.writes()] == ["ip6tables -w 10"] * 2
    r = call(FakeSystem(tools={"iptables"}), "firewall", "block", source="10.0.0.2; reboot")
    assert r.status == "failed" and "source must be an IP address" in r.message


# as `nft -a list chain inet deployer input` (nftables 1.0.6) shows what the agent inserts
NFT_LISTING = """table inet deployer {
	chain input { # handle 1
		type filter hook input priority filter - 10; policy accept;
		ip saddr 10.231.0.2 meta l4proto tcp reject with tcp reset comment "deployer-block-10.231.0.2" # handle 8
		ip saddr 10.231.0.2 reject with icmp port-unreachable comment "deployer-block-10.231.0.2" # handle 7
		ip saddr 10.231.0.2 drop comment "deployer-block-10.231.0.2" # handle 4
		ip saddr 10.231.0.3 drop comment "deployer-block-10.231.0.3" # handle 5
		ip saddr 10.231.0.2 drop comment "someone-else" # handle 6
		ip saddr 10.231.0.2 reject with icmp port-unreachable comment "someone-else" # handle 9
		ip6 saddr fd00::2 meta l4proto tcp reject with tcp reset comment "deployer-block-fd00::2" # handle 10
		ip6 saddr fd00::2 reject with icmpv6 port-unreachable comment "deployer-block-fd00::2" # handle 11
	}
}
"""


def test_nft_parse_handles():
    from orchestrator_lib.host.agents.firewall import Nft
    assert Nft.parse_handles(NFT_LISTING, "10.231.0.2", "deployer-block-10.231.0.2") == {
        "tcp-reset": ["8"], "reject": ["7"], "drop": ["4"]}
    assert Nft.parse_handles(NFT_LISTING, "10.231.0.3", "deployer-block-10.231.0.3") == {"drop": ["5"]}
    assert Nft.parse_handles(NFT_LISTING, "fd00::2", "deployer-block-fd00::2") == {"tcp-reset": ["10"], "reject": ["11"]}
    assert Nft.parse_handles(NFT_LISTING, "10.231.0.9", "deployer-block-10.231.0.9") == {}
    older = 'ip saddr 10.231.0.2 reject comment "t" # handle 3\n'   # nft versions that print the default bare
    assert Nft.parse_handles(older, "10.231.0.2", "t") == {"reject": ["3"]}


def nft_host(listed: str | None) -> FakeSystem:
    """nft whose chain lists `listed` (None: table missing); deletes by handle drop the line."""
    state = {"listed": listed}
    head = "table inet deployer {\n\tchain input { # handle 1\n"
    fake = FakeSystem(tools={"nft"})

    def lines() -> list[str]:
        return [ln for ln in (state["listed"] or "").splitlines() if "saddr" in ln]

    def listing(_l):
        if state["listed"] is None:
            return 1, "", "Error: No such file or directory\n"
        return 0, head + "\n".join(lines()) + "\n\t}\n}\n", ""

    def insert(l):
        verdict = l.split(" saddr 10.231.0.2 ")[1].split(" comment ")[0]
        handle = 20 + len(fake.calls)
        state["listed"] = f'\t\tip saddr 10.231.0.2 {verdict} comment "deployer-block-10.231.0.2" # handle {handle}\n' + "\n".join(lines())
        return 0, "", ""

    def delete(l):
        handle = l.rsplit(" ", 1)[1]
        state["listed"] = "\n".join(ln for ln in lines() if not ln.endswith(f"# handle {handle}"))
        return 0, "", ""

    fake.on(r"^nft -a list chain", listing)
    fake.on(r"^nft add (table|chain)", lambda _l: (state.update(listed=state["listed"] or ""), (0, "", ""))[1])
    fake.on(r"^nft insert rule", insert)
    fake.on(r"^nft delete rule inet deployer input handle \d+$", delete)
    fake.state = state
    return fake


def test_nft_block_creates_own_table_and_unblock_deletes_by_handle():
    fake = nft_host(None)
    r = call(fake, "firewall", "block", source="10.231.0.2")
    assert (r.status, r.data["backend"]) == ("changed", "nft")
    inserts = [c for c in fake.calls if c.startswith("nft insert")]
    prefix, comment = "nft insert rule inet deployer input ip saddr 10.231.0.2", "comment '\"deployer-block-10.231.0.2\"'"
    assert inserts == [f"{prefix} reject {comment}", f"{prefix} meta l4proto tcp reject with tcp reset {comment}"]
    assert call(fake, "firewall", "block", source="10.231.0.2").status == "ok"
    assert call(fake, "firewall", "unblock", source="10.231.0.2").status == "changed"
    assert "saddr" not in fake.state["listed"]
    assert call(fake, "firewall", "unblock", source="10.231.0.2").status == "ok"


def test_nft_legacy_drop_is_blocked_and_removed():
    fake = nft_host('\t\tip saddr 10.231.0.2 drop comment "deployer-block-10.231.0.2" # handle 4\n'
                    '\t\tip saddr 10.231.0.2 drop comment "someone-else" # handle 6\n')
    assert call(fake, "firewall", "status", source="10.231.0.2").data["blocked"] is True
    assert call(fake, "firewall", "block", source="10.231.0.2").changed is False
    r = call(fake, "firewall", "unblock", source="10.231.0.2")
    assert (r.status, r.after) == ("changed", "unblocked")
    assert [c for c in fake.calls if c.startswith("nft delete")] == ["nft delete rule inet deployer input handle 4"]
    assert "someone-else" in fake.state["listed"]
