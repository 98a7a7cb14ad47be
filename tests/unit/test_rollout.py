"""The rollout policy's pure logic: tags, the one failure budget (against Ansible's documented
serial / max_fail_percentage semantics, row by row), canaries, batches, analysis verdicts."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from orchestrator_lib.controller.errors import TransportError
from orchestrator_lib.controller.orchestration import HostResult, RunOptions, Status, plan_batches, run_on_hosts
from orchestrator_lib.controller.orchestration.rollout import (
    Analysis, AnalysisLimits, Canary, FailureBudget, MaxFail, RolloutError, Verdict, choose_canaries, parse_tags,
    plan_rollout)


# ---- Ansible's documented semantics, as reference functions ---------------------------------------------
# docs.ansible.com, "Controlling playbook execution" (serial) and "Error handling" (max_fail_percentage):
# - serial N / "P%" / a list: "Ansible applies the percentage to the total number of hosts in a play";
#   the last size repeats; "no matter how small the percentage, the number of hosts per pass will
#   always be 1 or greater" (its code, pct_to_int, rounds down: 30% of 20 hosts = 6, 6, 6, 2).
# - max_fail_percentage: "if more than 3 of the 10 servers in the first (or any) group of servers
#   failed, the rest of the play would be aborted"; "the percentage set must be exceeded, not equaled"
#   (serial 4, abort when 2 fail: set 49, not 50). Unreachable hosts count as failed.
def ansible_batch_sizes(total: int, serial: list[int | str]) -> list[int]:
    sizes, left, i = [], total, 0
    while left > 0:
        item = serial[min(i, len(serial) - 1)]
        n = max(1, int(int(item[:-1]) * total / 100)) if isinstance(item, str) else item
        sizes.append(min(n, left))
        left, i = left - n, i + 1
    return sizes


def ansible_stops_after(batch_sizes: list[int], failing: set[int], pct: float) -> int | None:
    """The batch (1-based) after which Ansible aborts the play, None if it never does: per batch."""
    start = 0
    for number, size in enumerate(batch_sizes, 1):
        failed = len([i for i in range(start, start + size) if i in failing])
        if failed / size * 100 > pct:
            return number
        start += size
    return None


def ours_stops_after(batch_sizes: list[int], failing: set[int], max_fail: str) -> int | None:
    """Ours: ONE budget over every batch (FailureBudget), of all the scenario's hosts."""
    budget = FailureBudget(MaxFail.parse(max_fail), sum(batch_sizes))
    start = 0
    for number, size in enumerate(batch_sizes, 1):
        budget.charge([str(i) for i in range(start, start + size) if i in failing], f"batch {number}")
        if budget.exceeded:
            return number
        start += size
    return None


# (hosts, batch sizes, failing host indexes, Ansible's max_fail_percentage, Ansible stops after,
#  our @max_fail, we stop after): where the columns differ, README.md says so.
BUDGET_TABLE = [
    # the docs' own examples: more than 3 of 10 fail at 30%; 2 of 4 at 50% is not exceeded, at 49 it is
    (10, [10], {0, 1, 2, 3}, 30, 1, "30%", 1),
    (20, [10], {0, 1, 2, 3}, 30, 1, "30%", None),      # differs: 4 of 20 is within 30% of ALL hosts
    (8, [4], {0, 1}, 50, None, "50%", None),
    (4, [4], {0, 1}, 50, None, "50%", None),
    (4, [4], {0, 1}, 49, 1, "49%", 1),
    (8, [4], {0, 1}, 49, 1, "24%", 1),                 # ours: 2 > 24% of 8 = 1.92
    # the case: batches of 2, a bad host in each of two batches
    (6, [2], {0, 2}, 50, None, "1", 2),                # differs: per batch 1 of 2 never exceeds 50%
    (6, [2], {0, 2}, 49, 1, "0", 1),                   # max_fail 0: both stop at the first failure
    (6, [2], {0, 4}, 50, None, "1", 3),                # the 2nd failure in the last batch: the run fails
    (10, [2], {1, 3, 5}, 50, None, "20%", 3),          # differs: 3 failures > 20% of 10, each batch only 50%
    (10, [1, 3], {0}, 0, 1, "0", 1),
    (10, [1, 3], {3, 4}, 50, None, "10%", 3),          # differs: 2 > 10% of 10, per batch 1 of 3 < 50%
    (10, [1, 3], {3, 4}, 50, None, "2", None),         # a count: 2 failures are within @max_fail(2)
]


