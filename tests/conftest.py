"""Shared fixtures. Integration tests (marked `lab`) run against the local lab: it is brought up
fresh once per session and taken down at the end."""
from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def interruptible() -> None:
    """preexec_fn of a child process a test will Ctrl-C (SIGINT): a suite started in the
    background by a shell without job control (`cmd &`) runs with SIGINT ignored, children
    inherit that, and Python leaves an ignored SIGINT ignored, so the signal would do nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in item.path.parts:
            item.add_marker(pytest.mark.lab)


@pytest.fixture(scope="session")
def lab():
    """The default estate (environments/local.yaml), up for the whole session."""
    if os.geteuid() != 0:
        pytest.skip("the lab needs root (network and mount namespaces)")
    from orchestrator_lib.controller.inventory import load_inventory
    from orchestrator_lib.lab import Lab

    estate = Lab(load_inventory(ROOT / "environments" / "local.yaml"))
    estate.up(fresh=True, progress=lambda _msg: None)
    yield estate
    estate.down(progress=lambda _msg: None)


@pytest.fixture
def fresh_lab(lab):
    """The lab with every host back at its image state (package versions, LB, firewall): the
    hosts changed in any way since their last reset are reset (Lab.reset_changed), the others
    already are. A full reset boots all 12 hosts (~5 s); most tests change a few."""
    lab.reset_changed()
    return lab
