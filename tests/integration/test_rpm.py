"""RPM-family hosts on the lab: the package agent's rpm/dnf backend against a real rpm database
and dnf repositories built by the lab, and an estate mixing Debian and RPM web hosts behind one
HAProxy (environments/mixed.yaml) running the shipped deploy features unchanged.

The mixed estate uses the default lab's bridge and addresses (the features name 10.231.0.2), so
it is brought up once for this module while the default estate is down, and the default estate
comes back afterwards for the tests that follow."""
from __future__ import annotations

import pytest

from orchestrator_lib.controller.inventory import load_inventory
from orchestrator_lib.controller.reporting import Outcome
from orchestrator_lib.controller.session import Session
from orchestrator_lib.lab import Lab
from tests.conftest import ROOT
from tests.integration.test_features import behave, blocked, haproxy, health, own_feature

MIXED = ROOT / "environments" / "mixed.yaml"
DEB, RPM = ["web1", "web3"], ["web2", "web4"]
OLD, NEW, BROKEN = "4.2.5-1.el5", "4.2.6-3.el5", "4.2.7-1.el5"


@pytest.fixture(scope="module")
def mixed(lab):
    lab.down(progress=lambda _msg: None)
    estate = Lab(load_inventory(MIXED))
    try:
        estate.up(fresh=True, progress=lambda _msg: None)
        yield estate
    finally:
        estate.down(progress=lambda _msg: None)
        lab.up(fresh=True, progress=lambda _msg: None)


def installed(estate: Lab, host: str) -> str:
    if estate.role(estate.host(host)) == "rpm":
        return estate.exec_in(host, ["rpm", "-q", "--qf", "%{VERSION}-%{RELEASE}", "mywebapp"]).stdout
    return estate.exec_in(host, ["dpkg-query", "-W", "-f=${Version}", "mywebapp"]).stdout


def test_the_rpm_backend_installs_updates_and_downgrades_only_when_asked(mixed):
    mixed.reset(["web5"])
    with Session(MIXED) as session:
        web5 = [session.host("web5")]

        def package(action: str, **args):
            return session.call(web5, "package", action, {"name": "mywebapp", **args}).results["web5"]

        status = package("status", available=True)
        assert status.data["backend"] == "rpm-dnf" and status.data["version"] == OLD
        assert status.data["available"] == [OLD, NEW, BROKEN] and NEW in status.data["available"]
        updated = package("update")                       # no version: the enabled repository's newest
        assert (updated.status.value, updated.after) == ("changed", NEW)
        assert package("update").status.value == "ok"     # converged: nothing to do
        refused = package("update", version=OLD)
        assert refused.status.value == "failed" and "refusing to downgrade" in refused.message
        assert installed(mixed, "web5") == NEW
        down = package("update", version=OLD, downgrade=True)
        assert (down.status.value, down.after) == ("changed", OLD) and installed(mixed, "web5") == OLD
        broken = package("update", version=BROKEN)        # from the disabled lab-proposed repository
        assert (broken.status.value, broken.after) == ("changed", BROKEN)
    mixed.reset(["web5"])


def test_the_mixed_estate_runs_the_shipped_features_and_a_rerun_changes_nothing(mixed, tmp_path):
    mixed.reset()
    env = ("-D", f"env={MIXED}")
    first = behave(tmp_path, "features/deploy_webapp.feature", *env, name="first")
    assert first.rc == 0, first.out
    assert {h: installed(mixed, h) for h in DEB + RPM + ["web5"]} == {**{h: NEW for h in DEB + RPM}, "web5": OLD}
    assert all(health(h)["version"] == NEW for h in DEB + RPM)
    second = behave(tmp_path, "features/deploy_webapp.feature", *env, name="second")
    assert second.rc == 0, second.out
    update = second.step("I update the package mywebapp")
    assert {c.status for c in update.cells.values()} == {Outcome.OK}
    assert all(second.matrix.recap(h).lasting == [] for h in second.matrix.hosts)

    mixed.reset()
    rolling = behave(tmp_path, "features/rolling_upgrade.feature", *env, name="rolling")
    assert rolling.rc == 0, rolling.out
    assert all(health(h)["version"] == NEW for h in DEB + RPM)
    assert all(haproxy(mixed)[h] == ("2", "0") for h in DEB + RPM)


BROKEN_RELEASE = f"""\
Feature: broken rpm release
  Scenario: the broken release on an RPM host
    Given the load balancer has ip address 10.231.0.2
    And I want to update hosts named web2, web4
    When I block the load balancer
    When I deploy revision {BROKEN} of mywebapp
    When I unblock the load balancer
"""


def test_the_broken_rpm_release_fails_the_gate_and_stays_out_of_the_load_balancer(mixed, tmp_path):
    mixed.reset()
    done = behave(tmp_path, *own_feature(tmp_path, "broken", BROKEN_RELEASE), "-D", f"env={MIXED}", "-D", "lint=off")
    assert done.rc != 0 and "Release gate: FAILED" in done.out and "Traceback" not in done.out
    assert done.matrix.bad_hosts() == ["web2", "web4"]
    assert all(installed(mixed, h) == BROKEN and blocked(mixed, h) for h in RPM)
    assert all(haproxy(mixed)[h][0] == "0" for h in RPM) and all(haproxy(mixed)[h][0] == "2" for h in DEB)
