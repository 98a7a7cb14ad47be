"""Discovery: filter terms, the -S compound language, version comparison and count contracts."""
from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator_lib.controller.discovery import (
    CountContract,
    Filter,
    compare_values,
    compare_versions,
    parse_compound,
    parse_fact,
    select,
    tokenize,
    unknown_facts,
    unknown_identities,
    unknown_words,
)
from orchestrator_lib.controller.errors import DiscoveryError, FilterError
from orchestrator_lib.controller.inventory import Host, Inventory, load_inventory

REPO = Path(__file__).resolve().parents[2]


def host(name, classes=(), agents=("package", "service"), **facts):
    return Host(name, "10.0.0.1", facts={k: str(v) for k, v in facts.items()}, classes=tuple(classes), agents=agents)


HOSTS = [
    host("web1", ["roles::web", "nginx"], cluster="alfa", hagroup="a", load="0.5", version="4.2.6-3.el5", os="debian"),
    host("web2", ["roles::web"], cluster="alfa", hagroup="b", load="2", version="4.2.10", os="ubuntu"),
    host("web3", ["roles::web"], cluster="bravo", hagroup="a", load="10", version="4.2.5-1.el5", os="Debian GNU/Linux"),
    host("db1", ["roles::db"], agents=("package",), cluster="alfa", load="1"),
    host("lb1", ["roles::lb", "haproxy"], agents=()),
]
INV = Inventory(name="t", path=Path("t.yaml"), hosts={h.name: h for h in HOSTS})


def names(flt: Filter, inventory: Inventory = INV) -> list[str]:
    return [h.name for h in select(inventory, flt)]


def filter_error(**parts) -> str:
    with pytest.raises(FilterError) as caught:
        Filter.parse(**parts)
    message = str(caught.value)
    assert "\n" not in message
    return message


# --- the local estate ---------------------------------------------------------------------------


def test_local_country_de_web_hosts():
    inv = load_inventory("local", REPO / "environments")
    assert names(Filter.parse(facts=["country=de"], classes=["roles::web"]), inv) == ["web1", "web2", "web3", "web4"]


def test_local_compound_from_the_architecture_doc():
    inv = load_inventory("local", REPO / "environments")
    flt = Filter.parse(compound="cluster=alfa and (hagroup=a or hagroup=b) and not web3")
    assert names(flt, inv) == ["web1", "web2", "web4"]


# --- version and value comparison ---------------------------------------------------------------


@pytest.mark.parametrize(
    "a, b, expected",
    [
        ("4.2.6-3.el5", "4.2.10", -1),
        ("4.2.7-1.el5", "4.2.6-3.el5", 1),
        ("4.2.6-3.el5", "4.2.6-3.el5", 0),
        ("1.0", "1.00", 0),
        ("1.01", "1.1", 0),
        ("1.0~rc1", "1.0", -1),
        ("1.0~rc1", "1.0~rc2", -1),
        ("1.0~~", "1.0~", -1),
        ("1.22.1-9~lab1", "1.22.1-9", -1),
        ("1.0", "1.0a", -1),
        ("1.0a", "1.0+", -1),  # letters sort before other symbols
        ("1.0", "1.0.0", -1),
        ("2.0-1", "2.0-2", -1),
        ("2.0-10", "2.0-9", 1),
        ("1:0.1", "2.0", 1),  # epoch wins
        ("0:2.0", "2.0", 0),
        ("3.0.11-1", "3.0.13-1", -1),
    ],
)
def test_compare_versions(a, b, expected):
    assert compare_versions(a, b) == expected
    assert compare_versions(b, a) == -expected


@pytest.mark.parametrize(
    "a, b, expected",
    [("10", "9", 1), ("0.5", "2", -1), ("2", "2.0", 0), ("-1", "1", -1),
     ("4.2.10", "4.2.9", 1),  # versions, not strings ("4.2.10" < "4.2.9" as text)
     ("abc", "abd", -1), ("b", "a", 1), ("x", "x", 0)],
)
def test_compare_values(a, b, expected):
    assert compare_values(a, b) == expected


# --- fact filters (-W) --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "term, expected",
    [
        ("cluster=alfa", ["web1", "web2", "db1"]),
        ("cluster==alfa", ["web1", "web2", "db1"]),
        ("cluster != alfa", ["web3"]),  # lb1 has no cluster fact: never matches, not even !=
        ("load<2", ["web1", "db1"]),  # numeric: "10" is not < "2"
        ("load>2", ["web3"]),
        ("load<=2", ["web1", "web2", "db1"]),
        ("load>=10", ["web3"]),
        ("version>=4.2.6", ["web1", "web2"]),
        ("version<4.2.6-3.el5", ["web3"]),
        ("version>4.2.6-3.el5", ["web2"]),
        ("os=~/deb/", ["web1"]),
        ("os=~/(?i)^deb/", ["web1", "web3"]),
        ("os=~ub", ["web2"]),  # slashes are optional after =~
        ("os=/untu$/", ["web2"]),  # MCollective: fact=/re/ is a regex match
        ("os==/untu$/", []),  # == is always literal
        ("os=Debian GNU/Linux", ["web3"]),
        ("nosuchfact=1", []),
    ],
)
def test_fact_operators(term, expected):
    assert names(Filter.parse(facts=[term])) == expected


