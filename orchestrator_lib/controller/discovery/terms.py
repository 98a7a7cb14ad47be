"""Discovery terms as MCollective users type them: -I identity, -W fact, -C class, -A agent, each
parsed once into a small object with `matches(...)`, and the comparison of fact values. A
malformed term raises FilterError up front, so a typo is reported instead of selecting no hosts."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

import regex  # re with a timeout: user regexes are bounded (see _regex)

from ..errors import FilterError

if TYPE_CHECKING:  # annotations only: the NATS agent's bundle ships the matchers without the inventory
    from ..inventory import Host

FACT_OPERATORS = ("=", "==", "!=", "<", ">", "<=", ">=", "=~")
_FACT_TERM = re.compile(
    r"^\s*(?P<name>[^\s=<>!~]*)\s*(?P<op>==|=~|!=|<=|>=|=|<|>)\s*(?P<value>.*)$", re.S
)  # longer operators first, so `<=` is not read as `<` followed by the value '=2'
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_VERSION = re.compile(r"^(\d+:)?\d[A-Za-z0-9.+~-]*$")


# --- comparing fact values ---------------------------------------------------------------------


def compare_versions(a: str, b: str) -> int:
    """Compare like dpkg (epoch:upstream-revision), so `4.2.10` > `4.2.6-3.el5` and `1.0~rc1` < `1.0`.

    Returns -1, 0 or 1."""
    epoch_a, upstream_a, revision_a = _split_version(a)
    epoch_b, upstream_b, revision_b = _split_version(b)
    if epoch_a != epoch_b:
        return -1 if epoch_a < epoch_b else 1
    return _verrevcmp(upstream_a, upstream_b) or _verrevcmp(revision_a, revision_b)


def _split_version(version: str) -> tuple[int, str, str]:
    epoch, _, rest = version.partition(":") if re.match(r"^\d+:", version) else ("0", "", version)
    upstream, _, revision = rest.rpartition("-") if "-" in rest else (rest, "", "")
    return int(epoch), upstream, revision


def _order(char: str) -> int:
    """dpkg's character weight: '~' before everything (even the end), letters before symbols."""
    if char == "~":
        return -1
    if char.isdigit() or not char:
        return 0
    if char.isalpha():
        return ord(char)
    return ord(char) + 256


def _verrevcmp(a: str, b: str) -> int:
    """dpkg's verrevcmp: alternate non-digit runs (by _order) and digit runs (numerically)."""
    i = j = 0
    while i < len(a) or j < len(b):
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ca = _order(a[i]) if i < len(a) else 0
            cb = _order(b[j]) if j < len(b) else 0
            if ca != cb:
                return -1 if ca < cb else 1
            i, j = i + 1, j + 1
        start_i, start_j = i, j
        while i < len(a) and a[i].isdigit():
            i += 1
        while j < len(b) and b[j].isdigit():
            j += 1
        num_a, num_b = int(a[start_i:i] or 0), int(b[start_j:j] or 0)
        if num_a != num_b:
            return -1 if num_a < num_b else 1
    return 0


def compare_values(a: str, b: str) -> int:
    """Numbers numerically, then versions dpkg-style, else plain string order. Returns -1, 0, 1."""
    if _NUMBER.match(a) and _NUMBER.match(b):
        x, y = float(a), float(b)
        return (x > y) - (x < y)
    if _VERSION.match(a) and _VERSION.match(b):
        return compare_versions(a, b)
    return (a > b) - (a < b)


def _flat(text: str) -> str:
    """Errors are one line, whatever the user typed."""
    return " ".join(text.splitlines()) if "\n" in text or "\r" in text else text


# --- terms -------------------------------------------------------------------------------------


#: User regexes are bounded: this long at most, and each search gets this much time. They run with
#: the `regex` module (re's syntax) because re has no timeout: `(a|aa)+$` on 60 characters would
#: run for hours, and `a{4294967296}` raised OverflowError past `except re.error`.
MAX_REGEX = 1000
REGEX_TIMEOUT = 0.1


