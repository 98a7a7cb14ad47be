"""The hosts a scenario updates: filters that accumulate (AND) as the Given steps read, an
optional count contract, and, once pre-discovered, the pinned list every later step acts on."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from ..discovery import CountContract, Filter
from ..errors import DiscoveryError
from ..inventory import Host


@dataclass
class Target:
    identities: list[str] = field(default_factory=list)   # OR among themselves, like -I
    facts: list[str] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    compounds: list[str] = field(default_factory=list)    # each one a -S expression, ANDed
    contract: CountContract | None = None
    pinned: list[Host] | None = None                      # set by pre-discovery
    pinned_for: Filter | None = None

    def filter(self) -> Filter:
        return Filter.parse(identities=self.identities, facts=self.facts, classes=self.classes,
                            compound=self.compounds)

    def narrow(self, *, identities: Iterable[str] = (), facts: Iterable[str] = (),
               classes: Iterable[str] = (), compounds: Iterable[str] = ()) -> Filter:
        """Add filters (AND with those before; identities OR among themselves) and parse the
        whole, so a bad one fails where it was written."""
        self.identities.extend(identities)
        self.facts.extend(facts)
        self.classes.extend(classes)
        self.compounds.extend(compounds)
        return self.filter()

    def require_some_filter(self) -> Filter:
        """An empty filter selects the whole estate: never what a deploy meant."""
        flt = self.filter()
        if flt.is_empty():
            raise DiscoveryError("no hosts chosen: start the scenario with "
                                 "'Given I want to update hosts with class ...' (or fact, matching, named)")
        return flt

    def pin(self, hosts: list[Host], contract: CountContract) -> None:
        self.pinned, self.pinned_for, self.contract = list(hosts), self.filter(), contract

    def pinned_hosts(self) -> list[Host] | None:
        """The pre-discovered hosts, while no filter was added since."""
        return self.pinned if self.pinned is not None and self.pinned_for == self.filter() else None
