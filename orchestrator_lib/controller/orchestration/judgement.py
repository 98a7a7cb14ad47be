"""The canary judgement: are the canaries' latencies worse than those of the hosts not updated yet?
A one-sided Mann-Whitney U test (scipy.stats.mannwhitneyu, alternative "greater": no assumption
about the shape of the latency distribution, which is skewed and long-tailed), judged at the
spec's significance level. Pure logic over samples in milliseconds; the deploy layer collects them.

"Worse" may allow a margin (`by more than 20%`): the test is then of the canaries' samples against
the others' multiplied by 1.2, so a canary must be shown slower than that to fail (a shift on the
log scale: latencies vary by factors, not by fixed milliseconds).

The four outcomes, as every analysis has them: passed (not shown to be slower), failed (slower,
p < alpha), inconclusive (no judgement possible: scipy is not installed, a side gave no samples,
or so few that even complete separation could not reach p < alpha), error (the test itself raised).
scipy is an optional extra (`pip install 'orchestrator-lib[analysis]'`): without it the judgement
is inconclusive, so a rollout pauses for a person rather than going on unjudged."""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from .rollout import Verdict

#: what to install when scipy is missing
EXTRA = "pip install 'orchestrator-lib[analysis]'"


@dataclass(frozen=True)
class Side:
    """One side of the comparison: its hosts' samples (ms), pooled."""
    hosts: Mapping[str, Sequence[float]]

    @property
    def pooled(self) -> list[float]:
        return [x for samples in self.hosts.values() for x in samples]

    @property
    def median(self) -> float | None:
        pooled = self.pooled
        return statistics.median(pooled) if pooled else None

    def to_dict(self) -> dict[str, Any]:
        return {"hosts": {h: {"samples": len(s), "median_ms": _round(statistics.median(s) if s else None)}
                          for h, s in self.hosts.items()},
                "samples": len(self.pooled), "median_ms": _round(self.median)}

    def describe(self) -> str:
        median = self.median
        return f"median {median:.2f} ms of {len(self.pooled)} samples" if median is not None else "no samples"


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    reason: str                       # one line: why this verdict
    alpha: float
    canaries: Side
    others: Side
    p: float | None = None
    notes: tuple[str, ...] = field(default=())
    margin: float = 0.0               # the fraction the canaries may be slower by (0.2: 20%)

    @property
    def detail(self) -> str:
        """One line with the figures: the matrix cell's and the console's."""
        p = f", Mann-Whitney U p = {self.p:.3g}" if self.p is not None else ""
        margin = f" by more than {self.margin:.0%}" if self.margin else ""
        return (f"{self.reason}: canaries {self.canaries.describe()}, other hosts {self.others.describe()}{p} "
                f"(slower{margin} at p < {self.alpha:g} fails)")

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict.value, "reason": self.reason, "test": "Mann-Whitney U, one-sided (greater)",
                "p": self.p, "alpha": self.alpha, "margin": self.margin, "canaries": self.canaries.to_dict(),
                "others": self.others.to_dict(), "notes": list(self.notes)}


def smallest_p(n_canary: int, n_other: int) -> float:
    """The smallest one-sided p-value the exact test can give with these sample counts: every
    canary sample above every other one, 1 / C(n1 + n2, n1)."""
    if n_canary == 0 or n_other == 0:
        return 1.0
    return 1.0 / math.comb(n_canary + n_other, n_canary)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def judge_latency(canaries: Mapping[str, Sequence[float]], others: Mapping[str, Sequence[float]],
                  alpha: float, notes: Sequence[str] = (), margin: float = 0.0) -> Judgement:
    """Judge the canaries' latency samples (ms, per host) against the other hosts' (allowing the
    canaries to be slower by the fraction `margin`)."""
    if not 0 < alpha < 1:
        raise ValueError(f"p < {alpha:g}: the significance level must be between 0 and 1")
    if not 0 <= margin <= 10:
        raise ValueError(f"a margin of {margin:.0%}: give 0% to 1000%")
    c, o = Side(dict(canaries)), Side(dict(others))

    def verdict(v: Verdict, reason: str, p: float | None = None) -> Judgement:
        return Judgement(v, reason, alpha, c, o, p, tuple(notes), margin)

    try:
        from scipy.stats import mannwhitneyu
    except ImportError:
        return verdict(Verdict.INCONCLUSIVE, f"no judgement: scipy is not installed ({EXTRA})")
    n1, n2 = len(c.pooled), len(o.pooled)
    if not n1 or not n2:
        return verdict(Verdict.INCONCLUSIVE, f"no data: {'the canaries' if not n1 else 'the other hosts'} gave no samples")
    if smallest_p(n1, n2) >= alpha:
        return verdict(Verdict.INCONCLUSIVE, f"too few samples: with {n1} and {n2} the test cannot reach p < {alpha:g} "
                                             f"(at best p = {smallest_p(n1, n2):.3g})")
    try:
        p = float(mannwhitneyu(c.pooled, [x * (1 + margin) for x in o.pooled], alternative="greater").pvalue)
    except (ValueError, TypeError, ArithmeticError) as e:
        return verdict(Verdict.ERROR, f"the test could not run: {' '.join(str(e).split())[:200]}")
    if math.isnan(p):
        return verdict(Verdict.INCONCLUSIVE, "no judgement: the test gave no p-value")
    if p < alpha:
        return verdict(Verdict.FAILED, f"the canaries are slower{f' by more than {margin:.0%}' if margin else ''}", p)
    return verdict(Verdict.PASSED, f"the canaries are not shown to be slower{f' by more than {margin:.0%}' if margin else ''}", p)
