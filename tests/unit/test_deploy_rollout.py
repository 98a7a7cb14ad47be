"""The rollout policy applied by a Deploy (scripted session, no lab): one budget over the batches
of every When, canaries first, analyses between batches, a tag and a step that disagree."""
from __future__ import annotations

import pytest

from orchestrator_lib.controller.deploy import StepOptions as RunOptions
from orchestrator_lib.controller.deploy import rollout
from orchestrator_lib.controller.deploy.rollout import RolloutStopped
from orchestrator_lib.controller.orchestration import HostResult, Status
from orchestrator_lib.controller.orchestration.rollout import Verdict, parse_tags
from orchestrator_lib.controller.reporting import Outcome

from tests.unit.test_deploy_fakes import cells, make_deploy, said

NINE = """\
    name: unit
    hosts:
""" + "".join(f"      web{i}: {{address: 10.0.0.{10 + i}, classes: [roles::web], facts: {{hagroup: {'abc'[(i - 1) % 3]}}}}}\n"
              for i in range(1, 10))


def failing(*bad: str, status: Status = Status.FAILED):
    return lambda h, a: HostResult(h.name, status if h.name in bad else Status.CHANGED, "boom" if h.name in bad else "")


def deploy(tmp_path, tags, replies=None, gates=None, **settings):
    d = make_deploy(tmp_path, replies, text=NINE, **settings)
    d.begin_scenario("f", "s", parse_tags([(t, "f.feature:1") for t in tags]), gates)
    d.begin_step(0, "f.feature:5", "When I update")
    d.narrow(classes=["roles::web"])
    return d


def update(d, options=RunOptions()):
    return d.act(d.hosts(), "package", "update", {"name": "app"}, subject="package app", options=d.step_options(options))


def test_max_fail_1_over_batches_of_2_stops_after_the_batch_of_the_second_failure(tmp_path):
    d = deploy(tmp_path, ["batch(2)", "max_fail(1)"], {"package#update": failing("web2", "web5")})
    with pytest.raises(RolloutStopped, match=r"^rollout stopped after batch 3 of 5: failure budget exceeded: "
                                             r"2 hosts failed, 1 allowed"):
        update(d)
    status = {h: c.status for h, c in cells(d).items()}
    assert [h for h, s in status.items() if s is Outcome.NOT_ATTEMPTED] == ["web7", "web8", "web9"]
    assert d.matrix.scenarios[-1].rollout["budget"]["used"] == 2
    assert [c[1] for c in d.session.calls] == [["web1", "web2"], ["web3", "web4"], ["web5", "web6"]]


def test_max_fail_0_stops_at_the_first_failure_and_unreachable_counts(tmp_path):
    d = deploy(tmp_path, ["batch(2)", "max_fail(0)"], {"package#update": failing("web3", status=Status.UNREACHABLE)})
    with pytest.raises(RolloutStopped, match="after batch 2 of 5: failure budget exceeded: 1 hosts failed, 0 allowed"):
        update(d)


def test_within_the_budget_the_step_passes_and_the_failed_host_leaves_the_scenario(tmp_path):
    d = deploy(tmp_path, ["batch(3)", "max_fail(1)"], {"package#update": failing("web2")})
    update(d)
    assert "web2" not in [h.name for h in d.hosts()] and len(d.hosts()) == 8
    assert any("within the failure budget: web2" in line for line in said(d))
    d.begin_step(1, "f.feature:6", "When I restart")
    d.act(d.hosts(), "service", "restart", {"name": "app"}, options=d.step_options(RunOptions()))
    assert "web2" not in d.session.calls[-1][1]


def test_one_budget_over_the_whens_of_a_scenario(tmp_path):
    d = deploy(tmp_path, ["batch(9)", "max_fail(1)"], {"package#update": failing("web1"),
                                                       "service#restart": failing("web9")})
    update(d)
    d.begin_step(1, "f.feature:6", "When I restart")
    with pytest.raises(RolloutStopped, match="2 hosts failed, 1 allowed"):
        d.act(d.hosts(), "service", "restart", {"name": "app"}, options=d.step_options(RunOptions()))