@pytest.mark.parametrize("hosts, sizes, failing, pct, ansible_after, max_fail, ours_after", BUDGET_TABLE)
def test_the_budget_against_ansibles_documented_semantics(hosts, sizes, failing, pct, ansible_after,
                                                           max_fail, ours_after):
    batch_sizes = [len(b) for b in plan_batches(list(range(hosts)), sizes if len(sizes) > 1 else sizes[0])]
    assert batch_sizes == ansible_batch_sizes(hosts, sizes)
    assert ansible_stops_after(batch_sizes, failing, pct) == ansible_after
    assert ours_stops_after(batch_sizes, failing, max_fail) == ours_after


# serial rounding: equal where the percentage divides, ours rounds up where it does not (README)
@pytest.mark.parametrize("hosts, serial, ansible, ours", [
    (20, ["30%"], [6, 6, 6, 2], [6, 6, 6, 2]),
    (4, [2], [2, 2], [2, 2]),
    (20, [1, 5, 10], [1, 5, 10, 4], [1, 5, 10, 4]),
    (20, ["10%", "20%", "100%"], [2, 4, 14], [2, 4, 14]),
    (5, ["10%"], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1]),
    (9, ["25%"], [2, 2, 2, 2, 1], [3, 3, 3]),          # differs: Ansible 2.25 -> 2, ours -> 3
])
def test_batch_sizes_against_ansibles_serial(hosts, serial, ansible, ours):
    assert ansible_batch_sizes(hosts, serial) == ansible
    spec = serial if len(serial) > 1 else serial[0]
    assert [len(b) for b in plan_batches(list(range(hosts)), spec)] == ours


@pytest.mark.parametrize("text, total, allowed", [
    ("0", 9, 0), ("1", 9, 1), ("10%", 9, 0), ("10%", 10, 1), ("10%", 19, 1), ("10%", 20, 2),
    ("33.3%", 3, 0), ("34%", 3, 1), ("100%", 7, 7), ("0%", 7, 0),
])
def test_max_fail_allows_what_does_not_exceed_it(text, total, allowed):
    mf = MaxFail.parse(text)
    assert mf.allowed(total) == allowed
    assert not mf.should_stop(allowed, total) and mf.should_stop(allowed + 1, total)


@pytest.mark.parametrize("text", ["-1", "abc", "101%", "1.5", "", "10 %x"])
def test_max_fail_refuses_what_is_not_a_count_or_percentage(text):
    with pytest.raises(RolloutError, match="max_fail"):
        MaxFail.parse(text)


def test_one_budget_charges_each_host_once_across_steps():
    budget = FailureBudget(MaxFail(count=1), 4)
    assert budget.charge(["web1"], "When I update") == ["web1"]
    assert budget.charge(["web1"], "When I restart") == [] and not budget.exceeded
    budget.charge(["web3"], "When I restart")
    assert budget.exceeded and budget.used == 2 and budget.allowed == 1
    assert budget.to_dict()["failed"] == {"web1": "When I update", "web3": "When I restart"}
    assert not FailureBudget(None, 4).exceeded and FailureBudget(None, 4, {"x": ""}).exceeded


@dataclass
class H:
    name: str


def test_unreachable_hosts_count_against_the_budget_in_the_fan_out():
    hosts = [H(f"web{i}") for i in range(1, 7)]

    def task(h):
        if h.name == "web1":
            raise TransportError("web1: unreachable: connection refused")
        return HostResult(h.name, Status.FAILED if h.name == "web3" else Status.OK)

    run = run_on_hosts(hosts, task, label="t", options=RunOptions(batch_size=2, policy=MaxFail(count=1), timeout=None))
    assert [r.status for r in run.results.values()] == [Status.UNREACHABLE, Status.OK, Status.FAILED, Status.OK,
                                                         Status.NOT_ATTEMPTED, Status.NOT_ATTEMPTED]


# ---- tags ----------------------------------------------------------------------------------------------
def test_tags_read_as_policy_and_others_are_left_alone():
    p = parse_tags([("fail_fast", "f:1"), ("batch(1, 5,50%)", "f:2"), ("max_fail(10%)", "f:2"),
                    ("canary(by=hagroup)", "f:3"), ("inconclusive_limit(1)", "f:3")])
    assert (p.batch, str(p.max_fail), p.canary, p.limits) == ("1,5,50%", "10%", Canary(1, "hagroup"),
                                                              AnalysisLimits(0, 1, 4))
    assert p.sources["batch"] == "f:2 @batch(1, 5,50%)"
    assert parse_tags([("serial", "")]).batch == "1"
    assert parse_tags([("canary(2, by=hagroup)", "")]).canary == Canary(2, "hagroup")
    assert parse_tags([("wip", "")]).empty


@pytest.mark.parametrize("tag, words", [
    ("batch(0)", "batch_size '0'"), ("batch", "needs a value"), ("max_fail(x)", "max_fail 'x'"),
    ("canary(by=)", "canary 'by='"), ("serial(2)", "takes no argument"), ("failure_limit(-1)", "whole number"),
])
def test_a_bad_policy_tag_is_one_line_naming_where(tag, words):
    with pytest.raises(RolloutError) as e:
        parse_tags([(tag, "features/x.feature:3")])
    assert str(e.value).startswith(f"features/x.feature:3: @{tag}: ") and words in str(e.value)
    assert "\n" not in str(e.value)


