"""`orch lint`: each rule on a bad feature of the corpus (tests/unit/lint_corpus), found at its
line, and the shipped features plus the corpus's good.feature clean. Parsed by behave's parser."""
from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator_lib import cli
from orchestrator_lib.behave.lint import ERROR, WARNING, lint_paths
from tests.conftest import ROOT

CORPUS = Path(__file__).parent / "lint_corpus"

#: file -> [(line, level, words the finding must contain)]
EXPECTED = {
    "block_never_unblocked.feature": [(6, ERROR, 'no later "When I unblock the load balancer"')],
    "unblock_only_in_cleanup.feature": [(8, ERROR, 'only in the cleanup scenario "put the hosts back", line 14')],
    "disable_never_enabled.feature": [(6, ERROR, 'no later "When I enable the hosts in the load balancer backend app"')],
    "enable_other_backend.feature": [(6, ERROR, 'no later "When I enable the hosts in the load balancer backend app"')],
    "update_without_version_check.feature": [(5, ERROR, '"Then the package version for openssl-lab should be ..."')],
    "version_check_on_other_hosts.feature": [(5, ERROR, "no Then after it checks the same hosts"),
                                             (5, ERROR, '"Then the package version for mywebapp should be ..." on the same hosts')],
    "deploy_without_version_check.feature": [(5, ERROR, "not followed by a version assertion")],
    "when_without_then.feature": [(7, ERROR, '"When I reload the service nginx" acts on hosts but no Then after it')],
    "no_prediscovery.feature": [(4, WARNING, "without pre-discovery or a count contract")],
    "undefined_step.feature": [(5, ERROR, 'undefined step "When I restart the servce nginx"')],
}


@pytest.fixture(scope="module")
def findings():
    return lint_paths([CORPUS])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_bad_feature_is_named_at_its_line(findings, name):
    mine = sorted((f.line, f.level, f.message) for f in findings if Path(f.file).name == name)
    assert len(mine) == len(EXPECTED[name]), mine
    for want_line, want_level, words in EXPECTED[name]:
        assert any((line, level) == (want_line, want_level) and words in message for line, level, message in mine), mine


def test_the_good_feature_and_the_shipped_features_are_clean(findings):
    assert [f for f in findings if Path(f.file).name == "good.feature"] == []
    assert lint_paths([ROOT / "features"]) == []


def test_orch_lint_prints_one_line_per_finding_and_exits_1(capsys):
    assert cli.main(["lint", str(CORPUS)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == sum(len(v) for v in EXPECTED.values())
    assert f"{CORPUS / 'undefined_step.feature'}:5: error: undefined step" in "\n".join(lines)
    assert cli.main(["lint", str(ROOT / "features")]) == 0
    assert cli.main(["lint", str(CORPUS / "no_prediscovery.feature")]) == 0, "a warning alone does not fail"


def test_a_feature_behave_cannot_parse_or_a_missing_path_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.feature"
    bad.write_text("Feature: x\n  Scenario: s\n    Given I want to update hosts named web1\n  Examples:\n")
    assert cli.main(["lint", str(bad)]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith(f"{bad}:") and "cannot parse" in out[0]
    assert cli.main(["lint", str(tmp_path / "nope")]) == 2
    assert "no such file or directory" in capsys.readouterr().err
