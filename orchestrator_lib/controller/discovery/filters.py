"""Discovery filters as MCollective users type them: -I identity, -W fact, -C class, -A agent, -S.

Each term is parsed once into a small object with `matches(...)`. A malformed term raises
FilterError up front, so a typo is reported instead of silently selecting no hosts; a well-formed
term about a fact, host or word the inventory does not have is not an error here (MCollective
semantics) but `unknown_facts`, `unknown_identities` and `unknown_words` find it.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Iterable

from ..errors import FilterError
from .compound import parse_compound
from .terms import FactTerm, NameTerm, parse_agent, parse_class, parse_fact, parse_identity

if TYPE_CHECKING:  # annotations only: the NATS agent's bundle ships the matchers without the inventory
    from ..inventory import Host, Inventory


# --- the filter --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Compiled:
    identities: tuple[NameTerm, ...]
    facts: tuple[FactTerm, ...]
    classes: tuple[NameTerm, ...]
    agents: tuple[NameTerm, ...]
    compound: tuple[object, ...]  # a compound.Node per -S expression

    def matches(self, host: Host) -> bool:
        return (
            (not self.identities or any(t.matches(host.name) for t in self.identities))
            and all(t.matches(host) for t in self.facts)
            and all(t.matches_any(host.classes) for t in self.classes)
            and all(t.matches_any(host.agents) for t in self.agents)
            and all(tree.evaluate(host) for tree in self.compound)
        )


def _strings(value: str | Iterable[str]) -> tuple[str, ...]:
    """A lone string is one term, not a sequence of one-letter terms."""
    return (value,) if isinstance(value, str) else tuple(value)


@dataclass(frozen=True)
class Filter:
    """All the discovery options of one command line; the parts AND together, an empty one matches all."""

    identities: tuple[str, ...] = ()  # -I web1, -I /web[0-4]/  (OR among themselves)
    facts: tuple[str, ...] = ()  # -W cluster=alfa          (AND)
    classes: tuple[str, ...] = ()  # -C roles::web, -C /web/  (AND)
    agents: tuple[str, ...] = ()  # -A package               (AND)
    compound: tuple[str, ...] = ()  # -S "cluster=alfa and not web3" (AND; each parsed alone)

    @classmethod
    def parse(
        cls,
        identities: str | Iterable[str] = (),
        facts: str | Iterable[str] = (),
        classes: str | Iterable[str] = (),
        agents: str | Iterable[str] = (),
        compound: str | Iterable[str] | None = None,
    ) -> Filter:
        """Build a filter and validate every term now, so errors surface before any host is touched.
        Several -S expressions are parsed one by one, never joined as text: each error quotes the
        expression as written, and `a) or (b` cannot escape its parentheses."""
        compounds = () if compound is None else _strings(compound)
        flt = cls(_strings(identities), _strings(facts), _strings(classes), _strings(agents), compounds)
        flt._compiled  # noqa: B018 -- parsing is the validation
        return flt

    @cached_property
    def _compiled(self) -> _Compiled:
        return _Compiled(
            identities=tuple(parse_identity(t) for t in self.identities),
            facts=tuple(parse_fact(t) for t in self.facts),
            classes=tuple(parse_class(t) for t in self.classes),
            agents=tuple(parse_agent(t) for t in self.agents),
            compound=tuple(parse_compound(text) for text in self.compound),
        )

    def matches(self, host: Host) -> bool:
        return self._compiled.matches(host)

    def fact_names(self) -> list[str]:
        """Fact names used by -W terms and by the -S expression, first use first, no repeats."""
        names = [t.name for t in self._compiled.facts]
        names += [name for tree in self._compiled.compound for name in tree.fact_names()]
        return list(dict.fromkeys(names))

    def exact_identities(self) -> list[str]:
        """The -I terms that are names, not /regex/."""
        return [t.text for t in self._compiled.identities if t.pattern is None]

    def words(self) -> list[str]:
        """The bare words of the -S expressions (a host name or a class), first use first, no repeats."""
        return list(dict.fromkeys(word for tree in self._compiled.compound for word in tree.words()))

    def to_wire(self) -> dict[str, list[str]]:
        """The filter as a broadcast request carries it (JSON): its non-empty parts, as typed."""
        parts = {"identities": self.identities, "facts": self.facts, "classes": self.classes,
                 "agents": self.agents, "compound": self.compound}
        return {name: list(terms) for name, terms in parts.items() if terms}

    @classmethod
    def from_wire(cls, wire: dict) -> "Filter":
        """The filter a broadcast carried, parsed (and so validated) as the controller parsed it."""
        known = {"identities", "facts", "classes", "agents", "compound"}
        if not isinstance(wire, dict) or set(wire) - known or \
                not all(isinstance(v, list) and all(isinstance(t, str) for t in v) for v in wire.values()):
            raise FilterError(f"not a filter: {str(wire)[:120]}")
        return cls.parse(**{name: tuple(terms) for name, terms in wire.items()})

    def is_empty(self) -> bool:
        return not (self.identities or self.facts or self.classes or self.agents or self.compound)

    def describe(self) -> str:
        """The filter as command-line options, e.g. `-W cluster=alfa -C roles::web`."""
        parts = [f"-I {shlex.quote(t)}" for t in self.identities]
        parts += [f"-W {shlex.quote(t)}" for t in self.facts]
        parts += [f"-C {shlex.quote(t)}" for t in self.classes]
        parts += [f"-A {shlex.quote(t)}" for t in self.agents]
        parts += [f"-S {shlex.quote(t)}" for t in self.compound]
        return " ".join(parts) or "(no filter)"


def select(inventory: Inventory, flt: Filter) -> list[Host]:
    """The hosts matching `flt`, in inventory (file) order."""
    return [host for host in inventory.hosts.values() if flt.matches(host)]


def unknown_facts(inventory: Inventory, flt: Filter) -> list[str]:
    """Fact names the filter uses that no host has: almost always a typo worth a warning."""
    known = {name for host in inventory.hosts.values() for name in host.facts}
    return [name for name in flt.fact_names() if name not in known]


def unknown_identities(inventory: Inventory, flt: Filter) -> list[str]:
    """Exact -I names no host has: -I terms OR together, so a typo would silently drop a host."""
    return [name for name in flt.exact_identities() if name not in inventory.hosts]


def unknown_words(inventory: Inventory, flt: Filter) -> list[str]:
    """Bare -S words that are neither a host's name nor a host's class: a typo, which under `not`
    would silently select more hosts."""
    known = set(inventory.hosts) | {name for host in inventory.hosts.values() for name in host.classes}
    return [word for word in flt.words() if word not in known]
