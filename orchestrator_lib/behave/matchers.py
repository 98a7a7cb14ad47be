"""PyHamcrest on a whole estate: `assert_that({host: value}, on_every_host(matcher))` fails with
one line per failing host, saying what was expected and what the host actually has. `check` is a
Then's verdict: each host's cell in the result matrix, then that assertion."""
from __future__ import annotations

from typing import Any, Mapping

from hamcrest import assert_that
from hamcrest.core.base_matcher import BaseMatcher
from hamcrest.core.description import Description
from hamcrest.core.helpers.wrap_matcher import wrap_matcher
from hamcrest.core.matcher import Matcher
from hamcrest.core.string_description import StringDescription

from orchestrator_lib.controller.deploy import Deploy


def describe(matcher: Matcher[Any]) -> str:
    return str(StringDescription().append_description_of(matcher))


class OnEveryHost(BaseMatcher[Mapping[str, Any]]):
    def __init__(self, matcher: Any) -> None:
        self.matcher: Matcher[Any] = wrap_matcher(matcher)

    def failing(self, item: Mapping[str, Any]) -> dict[str, Any]:
        return {host: value for host, value in item.items() if not self.matcher.matches(value)}

    def _matches(self, item: Mapping[str, Any]) -> bool:
        return bool(item) and not self.failing(item)

    def describe_to(self, description: Description) -> None:
        description.append_text("on every host: ").append_description_of(self.matcher)

    def describe_mismatch(self, item: Mapping[str, Any], mismatch_description: Description) -> None:
        if not item:
            mismatch_description.append_text("no host was checked")
            return
        bad = self.failing(item)
        mismatch_description.append_text(f"{len(bad)} of {len(item)} hosts differ:")
        for host, value in bad.items():
            mismatch_description.append_text(f"\n          {host}: expected ")
            mismatch_description.append_description_of(self.matcher)
            mismatch_description.append_text(", actual ").append_description_of(value)


def on_every_host(matcher: Any) -> OnEveryHost:
    return OnEveryHost(matcher)


def check(d: Deploy, values: Mapping[str, Any], matcher: Any, what: str, label: str = "") -> None:
    """A Then: record each host (ok, failed, unreachable) in the matrix, and assert with PyHamcrest."""
    every = on_every_host(matcher)
    d.record_check(values, every.matcher.matches, describe(every.matcher), what, label)
    assert_that(values, every, what)
