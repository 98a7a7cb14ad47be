"""Fixtures the integration tests share: a Session on the lab's default estate."""
from __future__ import annotations

import pytest

from orchestrator_lib.controller.session import Session
from tests.conftest import ROOT


@pytest.fixture
def session(fresh_lab):
    """A Session on a freshly reset lab; its connections close at the end of the test."""
    with Session(ROOT / "environments" / "local.yaml") as s:
        yield s
