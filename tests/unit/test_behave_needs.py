"""What pre-flight checks for a scenario, read from the shipped features' steps."""
from behave.parser import parse_file

from orchestrator_lib.behave.needs import needs_of
from orchestrator_lib.controller.deploy.preflight import Needs
from tests.conftest import ROOT


def scenarios(name: str) -> list:
    return list(parse_file(str(ROOT / "features" / name)).walk_scenarios())


def test_the_seed_deploy_needs_its_version_and_the_load_balancer():
    assert needs_of(scenarios("deploy_webapp.feature")[0]) == \
        Needs(packages=(("mywebapp", "4.2.6-3.el5"),), load_balancer=True)


def test_the_rolling_upgrade_needs_its_revision_its_backend_and_a_notification_host():
    assert needs_of(scenarios("rolling_upgrade.feature")[0]) == \
        Needs(packages=(("mywebapp", "4.2.6-3.el5"),), backends=("app",), notify=True, load_balancer=True)


def test_an_outline_needs_the_version_of_each_example_and_a_report_needs_nothing():
    report, *groups = scenarios("openssl_patch.feature")
    assert needs_of(report) == Needs()
    assert {needs_of(g).packages for g in groups} == {(("openssl-lab", "3.0.13-1"),)}