def test_fact_terms_and_together():
    assert names(Filter.parse(facts=["cluster=alfa", "hagroup=a"])) == ["web1"]


@pytest.mark.parametrize(
    "term, message",
    [
        ("cluster", "fact filter 'cluster': expected FACT=VALUE (operators = == != < > <= >= =~)"),
        ("cluster~alfa", "fact filter 'cluster~alfa': expected FACT=VALUE (operators = == != < > <= >= =~)"),
        ("", "fact filter '': expected FACT=VALUE (operators = == != < > <= >= =~)"),
        ("=alfa", "fact filter '=alfa': empty fact name"),
        ("cluster=", "fact filter 'cluster=': missing value after '='"),
        ("os=~", "fact filter 'os=~': missing value after '=~'"),
        ("os=~//", "fact filter 'os=~//': empty regex"),
    ],
)
def test_malformed_fact_terms(term, message):
    assert filter_error(facts=[term]) == message


def test_bad_fact_regex():
    message = filter_error(facts=["os=~/deb[/"])
    assert message.startswith("fact filter 'os=~/deb[/': bad regex: unterminated character set")


def test_parse_fact_keeps_the_parts():
    term = parse_fact(" load <= 2 ")
    assert (term.name, term.op, term.value) == ("load", "<=", "2")


# --- identity, class, agent ---------------------------------------------------------------------


def test_identity_exact_and_regex_or_together():
    assert names(Filter.parse(identities=["web1"])) == ["web1"]
    assert names(Filter.parse(identities=["/web[23]/"])) == ["web2", "web3"]
    assert names(Filter.parse(identities=["lb1", "/^web[12]$/"])) == ["web1", "web2", "lb1"]
    assert names(Filter.parse(identities=["web"])) == []  # exact, not substring


def test_identity_errors():
    assert filter_error(identities=["/web[/"]).startswith("identity filter '/web[/': bad regex: ")
    assert filter_error(identities=[""]) == "identity filter '': empty identity"
    assert filter_error(identities=["//"]) == "identity filter '//': empty regex"


def test_classes_and_together():
    assert names(Filter.parse(classes=["roles::web"])) == ["web1", "web2", "web3"]
    assert names(Filter.parse(classes=["roles::web", "nginx"])) == ["web1"]
    assert names(Filter.parse(classes=["/^roles::(db|lb)$/"])) == ["db1", "lb1"]
    assert names(Filter.parse(classes=["roles"])) == []


def test_class_errors():
    assert filter_error(classes=["/(/"]).startswith("class filter '/(/': bad regex: ")


def test_agents_and_together():
    assert names(Filter.parse(agents=["package"])) == ["web1", "web2", "web3", "db1"]
    assert names(Filter.parse(agents=["package", "service"])) == ["web1", "web2", "web3"]
    assert names(Filter.parse(agents=["/serv/"])) == ["web1", "web2", "web3"]
    assert filter_error(agents=["  "]) == "agent filter '  ': empty agent"


def test_all_parts_and_together():
    flt = Filter.parse(identities=["/web/", "db1"], facts=["cluster=alfa"], classes=["roles::web"], agents=["service"])
    assert names(flt) == ["web1", "web2"]


# --- Filter as an object ------------------------------------------------------------------------


def test_empty_filter_selects_all_in_inventory_order():
    assert names(Filter()) == ["web1", "web2", "web3", "db1", "lb1"]
    assert Filter().is_empty() and not Filter.parse(facts="a=1").is_empty()


def test_a_lone_string_is_one_term():
    assert Filter.parse(facts="cluster=alfa", classes="roles::web").facts == ("cluster=alfa",)


def test_direct_construction_is_validated_on_first_use():
    flt = Filter(facts=("cluster",))
    with pytest.raises(FilterError, match="expected FACT=VALUE"):
        select(INV, flt)


def test_filters_compare_by_value():
    assert Filter.parse(facts=["a=1"]) == Filter(facts=("a=1",))


def test_describe():
    assert Filter.parse(facts=["cluster=alfa"], classes=["roles::web"]).describe() == "-W cluster=alfa -C roles::web"
    flt = Filter.parse(identities=["/web[0-4]/"], facts=["load<2"], agents=["package"], compound="web1 or web2")
    assert flt.describe() == "-I '/web[0-4]/' -W 'load<2' -A package -S 'web1 or web2'"
    assert Filter().describe() == "(no filter)"