def test_a_tag_and_a_step_that_disagree_are_one_line_naming_both(tmp_path):
    d = deploy(tmp_path, ["batch(2)"])
    with pytest.raises(RolloutStopped) as e:
        update(d, RunOptions("3"))
    assert str(e.value) == "f.feature:5: 'in batches of 3' disagrees with f.feature:1 @batch(2): say the batches once"
    update(d, RunOptions("2"))  # agreeing is fine


def test_canaries_are_one_per_hagroup_first_and_the_seed_replays_them(tmp_path):
    d = deploy(tmp_path, ["canary(by=hagroup)", "batch(50%)"], seed=1234)
    update(d)
    first = d.session.calls[0][1]
    assert sorted(int(h[3:]) % 3 for h in first) == [0, 1, 2]
    again = deploy(tmp_path, ["canary(by=hagroup)"], seed=1234)
    update(again)
    assert again.session.calls[0][1] == first
    assert d.matrix.scenarios[-1].rollout["seed"] == 1234 and d.matrix.scenarios[-1].rollout["canaries"] == first


def health(bad: dict[str, dict]):
    def reply(h, a):
        if h.name in bad:
            return HostResult(h.name, Status.FAILED, "health#http failed", data={"last": bad[h.name]})
        return HostResult(h.name, Status.OK, "answered 200")
    return reply


def gated(tmp_path, tags, replies, answer=None):
    check = rollout.health_check(make_deploy(tmp_path), "Then after each batch", "f.feature:7", 8080, 60,
                                 "version", "2.0")
    d = deploy(tmp_path, tags, replies, gates={0: [check]})
    return d, check


def test_an_analysis_that_gets_no_data_from_a_host_pauses_the_rollout_without_a_terminal(tmp_path):
    d, check = gated(tmp_path, ["batch(3)"], {"health#http": health({"web5": {"status": None, "error": "timed out"}})})
    with pytest.raises(RolloutStopped, match="after batch 2 of 3: paused: analysis inconclusive"):
        d.act(d.hosts(), "package", "update", {}, options=d.step_options(RunOptions()))
    assert d.matrix.paused.startswith('at "When I update" after batch 2 of 3: analysis inconclusive (f.feature:7)')
    assert d.scenario.rollout.last["f.feature:7"]["web5"][0] is Verdict.INCONCLUSIVE
    assert not d.matrix.passed


def test_a_failed_analysis_stops_and_the_operator_may_continue_an_inconclusive_one(tmp_path):
    d, check = gated(tmp_path, ["batch(3)"], {"health#http": health({"web2": {"status": 200, "version": "1.0"}})})
    with pytest.raises(RolloutStopped, match="after batch 1 of 3: analysis failed"):
        d.act(d.hosts(), "package", "update", {}, options=d.step_options(RunOptions()))
    d, check = gated(tmp_path, ["batch(3)"], {"health#http": health({"web2": {"status": None, "error": "refused"}})})
    r = d.scenario.rollout
    stop = rollout.gate(d, r.gates[0], d.hosts()[:3], 1, 3, ask=lambda q: True)
    assert stop == "" and "the operator chose to continue" in said(d)[-1]
    assert rollout.gate(d, r.gates[0], d.hosts()[:3], 1, 3, ask=lambda q: False).startswith("aborted by the operator")


@pytest.mark.parametrize("status, data, message, verdict", [
    (Status.OK, {}, "", Verdict.PASSED),
    (Status.FAILED, {"last": {"status": 200, "version": "1"}}, "", Verdict.FAILED),
    (Status.FAILED, {"last": {"status": None, "error": "refused"}}, "", Verdict.INCONCLUSIVE),
    (Status.UNREACHABLE, {}, "web1: refused", Verdict.INCONCLUSIVE),
    (Status.FAILED, {}, "timed out after 40 s", Verdict.INCONCLUSIVE),
    (Status.FAILED, {"last": {"rc": 3, "state": "UNKNOWN"}}, "", Verdict.INCONCLUSIVE),
    (Status.FAILED, {"last": {"rc": 2, "state": "CRITICAL"}}, "", Verdict.FAILED),
    (Status.FAILED, {}, "health#http: url must be http(s)", Verdict.ERROR),
])
def test_each_measurement_is_one_of_four(status, data, message, verdict):
    assert rollout.classify(HostResult("web1", status, message, data=data))[0] is verdict


