"""How many hosts a discovery must find before anything runs on them.

A deploy that expects the four web hosts of cluster alfa should stop, not half-deploy, when
discovery finds three; the contract turns that expectation into one checkable object."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..errors import DiscoveryError

_MAX_NAMES = 20  # hosts listed in an error before "and N more": keeps the line readable


def _hosts(n: int) -> str:
    return f"{n} host" if n == 1 else f"{n} hosts"


@dataclass(frozen=True)
class CountContract:
    """Allowed number of discovered hosts: minimum..maximum, maximum None meaning no upper bound."""

    minimum: int
    maximum: int | None = None

    def __post_init__(self) -> None:
        # Counts usually come from feature-file text, so a bad one is a user error, not a bug.
        if self.minimum < 0 or (self.maximum is not None and self.maximum < self.minimum):
            bound = "" if self.maximum is None else f"..{self.maximum}"
            raise DiscoveryError(
                f"invalid host count contract {self.minimum}{bound}: need 0 <= minimum <= maximum"
            )

    @classmethod
    def exactly(cls, n: int) -> CountContract:
        return cls(n, n)

    @classmethod
    def at_least(cls, n: int) -> CountContract:
        return cls(n, None)

    @classmethod
    def at_most(cls, n: int) -> CountContract:
        return cls(0, n)

    @classmethod
    def between(cls, n: int, m: int) -> CountContract:
        return cls(n, m)

    def allows(self, found: int) -> bool:
        return found >= self.minimum and (self.maximum is None or found <= self.maximum)

    def check(self, found: int, names: Sequence[str] | None = None) -> None:
        """Raise DiscoveryError (one line, naming the hosts found) unless `found` is allowed."""
        if self.allows(found):
            return
        message = f"expected {self}, discovered {found}"
        if names:
            shown = ", ".join(names[:_MAX_NAMES])
            more = f" and {len(names) - _MAX_NAMES} more" if len(names) > _MAX_NAMES else ""
            message += f": {shown}{more}"
        raise DiscoveryError(message)

    def __str__(self) -> str:
        if self.maximum is None:
            return f"at least {_hosts(self.minimum)}"
        if self.minimum == self.maximum:
            return f"exactly {_hosts(self.minimum)}"
        if self.minimum == 0:
            return f"at most {_hosts(self.maximum)}"
        return f"between {self.minimum} and {_hosts(self.maximum)}"