def test_unknown_facts():
    flt = Filter.parse(facts=["cluster=alfa", "clustr=alfa"], compound="hagroup=a or zone=b or zone=c")
    assert flt.fact_names() == ["cluster", "clustr", "hagroup", "zone"]
    assert unknown_facts(INV, flt) == ["clustr", "zone"]
    assert unknown_facts(INV, Filter.parse(identities=["web1"])) == []


def test_unknown_identities_are_exact_names_no_host_has():
    flt = Filter.parse(identities=["web1", "wbe2", "/web[9]/"])
    assert flt.exact_identities() == ["web1", "wbe2"]
    assert unknown_identities(INV, flt) == ["wbe2"]  # a regex that matches nothing is not a typo
    assert unknown_identities(INV, Filter.parse(facts=["cluster=alfa"])) == []


def test_unknown_words_are_bare_words_naming_no_host_and_no_class():
    flt = Filter.parse(compound=["cluster=alfa and not wbe3", "roles::web or haproxy or web1 or /x/ or roles::wbe"])
    assert flt.words() == ["wbe3", "roles::web", "haproxy", "web1", "roles::wbe"]
    assert unknown_words(INV, flt) == ["wbe3", "roles::wbe"]
    assert unknown_words(INV, Filter.parse(compound="not web3 and hagroup=a")) == []


# --- the -S compound language -------------------------------------------------------------------


def test_precedence_and_binds_tighter_than_or():
    hosts = [host("A", x=1, y=0, z=0), host("B", x=0, y=1, z=1), host("C", x=0, y=1, z=0)]
    inv = Inventory(name="p", path=Path("p.yaml"), hosts={h.name: h for h in hosts})
    assert names(Filter.parse(compound="x=1 or y=1 and z=1"), inv) == ["A", "B"]
    assert names(Filter.parse(compound="(x=1 or y=1) and z=1"), inv) == ["B"]
    assert names(Filter.parse(compound="y=1 and z=1 or x=1"), inv) == ["A", "B"]


def test_not_binds_tighter_than_and():
    assert names(Filter.parse(compound="not cluster=alfa and roles::web")) == ["web3"]
    assert names(Filter.parse(compound="not (cluster=alfa and roles::web)")) == ["web3", "db1", "lb1"]
    assert names(Filter.parse(compound="not not web1")) == ["web1"]


def test_not_of_a_missing_fact_is_true():
    # `not cluster=alfa` holds for lb1 (no cluster fact), unlike `cluster!=alfa`.
    assert names(Filter.parse(compound="not cluster=alfa")) == ["web3", "lb1"]


def test_symbols():
    assert names(Filter.parse(compound="!web1 && (/web/ || db1)")) == ["web2", "web3", "db1"]
    assert names(Filter.parse(compound="cluster!=alfa||lb1")) == ["web3", "lb1"]
    assert names(Filter.parse(compound="!(web1)")) == ["web2", "web3", "db1", "lb1"]


def test_bare_word_is_identity_or_class_and_regex_is_identity():
    assert names(Filter.parse(compound="haproxy or db1")) == ["db1", "lb1"]
    assert names(Filter.parse(compound="/^web[13]$/")) == ["web1", "web3"]
    assert names(Filter.parse(compound="/roles/")) == []  # a bare regex looks at names only


def test_fact_terms_in_compound():
    assert names(Filter.parse(compound="load<2 and version>=4.2.6")) == ["web1"]
    assert names(Filter.parse(compound="os=~/(?i)^deb(ian)? gnu/ or os=~/ub/")) == ["web2", "web3"]


def test_compound_ands_with_other_parts():
    assert names(Filter.parse(facts=["cluster=alfa"], compound="not web1")) == ["web2", "db1"]


def test_several_expressions_are_parsed_alone_and_anded():
    flt = Filter.parse(compound=["cluster=alfa or hagroup=a", "not web1"])
    assert names(flt) == ["web2", "web3", "db1"]
    assert flt.describe() == "-S 'cluster=alfa or hagroup=a' -S 'not web1'"
    assert Filter.parse(compound="web1") == Filter(compound=("web1",))


def test_an_expression_cannot_escape_its_parentheses_into_the_next():
    """Joined as text, `hagroup=a) or (cluster=bravo` and `country=de` would parse as one expression."""
    message = filter_error(compound=["hagroup=a) or (cluster=bravo", "country=de"])
    assert message == '-S "hagroup=a) or (cluster=bravo": expected \'and\', \'or\' or the end at column 10, found \')\''


def test_an_error_in_a_later_expression_quotes_it_as_written_with_its_own_columns():
    message = filter_error(compound=["country=de", "hagroup=a and ("])
    assert message == '-S "hagroup=a and (": expected a term, \'not\' or \'(\' at column 16, found the end'


