"""The canary judgement's statistics glue (orchestration/judgement.py): scipy's Mann-Whitney U,
one-sided, judged at the spec's level; the four outcomes; no scipy is a one-line inconclusive."""
import random
import sys

import pytest

from orchestrator_lib.controller.orchestration.judgement import EXTRA, judge_latency, smallest_p
from orchestrator_lib.controller.orchestration.rollout import Verdict

scipy_stats = pytest.importorskip("scipy.stats")


def latencies(seed: int, n: int, median: float) -> list[float]:
    """Skewed, long-tailed samples as a health endpoint gives them (lognormal around `median`)."""
    rng = random.Random(seed)
    return [round(median * rng.lognormvariate(0, 0.4), 2) for _ in range(n)]


def others(n_hosts: int = 5, median: float = 2.0) -> dict[str, list[float]]:
    return {f"web{i}": latencies(100 + i, 20, median) for i in range(2, 2 + n_hosts)}


def test_a_slower_canary_fails_with_the_figures():
    j = judge_latency({"web1": latencies(1, 20, 40.0)}, others(), 0.05)
    assert j.verdict is Verdict.FAILED
    assert j.p is not None and j.p < 1e-6
    d = j.to_dict()
    assert d["canaries"]["samples"] == 20 and d["others"]["samples"] == 100
    assert d["canaries"]["median_ms"] > 20 > d["others"]["median_ms"]
    assert d["others"]["hosts"]["web3"]["samples"] == 20
    assert "Mann-Whitney U p = " in j.detail and "p < 0.05 fails" in j.detail


def test_the_p_value_is_scipys_one_sided_test_on_the_pooled_samples():
    canary, rest = {"web1": latencies(1, 20, 2.2)}, others()
    pooled = [x for s in rest.values() for x in s]
    want = scipy_stats.mannwhitneyu(canary["web1"], pooled, alternative="greater").pvalue
    assert judge_latency(canary, rest, 0.05).p == pytest.approx(want)


@pytest.mark.parametrize("seed", range(5))
def test_a_canary_like_the_others_passes(seed):
    j = judge_latency({"web1": latencies(seed, 20, 2.0)}, others(), 0.01)
    assert j.verdict is Verdict.PASSED, j.detail
    assert j.p >= 0.01


def test_a_faster_canary_is_not_worse():
    assert judge_latency({"web1": latencies(1, 20, 0.5)}, others(), 0.05).verdict is Verdict.PASSED


@pytest.mark.parametrize("n_canary, n_other, alpha, verdict", [
    (1, 1, 0.05, Verdict.INCONCLUSIVE),     # at best p = 1/2
    (2, 3, 0.05, Verdict.INCONCLUSIVE),     # at best p = 1/10
    (3, 4, 0.05, Verdict.FAILED),           # at best p = 1/35 < 0.05: complete separation fails
    (3, 4, 0.01, Verdict.INCONCLUSIVE),     # ...but not at 0.01
])
def test_too_few_samples_to_ever_reach_the_level_is_inconclusive(n_canary, n_other, alpha, verdict):
    j = judge_latency({"web1": [50.0 + i for i in range(n_canary)]}, {"web2": [1.0 + i for i in range(n_other)]}, alpha)
    assert j.verdict is verdict, j.detail
    if verdict is Verdict.INCONCLUSIVE:
        assert j.p is None and "too few samples" in j.reason


def test_smallest_p_is_complete_separation():
    assert smallest_p(3, 4) == pytest.approx(1 / 35)
    assert smallest_p(0, 4) == 1.0


def test_no_samples_on_a_side_is_inconclusive():
    assert judge_latency({}, others(), 0.05).verdict is Verdict.INCONCLUSIVE
    assert judge_latency({"web1": [1.0] * 20}, {}, 0.05).verdict is Verdict.INCONCLUSIVE


def test_identical_samples_pass():
    assert judge_latency({"web1": [2.0] * 20}, {"web2": [2.0] * 20}, 0.05).verdict is Verdict.PASSED


def test_without_scipy_the_judgement_is_inconclusive_in_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "scipy", None)         # `import scipy...` now raises ImportError
    monkeypatch.setitem(sys.modules, "scipy.stats", None)
    j = judge_latency({"web1": latencies(1, 20, 40.0)}, others(), 0.05)
    assert j.verdict is Verdict.INCONCLUSIVE and j.p is None
    assert "scipy is not installed" in j.detail and EXTRA in j.detail and "\n" not in j.detail


def test_the_test_raising_is_an_error(monkeypatch):
    def broken(*a, **k):
        raise ValueError("`x` and `y` must be of nonzero size.\nmore")
    monkeypatch.setattr(scipy_stats, "mannwhitneyu", broken)
    j = judge_latency({"web1": [1.0] * 20}, {"web2": [2.0] * 20}, 0.05)
    assert j.verdict is Verdict.ERROR and "\n" not in j.detail


@pytest.mark.parametrize("alpha", [0, 1, 1.5])
def test_a_level_outside_0_1_is_refused(alpha):
    with pytest.raises(ValueError, match="between 0 and 1"):
        judge_latency({"web1": [1.0]}, {"web2": [2.0]}, alpha)


def test_a_margin_lets_the_canaries_be_that_much_slower():
    canary, rest = {"web1": latencies(1, 40, 2.2)}, others(median=2.0)       # ~10% slower
    assert judge_latency(canary, rest, 0.05).verdict is Verdict.FAILED
    j = judge_latency(canary, rest, 0.05, margin=0.5)
    assert j.verdict is Verdict.PASSED and "by more than 50%" in j.detail and j.to_dict()["margin"] == 0.5
    assert judge_latency({"web1": latencies(1, 20, 40.0)}, rest, 0.05, margin=0.5).verdict is Verdict.FAILED
