"""A release's rollout policy, as its spec states it: batches, ONE failure budget over every batch
of a scenario, canary hosts chosen reproducibly (one per value of a fact, from a recorded seed),
and the four-valued verdict of an analysis between batches. Pure logic: the deploy layer and
`orch` apply it; nothing here touches a host.

Tags (on a feature or a scenario; the scenario's win): `@batch(2)` `@batch(25%)`
`@batch(1,5,50%)` `@serial` (= `@batch(1)`), `@max_fail(0)` `@max_fail(10%)`, `@canary(1)`
`@canary(by=hagroup)` `@canary(2, by=hagroup)`, and the analysis limits `@failure_limit(N)`
`@inconclusive_limit(N)` `@error_limit(N)`."""
from __future__ import annotations

import random
import re
import secrets
from collections import Counter
from dataclasses import dataclass, field, replace
from enum import Enum
from fractions import Fraction
from typing import Callable, Iterable, Mapping, Sequence, TypeVar

from ..errors import OrchestratorError
from .batches import BatchSize, parse_batch_size, plan_batches

T = TypeVar("T")

#: the tags this module reads; any other tag (fail_fast, wip, ...) is not ours and is left alone
POLICY_TAGS = ("batch", "serial", "max_fail", "canary", "failure_limit", "inconclusive_limit", "error_limit")
#: AnalysisLimits' fields and the tags that set them
LIMIT_TAGS = {"failures": "failure_limit", "inconclusive": "inconclusive_limit", "errors": "error_limit"}
_TAG = re.compile(r"(?P<name>[a-z_]+)(?:\((?P<args>[^()]*)\))?")


class RolloutError(OrchestratorError):
    """A policy tag or option that cannot be read: one line naming where it was written."""


# ---- the failure budget ---------------------------------------------------------------------------
@dataclass(frozen=True)
class MaxFail:
    """How many hosts may fail before a rollout stops: a count (`1`) or a percentage of the hosts
    the scenario targets (`10%`). Like Ansible's max_fail_percentage it must be EXCEEDED: at
    exactly the limit the rollout goes on, so `0` stops at the first failure."""
    count: int | None = None
    percent: Fraction | None = None

    @classmethod
    def parse(cls, text: str, where: str = "") -> "MaxFail":
        value = text.strip()
        if re.fullmatch(r"\d{1,6}", value):
            return cls(count=int(value))
        m = re.fullmatch(r"(\d{1,3}(?:\.\d{1,3})?)%", value)
        if m and Fraction(m.group(1)) <= 100:
            return cls(percent=Fraction(m.group(1)))
        raise RolloutError(f"{where}max_fail '{text}': expected a number of hosts (0, 1, ...) or a percentage "
                           f"from 0% to 100%")

    def allowed(self, total: int) -> int:
        """The most failures that do not exceed the limit, out of `total` hosts."""
        if self.count is not None:
            return self.count
        return int(self.percent * total / 100)  # floor: failed*100 > P*total <=> failed > floor(P*total/100)

    def should_stop(self, failed_so_far: int, total: int) -> bool:
        """The fan-out's policy interface (see FailurePolicy): over the budget?"""
        return failed_so_far > self.allowed(total)

    def __str__(self) -> str:
        return str(self.count) if self.count is not None else f"{float(self.percent):g}%"


@dataclass
class FailureBudget:
    """One budget for a whole scenario: every host that fails or does not answer, in any batch of
    any step, is charged once. `max_fail` None: no budget was set, so any failure stops the
    rollout (the project's rule without a policy)."""
    max_fail: MaxFail | None
    total: int
    failed: dict[str, str] = field(default_factory=dict)   # host -> where it failed (first time)

    @property
    def allowed(self) -> int:
        return 0 if self.max_fail is None else self.max_fail.allowed(self.total)

    @property
    def used(self) -> int:
        return len(self.failed)

    @property
    def exceeded(self) -> bool:
        return self.used > self.allowed

    def charge(self, hosts: Iterable[str], where: str) -> list[str]:
        """Charge the hosts not charged before; returns those newly charged."""
        new = [h for h in hosts if h not in self.failed]
        for host in new:
            self.failed[host] = where
        return new

    def describe(self) -> str:
        limit = "no failure budget (any failure stops)" if self.max_fail is None else \
            f"@max_fail({self.max_fail}) = {self.allowed} of {self.total} hosts"
        return f"failure budget: {self.used} used, {self.allowed} allowed ({limit})"

    def to_dict(self) -> dict[str, object]:
        return {"max_fail": None if self.max_fail is None else str(self.max_fail), "total": self.total,
                "allowed": self.allowed, "used": self.used, "exceeded": self.exceeded, "failed": dict(self.failed)}