def test_plan_mode_says_the_batches_each_step_would_use(tmp_path):
    d = deploy(tmp_path, ["canary(1)", "batch(4)"], plan=True, seed=7)
    d.step_options(RunOptions())
    line = said(d)[-1]
    assert line.startswith("      plan: batches ") and line.count("|") == 2 and "@batch(4)" in line


def test_limits_in_words_override_the_tags_limits(tmp_path):
    from orchestrator_lib.behave.parsing import parse_limits
    words = parse_limits(" with a failure limit of 1 and an inconclusive limit of 2, an error limit of 3")
    assert words == {"failures": 1, "inconclusive": 2, "errors": 3}
    assert parse_limits("") == {}
    d = deploy(tmp_path, ["batch(3)", "failure_limit(5)", "inconclusive_limit(4)"])
    check = rollout.load_check("Then after each batch the load", "f.feature:9", 2.0, 30, **parse_limits(
        " with an inconclusive limit of 1"))
    limits = rollout.analysis_of(d, check).limits
    assert (limits.failures, limits.inconclusive, limits.errors) == (5, 1, 4)


def test_the_html_report_shows_the_budget_the_batches_and_a_pause(tmp_path):
    from orchestrator_lib.controller.reporting.html import render
    d = deploy(tmp_path, ["batch(2)", "max_fail(1)"], {"package#update": failing("web2", "web5")})
    with pytest.raises(RolloutStopped):
        update(d)
    d.matrix.paused = 'at "When I update" after batch 1 of 5'
    page = render(d.matrix)
    assert "failure budget 2 used of 1 allowed (@max_fail(1) of 9 hosts)" in page
    assert "When I update: web1, web2 | web3, web4 | web5, web6 | web7, web8 | web9 (stopped: failure budget" in page
    assert "Paused at &#34;When I update&#34; after batch 1 of 5" in page or 'Paused at "When I update"' in page


# ---- the canary judgement: latency samples of the first batch against the hosts not reached yet --
def samples(slow: dict[str, float], missing: dict[str, Status] = {}):
    """health#latency answered with 20 samples per host around 2 ms (or `slow[host]` ms)."""
    def reply(h, a):
        if h.name in missing:
            return HostResult(h.name, missing[h.name], "no route" if missing[h.name] is Status.UNREACHABLE
                              else "health#latency: policy denies it")
        base = slow.get(h.name, 2.0)
        return HostResult(h.name, Status.OK, "20 samples", data={"samples_ms": [base + (i % 7) * 0.1 for i in range(20)]})
    return reply


def judged(tmp_path, tags, replies, alpha=0.01, **limits):
    check = rollout.latency_judgement(make_deploy(tmp_path), "Then after the canaries", "f.feature:7", 8080, 20, alpha,
                                      **limits)
    return deploy(tmp_path, tags, replies, gates={0: [check]}, seed=1), check


def test_a_slower_canary_stops_the_rollout_after_its_batch_with_the_figures(tmp_path):
    d, _ = judged(tmp_path, ["canary(1)", "batch(50%)"], {"health#latency": samples({"web3": 40.0})})
    assert [h.name for h in rollout.canaries_of(d, d.hosts())] == ["web3"]   # seed 1
    with pytest.raises(RolloutStopped, match="after batch 1 of 3: analysis failed"):
        d.act(d.hosts(), "package", "update", {}, options=d.step_options(RunOptions()))
    sampled = [c for c in d.session.calls if c[0] == "health#latency"]
    assert len(sampled) == 1 and sampled[0][1] == ["web3"] + [f"web{i}" for i in range(1, 10) if i != 3]
    j = d.matrix.scenarios[-1].rollout["analyses"]["f.feature:7"]["judgement"]
    assert j["verdict"] == "failed" and j["p"] < 0.01 and j["alpha"] == 0.01
    assert (j["canaries"]["samples"], j["others"]["samples"]) == (20, 160)
    assert j["canaries"]["median_ms"] > 40 > 3 > j["others"]["median_ms"]


def test_an_unchanged_canary_passes_and_is_judged_once(tmp_path):
    d, _ = judged(tmp_path, ["canary(1)", "batch(50%)"], {"health#latency": samples({})})
    d.act(d.hosts(), "package", "update", {}, options=d.step_options(RunOptions()))
    assert len([c for c in d.session.calls if c[0] == "health#latency"]) == 1
    assert d.matrix.scenarios[-1].rollout["analyses"]["f.feature:7"]["judgement"]["verdict"] == "passed"


