"""PyHamcrest on a whole estate: `assert_that({host: value}, on_every_host(matcher))` fails with
one line per failing host, saying what was expected and what the host actually has."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from hamcrest.core.base_matcher import BaseMatcher
from hamcrest.core.description import Description
from hamcrest.core.helpers.wrap_matcher import wrap_matcher
from hamcrest.core.matcher import Matcher
from hamcrest.core.string_description import StringDescription

from orchestrator_lib.orchestration import HostResult


@dataclass(frozen=True)
class Unanswered:
    """The value of a host that gave none (unreachable, or its check itself failed)."""
    status: str
    message: str

    @classmethod
    def of(cls, result: HostResult) -> "Unanswered":
        return cls(str(result.status), result.message)

    def __repr__(self) -> str:
        return f"<{self.status}: {self.message}>" if self.message else f"<{self.status}>"


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
