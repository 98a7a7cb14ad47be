"""Issue 12: user regexes in discovery filters are bounded (time, length), overflowing repeat
counts are bad input, and every filter string either parses or fails with one FilterError line; fuzzed."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

sys.path.insert(0, str(Path(__file__).parent))
from fuzzing import FUZZ  # noqa: E402

from orchestrator_lib.controller.discovery import Filter, select  # noqa: E402
from orchestrator_lib.controller.errors import FilterError  # noqa: E402
from orchestrator_lib.controller.inventory import Host, Inventory  # noqa: E402

HOSTS = [Host("a" * 60 + "c", "10.0.0.1", facts={"x": "abcdefghijklmnopqrstuvwxyz" * 3 + "!"}, classes=("web",)),
         Host("web1", "10.0.0.2", facts={"x": "1"}, classes=("web",))]
INV = Inventory(name="t", path=Path("t.yaml"), hosts={h.name: h for h in HOSTS})


@pytest.mark.parametrize("kwargs", [{"identities": "/(a|aa)+$/"}, {"facts": "x=~/(a|aa)+$/"},
                                    {"compound": "/(a|aa)+b$/"}, {"classes": "/(w|we|e)+$/"}])
def test_a_catastrophic_regex_is_stopped_and_reported_in_one_line(kwargs):
    hosts = [Host("a" * 60 + "c", "10.0.0.1", facts={"x": "a" * 60 + "c"}, classes=("we" * 40 + "x",))]
    t0 = time.monotonic()
    with pytest.raises(FilterError) as exc:
        select(Inventory(name="t", path=Path("t.yaml"), hosts={h.name: h for h in hosts}), Filter.parse(**kwargs))
    # unbounded, (a|aa)+$ on 60 characters backtracks for hours; the bound is loose because in the
    # full suite, under load, this took up to 4.5 s of wall time (each search is stopped at 0.1 s)
    assert time.monotonic() - t0 < 10
    assert "\n" not in str(exc.value) and "took over" in str(exc.value)


@pytest.mark.parametrize("kwargs", [{"identities": "/(a*)*b/"}, {"facts": "x=~/([a-z]+)*[0-9]$/"}])
def test_the_audits_slow_regexes_finish_at_once(kwargs):
    t0 = time.monotonic()
    try:
        select(INV, Filter.parse(**kwargs))
    except FilterError:
        pass
    assert time.monotonic() - t0 < 2


@pytest.mark.parametrize("term", ["/a{4294967296}/", "/x{99999999999999999999}/", "/" + "a" * 2000 + "/"])
def test_an_overflowing_or_huge_regex_is_a_filter_error_not_a_traceback(term):
    with pytest.raises(FilterError):
        Filter.parse(identities=term)


def test_ordinary_regexes_still_select():
    assert [h.name for h in select(INV, Filter.parse(identities="/^web[0-9]$/"))] == ["web1"]


_piece = st.sampled_from(["/", "(", ")", "*", "+", "?", "a", "aa", "|", "{4294967296}", "[", "]", "\\", "=~", "=",
                          "<", ">=", "!=", " and ", " or ", "not ", "x", "web1", "1.2", "$", "^", ".*", "\n", "\r"])
_term = st.lists(_piece, max_size=16).map("".join)


@FUZZ
@given(st.sampled_from(["identities", "facts", "classes", "agents", "compound"]), _term)
def test_fuzz_discovery_filters_parse_or_fail_in_one_line_and_never_hang(field, term):
    t0 = time.monotonic()
    try:
        select(INV, Filter.parse(**{field: term}))
    except FilterError as e:
        assert "\n" not in str(e)
    assert time.monotonic() - t0 < 2