# ---- canaries -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Canary:
    """The first batch: `count` hosts, or `count` hosts per value of the fact `by` (stratified)."""
    count: int = 1
    by: str | None = None

    @classmethod
    def parse(cls, text: str, where: str = "") -> "Canary":
        count, by = 1, None
        for part in (p.strip() for p in text.split(",") if p.strip()):
            if m := re.fullmatch(r"by\s*=\s*([A-Za-z_][\w.-]{0,63})", part):
                by = m.group(1)
            elif re.fullmatch(r"\d{1,4}", part) and int(part) >= 1:
                count = int(part)
            else:
                raise RolloutError(f"{where}canary '{text}': expected a number of hosts (1, 2, ...) and/or "
                                   f"by=FACT, e.g. canary(1) or canary(by=hagroup)")
        return cls(count, by)

    def __str__(self) -> str:
        return ", ".join(([str(self.count)] if self.count != 1 or not self.by else []) +
                         ([f"by={self.by}"] if self.by else []))


def new_seed() -> int:
    """A seed short enough to type back as `-D seed=`."""
    return secrets.randbelow(1_000_000)


def choose_canaries(hosts: Sequence[T], canary: Canary, seed: int, name: Callable[[T], str],
                    fact: Callable[[T, str], str | None]) -> list[T]:
    """The canary hosts, in the hosts' order. The same hosts, seed and policy choose the same
    canaries on any machine (a private Random(seed), hosts taken in name order within each value).
    By a fact: `count` hosts per value (all of them when a value has fewer); a host without the
    fact is an error, so no stratum is silently missed."""
    if canary.by is None:
        pool = sorted(hosts, key=name)
        chosen = set(map(name, random.Random(seed).sample(pool, min(canary.count, len(pool)))))
        return [h for h in hosts if name(h) in chosen]
    strata: dict[str, list[T]] = {}
    missing = []
    for host in hosts:
        value = fact(host, canary.by)
        if value is None:
            missing.append(name(host))
        else:
            strata.setdefault(value, []).append(host)
    if missing:
        raise RolloutError(f"canary by={canary.by}: {', '.join(missing)} ha{'s' if len(missing) == 1 else 've'} "
                           f"no fact {canary.by}")
    rng = random.Random(seed)
    chosen_names: set[str] = set()
    for value in sorted(strata):
        pool = sorted(strata[value], key=name)
        chosen_names.update(map(name, rng.sample(pool, min(canary.count, len(pool)))))
    return [h for h in hosts if name(h) in chosen_names]


# ---- the policy -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class AnalysisLimits:
    """Argo Rollouts' limits, per analysis step over the whole rollout: the analysis fails once
    more than `failures` measurements failed, pauses once more than `inconclusive` were
    inconclusive, and errors once more than `errors` errored in a row."""
    failures: int = 0
    inconclusive: int = 0
    errors: int = 4

    def to_dict(self) -> dict[str, int]:
        return {"failure_limit": self.failures, "inconclusive_limit": self.inconclusive, "error_limit": self.errors}


@dataclass(frozen=True)
class RolloutPolicy:
    """What the tags (or `orch` options) say. `sources` maps each kind (batch, max_fail, canary,
    failure_limit, ...) to where it was written, for error messages."""
    batch: str | None = None
    max_fail: MaxFail | None = None
    canary: Canary | None = None
    limits: AnalysisLimits = AnalysisLimits()
    sources: Mapping[str, str] = field(default_factory=dict)

    @property
    def batch_size(self) -> BatchSize:
        return parse_batch_size(self.batch) if self.batch else None

    @property
    def empty(self) -> bool:
        return self.batch is None and self.max_fail is None and self.canary is None and not self.sources

    def over(self, base: "RolloutPolicy") -> "RolloutPolicy":
        """This policy (a scenario's) with what it does not say taken from `base` (its feature's)."""
        sources = {**base.sources, **self.sources}
        limits = AnalysisLimits(**{attr: getattr(self.limits if tag in self.sources else base.limits, attr)
                                   for attr, tag in LIMIT_TAGS.items()})
        return RolloutPolicy(self.batch if "batch" in self.sources else base.batch,
                             self.max_fail if "max_fail" in self.sources else base.max_fail,
                             self.canary if "canary" in self.sources else base.canary, limits, sources)

    def describe(self) -> str:
        parts = []
        if self.canary:
            parts.append(f"@canary({self.canary})")
        if self.batch:
            parts.append(f"@batch({self.batch})")
        if self.max_fail is not None:
            parts.append(f"@max_fail({self.max_fail})")
        return " ".join(parts) or "no rollout policy"

    def to_dict(self) -> dict[str, object]:
        return {"batch": self.batch, "max_fail": None if self.max_fail is None else str(self.max_fail),
                "canary": None if self.canary is None else str(self.canary), **self.limits.to_dict(),
                "sources": dict(self.sources)}