def test_tokenize():
    tokens = tokenize("a=1 and(not /x y/||b)")
    assert [(t.kind, t.text, t.column) for t in tokens] == [
        ("term", "a=1", 1), ("and", "and", 5), ("(", "(", 8), ("not", "not", 9), ("term", "/x y/", 13),
        ("or", "||", 18), ("term", "b", 20), (")", ")", 21), ("end", "", 22),
    ]


def test_ast_shape():
    tree = parse_compound("a or b and not c")
    assert type(tree).__name__ == "Or"
    assert type(tree.parts[1]).__name__ == "And"
    assert type(tree.parts[1].parts[1]).__name__ == "Not"


@pytest.mark.parametrize(
    "expr, message",
    [
        ("cluster=alfa and (hagroup=a", "expected ')' at column 28, found the end"),
        ("web1 and", "expected a term, 'not' or '(' at column 9, found the end"),
        ("", "expected a term, 'not' or '(' at column 1, found the end"),
        ("web1 web2", "expected 'and', 'or' or the end at column 6, found 'web2'"),
        ("(web1))", "expected 'and', 'or' or the end at column 7, found ')'"),
        (")", "expected a term, 'not' or '(' at column 1, found ')'"),
        ("web1 or or web2", "expected a term, 'not' or '(' at column 9, found 'or'"),
        ("not", "expected a term, 'not' or '(' at column 4, found the end"),
        ("()", "expected a term, 'not' or '(' at column 2, found ')'"),
        ("web1 and /web", "unterminated regex at column 10"),
        ("os=~/deb", "unterminated regex at column 5"),
    ],
)
def test_compound_parse_errors_point_at_a_column(expr, message):
    assert filter_error(compound=expr) == f'-S "{expr}": {message}'


def test_bad_term_inside_compound_names_term_and_column():
    assert filter_error(compound="web1 or =alfa") == '-S "web1 or =alfa": column 9: fact filter \'=alfa\': empty fact name'
    message = filter_error(compound="a=1 and os=~/[/")
    assert message.startswith('-S "a=1 and os=~/[/": column 9: fact filter \'os=~/[/\': bad regex: ')


def test_multi_line_expression_gives_a_one_line_error():
    message = filter_error(compound="web1 and\n(web2")
    assert message == '-S "web1 and (web2": expected \')\' at column 15, found the end'


def test_multi_line_expression_parses():
    assert names(Filter.parse(compound="web1\n  or web2")) == ["web1", "web2"]


def test_deep_nesting_is_an_error_not_a_crash():
    assert "nested deeper than" in filter_error(compound="(" * 500 + "web1" + ")" * 500)
    assert "nested deeper than" in filter_error(compound="not " * 500 + "web1")


# --- count contracts ----------------------------------------------------------------------------


def test_contract_constructors_and_str():
    assert str(CountContract.exactly(4)) == "exactly 4 hosts"
    assert str(CountContract.exactly(1)) == "exactly 1 host"
    assert str(CountContract.at_least(1)) == "at least 1 host"
    assert str(CountContract.at_most(3)) == "at most 3 hosts"
    assert str(CountContract.between(2, 5)) == "between 2 and 5 hosts"
    assert CountContract.between(2, 5) == CountContract(2, 5)


def test_contract_allows():
    contract = CountContract.between(2, 3)
    assert [contract.allows(n) for n in range(5)] == [False, False, True, True, False]
    assert CountContract.at_least(0).allows(0) and CountContract.at_least(2).allows(1000)


def test_contract_check_passes_silently():
    CountContract.exactly(3).check(3, ["web1", "web2", "web3"])
    CountContract.at_least(1).check(5)


def test_contract_check_names_the_hosts_found():
    with pytest.raises(DiscoveryError) as caught:
        CountContract.exactly(4).check(3, ["web1", "web2", "web3"])
    assert str(caught.value) == "expected exactly 4 hosts, discovered 3: web1, web2, web3"


def test_contract_check_without_names_and_with_none_found():
    with pytest.raises(DiscoveryError, match=r"^expected at least 1 host, discovered 0$"):
        CountContract.at_least(1).check(0, [])
    with pytest.raises(DiscoveryError, match=r"^expected between 1 and 2 hosts, discovered 3$"):
        CountContract.between(1, 2).check(3)


def test_contract_check_shortens_long_host_lists():
    found = [f"web{i}" for i in range(1, 31)]
    with pytest.raises(DiscoveryError) as caught:
        CountContract.at_most(10).check(30, found)
    assert str(caught.value).endswith("web19, web20 and 10 more")


@pytest.mark.parametrize("make", [lambda: CountContract.exactly(-1), lambda: CountContract.between(5, 3)])
def test_invalid_contract(make):
    with pytest.raises(DiscoveryError, match="invalid host count contract"):
        make()
