"""A scenario's targets (deploy/targets.py) against a real estate file: a typo in a name never
changes which hosts a deploy updates, and each `matching` step is its own expression."""
from __future__ import annotations

import pytest

from orchestrator_lib.controller.errors import DiscoveryError, FilterError

from tests.unit.test_deploy_fakes import make_deploy


def test_a_host_named_in_a_step_that_the_estate_lacks_fails_that_step(tmp_path):
    d = make_deploy(tmp_path)
    with pytest.raises(FilterError, match=r"^unknown host 'wbe2' \(did you mean 'web2'\?\)"):
        d.narrow(identities=["web1", "wbe2"])
    with pytest.raises(FilterError, match=r"^unknown fact hagrup"):
        d.narrow(facts=["hagrup=a"])


def test_a_bare_word_the_estate_lacks_fails_that_step(tmp_path):
    d = make_deploy(tmp_path)
    with pytest.raises(FilterError, match=r"^unknown name 'wbe3' \(did you mean 'web3'\?\)"):
        d.narrow(compounds=["roles::web and not wbe3"])
    with pytest.raises(DiscoveryError, match="^no hosts chosen"):  # the refused filter was not kept
        d.hosts()
    assert d.session.calls == []


def test_each_matching_step_is_parsed_alone_and_its_error_quotes_it_as_written(tmp_path):
    d = make_deploy(tmp_path)
    d.narrow(compounds=["roles::web"])
    with pytest.raises(FilterError) as caught:
        d.narrow(compounds=["hagroup=a) or (hagroup=b"])
    assert str(caught.value) == '-S "hagroup=a) or (hagroup=b": expected \'and\', \'or\' or the end at column 10, found \')\''
    d = make_deploy(tmp_path)
    d.narrow(compounds=["roles::web", "not hagroup=b"])
    assert [h.name for h in d.hosts()] == ["web1", "web3"]