def _regex(kind: str, term: str, pattern: str) -> BoundedRegex:
    if not pattern:
        raise FilterError(f"{kind} filter '{_flat(term)}': empty regex")
    if len(pattern) > MAX_REGEX:
        raise FilterError(f"{kind} filter '{_flat(term)[:60]}...': regex longer than {MAX_REGEX} characters")
    try:
        return BoundedRegex(kind, term, regex.compile(pattern, regex.VERSION0))
    except (regex.error, OverflowError, ValueError, RecursionError, MemoryError) as exc:
        raise FilterError(f"{kind} filter '{_flat(term)}': bad regex: {_flat(str(exc) or type(exc).__name__)}") from None


@dataclass(frozen=True)
class BoundedRegex:
    """A user's regex whose every search is bounded in time (REGEX_TIMEOUT): too slow is a
    FilterError naming the term and the text, raised during discovery, before any host is contacted."""

    kind: str
    term: str
    compiled: regex.Pattern

    @property
    def pattern(self) -> str:
        return self.compiled.pattern

    def search(self, text: str) -> object | None:
        try:
            return self.compiled.search(text, timeout=REGEX_TIMEOUT)
        except TimeoutError:
            raise FilterError(f"{self.kind} filter '{_flat(self.term)}': the regex took over "
                              f"{REGEX_TIMEOUT:g} s on '{_flat(text)[:80]}' (nested repetition?); simplify it") from None


def _slashed(text: str) -> str | None:
    """The inside of a `/regex/`, or None when `text` is not slashed."""
    return text[1:-1] if len(text) >= 2 and text.startswith("/") and text.endswith("/") else None


@dataclass(frozen=True)
class FactTerm:
    """`name op value`. A host without the fact never matches, not even `!=`."""

    text: str
    name: str
    op: str
    value: str
    pattern: BoundedRegex | None = None  # for =~ (and MCollective's `fact=/re/`)

    def matches(self, host: Host) -> bool:
        actual = host.facts.get(self.name)
        if actual is None:
            return False
        if self.pattern is not None:
            return self.pattern.search(actual) is not None
        if self.op in ("=", "=="):
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        order = compare_values(actual, self.value)
        return {"<": order < 0, ">": order > 0, "<=": order <= 0, ">=": order >= 0}[self.op]


def parse_fact(term: str) -> FactTerm:
    """Parse `-W` syntax: `cluster=alfa`, `load<2`, `version>=4.2.6`, `os=~/deb/`, `os=/deb/`."""
    match = _FACT_TERM.match(term)
    if not match:
        operators = " ".join(FACT_OPERATORS)
        raise FilterError(f"fact filter '{_flat(term)}': expected FACT=VALUE (operators {operators})")
    name, op, value = match["name"], match["op"], match["value"].strip()  # strip(): a regex's \s*$ was quadratic
    if not name:
        raise FilterError(f"fact filter '{_flat(term)}': empty fact name")
    if not value:
        raise FilterError(f"fact filter '{_flat(term)}': missing value after '{op}'")
    pattern = None
    if op == "=~":
        pattern = _regex("fact", term, _slashed(value) if _slashed(value) is not None else value)
    elif op == "=" and _slashed(value) is not None:  # MCollective: `fact=/re/` is a regex match
        pattern = _regex("fact", term, _slashed(value))
    return FactTerm(term, name, op, value, pattern)


@dataclass(frozen=True)
class NameTerm:
    """An exact name or a `/regex/` (re.search) tested against a host's name, classes or agents."""

    text: str
    pattern: BoundedRegex | None = None

    def matches(self, name: str) -> bool:
        return self.pattern.search(name) is not None if self.pattern else name == self.text

    def matches_any(self, names: Iterable[str]) -> bool:
        return any(self.matches(name) for name in names)


def _parse_name(kind: str, term: str) -> NameTerm:
    if not term or not term.strip():
        raise FilterError(f"{kind} filter '{_flat(term)}': empty {kind}")
    inside = _slashed(term)
    return NameTerm(term, _regex(kind, term, inside) if inside is not None else None)


def parse_identity(term: str) -> NameTerm:
    return _parse_name("identity", term)


def parse_class(term: str) -> NameTerm:
    return _parse_name("class", term)


def parse_agent(term: str) -> NameTerm:
    return _parse_name("agent", term)