def parse_tags(tags: Iterable[tuple[str, str]]) -> RolloutPolicy:
    """The policy of one level (a feature's tags, or a scenario's). Each tag comes with where it
    was written ("features/x.feature:3"). Tags that are not ours are ignored; one of ours that is
    malformed, or said twice at one level, is a one-line error naming where."""
    batch = max_fail = canary = None
    limits: dict[str, int] = {}
    sources: dict[str, str] = {}
    for tag, where in tags:
        m = _TAG.fullmatch(tag.strip())
        name = m.group("name") if m else tag.split("(")[0]
        if name not in POLICY_TAGS:
            continue
        prefix = f"{where}: @{tag}: " if where else f"@{tag}: "
        if not m:
            raise RolloutError(f"{prefix}cannot read it (expected e.g. @batch(2), @max_fail(10%), @canary(by=hagroup))")
        args = m.group("args")
        kind = "batch" if name == "serial" else name
        if kind in sources:
            raise RolloutError(f"{prefix}says {kind} again (already @{sources[kind].split(' @', 1)[-1]})")
        if name == "serial":
            if args is not None:
                raise RolloutError(f"{prefix}@serial takes no argument (use @batch(N))")
            batch = "1"
        elif args is None or not args.strip():
            raise RolloutError(f"{prefix}needs a value in parentheses, e.g. @{name}(1)")
        elif name == "batch":
            try:
                parse_batch_size(args)
            except OrchestratorError as e:
                raise RolloutError(f"{prefix}{e}") from None
            batch = ",".join(p.strip() for p in args.split(","))
        elif name == "max_fail":
            max_fail = MaxFail.parse(args, prefix)
        elif name == "canary":
            canary = Canary.parse(args, prefix)
        else:
            if not re.fullmatch(r"\s*\d{1,6}\s*", args):
                raise RolloutError(f"{prefix}expected a whole number, 0 or more")
            limits[name] = int(args)
        sources[kind] = f"{where} @{tag}" if where else f"@{tag}"
    analysis = AnalysisLimits(limits.get("failure_limit", 0), limits.get("inconclusive_limit", 0),
                              limits.get("error_limit", AnalysisLimits.errors))
    return RolloutPolicy(batch, max_fail, canary, analysis, sources)


def plan_rollout(hosts: Sequence[T], batch_size: BatchSize, canaries: Sequence[T] = ()) -> list[list[T]]:
    """The batches of one step: the canaries first, as a batch of their own, then the other hosts
    in their order, in batches whose percentages are of ALL the hosts (canaries included)."""
    canary_set = {id(h) for h in canaries}
    rest = [h for h in hosts if id(h) not in canary_set]
    first = [h for h in hosts if id(h) in canary_set]
    if batch_size is None:
        return ([first] if first else []) + ([rest] if rest else [])
    sized = plan_batches(list(range(len(hosts))), batch_size)   # sizes as they would be for all hosts
    sizes = [len(b) for b in sized]
    out: list[list[T]] = [first] if first else []
    start, i = 0, 0
    while start < len(rest):
        size = sizes[min(i, len(sizes) - 1)]
        out.append(rest[start:start + size])
        start, i = start + size, i + 1
    return out


# ---- analysis between batches ---------------------------------------------------------------------
class Verdict(str, Enum):
    """Argo Rollouts' measurement and analysis phases."""
    PASSED = "passed"            # the check passed
    FAILED = "failed"            # the host answered, and the answer is wrong
    INCONCLUSIVE = "inconclusive"  # no data: no answer, a timeout
    ERROR = "error"              # the check itself could not run

    def __str__(self) -> str:
        return self.value


@dataclass
class Analysis:
    """One analysis step over a whole rollout: measurements (one per host per batch) accumulate,
    and after each batch `verdict()` says whether the rollout may go on."""
    limits: AnalysisLimits = AnalysisLimits()
    measurements: list[tuple[str, Verdict, str]] = field(default_factory=list)  # (host, verdict, detail)
    errors_in_a_row: int = 0
    judgement: dict = field(default_factory=dict)  # a canary judgement's figures (judgement.Judgement.to_dict)
    accepted: set[str] = field(default_factory=set)  # inconclusive measurements the operator chose to go on after

    def measure(self, host: str, verdict: Verdict, detail: str = "") -> None:
        self.measurements.append((host, verdict, detail))
        self.errors_in_a_row = self.errors_in_a_row + 1 if verdict is Verdict.ERROR else 0

    @property
    def counts(self) -> Counter:
        return Counter(v for _, v, _ in self.measurements)

    def verdict(self) -> Verdict:
        """Error first (the check is broken: it says nothing about the release), then failed,
        then inconclusive; each only once its limit is exceeded."""
        counts = self.counts
        if self.errors_in_a_row > self.limits.errors:
            return Verdict.ERROR
        if counts[Verdict.FAILED] > self.limits.failures:
            return Verdict.FAILED
        if counts[Verdict.INCONCLUSIVE] > self.limits.inconclusive:
            return Verdict.INCONCLUSIVE
        return Verdict.PASSED

    def summary(self) -> str:
        c = self.counts
        return (f"{c[Verdict.PASSED]} passed, {c[Verdict.FAILED]} failed (limit {self.limits.failures}), "
                f"{c[Verdict.INCONCLUSIVE]} inconclusive (limit {self.limits.inconclusive}), "
                f"{c[Verdict.ERROR]} errors ({self.errors_in_a_row} in a row, limit {self.limits.errors})")


def with_limits(policy: RolloutPolicy, **words: int | None) -> AnalysisLimits:
    """The limits a step uses: its own words win over the tags' limits."""
    given = {k: v for k, v in words.items() if v is not None}
    return replace(policy.limits, **given)