def test_a_canary_without_samples_is_inconclusive_and_a_refused_check_is_taken_again_then_errs(tmp_path):
    d, _ = judged(tmp_path, ["canary(1)", "batch(50%)"],
                  {"health#latency": samples({}, {"web3": Status.UNREACHABLE})})
    with pytest.raises(RolloutStopped, match="paused: analysis inconclusive"):
        d.act(d.hosts(), "package", "update", {}, options=d.step_options(RunOptions()))
    d, _ = judged(tmp_path, ["canary(1)", "batch(50%)"], {"health#latency": samples({}, {"web3": Status.FAILED})},
                  errors=1)
    with pytest.raises(RolloutStopped, match="analysis error"):
        d.act(d.hosts(), "package", "update", {}, options=d.step_options(RunOptions()))
    assert len([c for c in d.session.calls if c[0] == "health#latency"]) == 2   # the error limit 1: taken twice


def test_a_judgement_with_nothing_to_compare_is_refused_before_any_host_changes(tmp_path):
    d, _ = judged(tmp_path, [], {"health#latency": samples({})})
    with pytest.raises(RolloutStopped, match="runs on all 9 hosts in one batch.*nothing was changed"):
        d.act(d.hosts(), "package", "update", {}, options=d.step_options(RunOptions()))
    assert d.session.calls == []


@pytest.mark.parametrize("n, alpha, why", [(1, 0.05, "from 2 to 1000"), (20, 0.0, "between 0 and 1"), (20, 1.0, "between")])
def test_judgement_numbers_out_of_range_are_one_line_naming_the_step(tmp_path, n, alpha, why):
    with pytest.raises(RolloutStopped, match=f"^f.feature:7: .*{why}"):
        rollout.latency_judgement(make_deploy(tmp_path), "Then", "f.feature:7", 8080, n, alpha)


def test_an_inconclusive_host_the_operator_went_on_after_passes_the_step_saying_so(tmp_path):
    d, check = gated(tmp_path, ["batch(3)"], {"health#http": health({"web2": {"status": None, "error": "refused"}})})
    r = d.scenario.rollout
    assert rollout.gate(d, r.gates[0], d.hosts()[:3], 1, 3, ask=lambda q: True) == ""
    d.matrix.start_step("Then", "after each batch", 7)
    rollout.finish_analysis(d, check)
    cell = d.matrix.scenarios[-1].steps[-1].cells["web2"]
    assert cell.status is Outcome.OK and "inconclusive" in cell.message and "the operator chose to continue" in cell.message


def test_the_html_report_shows_the_judgements_figures_and_plain_analyses_still_render(tmp_path):
    from orchestrator_lib.controller.reporting.html import render
    d, _ = judged(tmp_path, ["canary(1)", "batch(50%)"], {"health#latency": samples({"web3": 40.0})})
    with pytest.raises(RolloutStopped):
        d.act(d.hosts(), "package", "update", {}, options=d.step_options(RunOptions()))
    j = d.matrix.scenarios[-1].rollout["analyses"]["f.feature:7"]["judgement"]
    page = render(d.matrix)
    assert "Canary judgement (f.feature:7)" in page and f"p = {j['p']:.3g}" in page
    assert '<td class="samples">160</td>' in page and f'<td class="median">{j["canaries"]["median_ms"]}</td>' in page
    plain, _ = gated(tmp_path, ["batch(3)"], {"health#http": health({"web2": {"status": 200, "version": "1.0"}})})
    with pytest.raises(RolloutStopped):
        plain.act(plain.hosts(), "package", "update", {}, options=plain.step_options(RunOptions()))
    assert "analysis f.feature:7: failed" in render(plain.matrix) and "Canary judgement" not in render(plain.matrix)


def test_plan_mode_says_the_batches_of_a_steps_own_words_without_any_tag(tmp_path):
    d = deploy(tmp_path, [], plan=True)
    d.step_options(RunOptions("4"))
    assert said(d)[-1] == "      plan: batches web1, web2, web3, web4 | web5, web6, web7, web8 | web9"