def test_one_kind_twice_at_one_level_is_an_error_and_a_scenario_overrides_its_feature():
    with pytest.raises(RolloutError, match="x.feature:4: @serial: says batch again"):
        parse_tags([("batch(2)", "x.feature:3"), ("serial", "x.feature:4")])
    feature = parse_tags([("batch(2)", "f:1"), ("max_fail(1)", "f:1"), ("failure_limit(2)", "f:1")])
    scenario = parse_tags([("batch(25%)", "f:5"), ("inconclusive_limit(1)", "f:5")])
    merged = scenario.over(feature)
    assert (merged.batch, str(merged.max_fail), merged.limits) == ("25%", "1", AnalysisLimits(2, 1, 4))
    assert merged.sources["batch"] == "f:5 @batch(25%)" and merged.sources["max_fail"] == "f:1 @max_fail(1)"


# ---- canaries and batches ------------------------------------------------------------------------------
FACTS = {"web1": "a", "web2": "b", "web3": "c", "web4": "a", "web5": "b", "web6": "c", "web7": "a",
         "web8": "b", "web9": "c"}
WEB = [H(n) for n in FACTS]


def canaries(canary: Canary, seed: int, hosts=WEB, facts=FACTS) -> list[str]:
    return [h.name for h in choose_canaries(hosts, canary, seed, lambda h: h.name, lambda h, f: facts.get(h.name))]


def test_stratified_canaries_are_one_per_value_and_the_seed_replays_them():
    chosen = canaries(Canary(by="hagroup"), 42)
    assert sorted(FACTS[h] for h in chosen) == ["a", "b", "c"]
    assert canaries(Canary(by="hagroup"), 42) == chosen                  # the same seed: the same hosts
    assert canaries(Canary(by="hagroup"), 42, list(reversed(WEB))) == list(reversed(chosen))  # order-free
    seen = {tuple(canaries(Canary(by="hagroup"), s)) for s in range(30)}
    assert len(seen) > 3                                                  # the seed does choose
    assert len(canaries(Canary(2, "hagroup"), 7)) == 6
    assert len(canaries(Canary(1), 7)) == 1 and canaries(Canary(1), 7) == canaries(Canary(1), 7)


def test_a_host_without_the_fact_is_an_error_not_a_missed_stratum():
    with pytest.raises(RolloutError, match="canary by=hagroup: web9 has no fact hagroup"):
        canaries(Canary(by="hagroup"), 1, facts={k: v for k, v in FACTS.items() if k != "web9"})


def test_the_canaries_are_the_first_batch_then_the_rest_in_order():
    hosts = list(range(9))
    assert plan_rollout(hosts, 2, [3, 7]) == [[3, 7], [0, 1], [2, 4], [5, 6], [8]]
    assert plan_rollout(hosts, "50%", [4]) == [[4], [0, 1, 2, 3, 5], [6, 7, 8]]   # 50% of all 9 = 5
    assert plan_rollout(hosts, None, [4]) == [[4], [0, 1, 2, 3, 5, 6, 7, 8]]
    assert plan_rollout(hosts, 4) == [[0, 1, 2, 3], [4, 5, 6, 7], [8]]


# ---- analysis ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("measured, limits, verdict", [
    ("PP", AnalysisLimits(), Verdict.PASSED),
    ("PF", AnalysisLimits(), Verdict.FAILED),
    ("PF", AnalysisLimits(failures=1), Verdict.PASSED),
    ("PI", AnalysisLimits(), Verdict.INCONCLUSIVE),
    ("PI", AnalysisLimits(inconclusive=1), Verdict.PASSED),
    ("FI", AnalysisLimits(), Verdict.FAILED),                   # failed outranks inconclusive
    ("EEEE", AnalysisLimits(), Verdict.PASSED),                 # 4 errors in a row: at the limit
    ("EEEEE", AnalysisLimits(), Verdict.ERROR),
    ("EEPEEE", AnalysisLimits(errors=2), Verdict.ERROR),
    ("EEPEE", AnalysisLimits(errors=2), Verdict.PASSED),        # a good measurement resets the run
])
def test_analysis_verdicts_with_limits(measured, limits, verdict):
    analysis = Analysis(limits)
    for i, code in enumerate(measured):
        analysis.measure(f"web{i}", {"P": Verdict.PASSED, "F": Verdict.FAILED, "I": Verdict.INCONCLUSIVE,
                                     "E": Verdict.ERROR}[code])
    assert analysis.verdict() is verdict
    assert "limit" in analysis.summary()
