"""RPM-family and systemd hosts on the lab: the package agent's rpm/dnf backend against a real rpm
database and dnf repositories built by the lab, the service agent's systemd backend against a host
whose PID 1 is systemd, and an estate mixing Debian and RPM web hosts, runit and systemd, behind one
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
DEB, RPM, SYSTEMD = ["web1", "web3"], ["web2", "web4"], ["web6"]
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
    mixed.reset_changed()
    env = ("-D", f"env={MIXED}")
    first = behave(tmp_path, "features/deploy_webapp.feature", *env, name="first")
    assert first.rc == 0, first.out
    deployed = DEB + RPM + SYSTEMD
    assert {h: installed(mixed, h) for h in deployed + ["web5"]} == {**{h: NEW for h in deployed}, "web5": OLD}
    assert all(health(h)["version"] == NEW for h in deployed)
    # web6's new version serves because systemd restarted its unit (the package never restarts it)
    assert first.step("I restart the service mywebapp").cells["web6"].status is Outcome.CHANGED
    assert mixed.exec_in("web6", ["systemctl", "is-active", "mywebapp"]).stdout.strip() == "active"
    second = behave(tmp_path, "features/deploy_webapp.feature", *env, name="second")
    assert second.rc == 0, second.out
    update = second.step("I update the package mywebapp")
    assert {c.status for c in update.cells.values()} == {Outcome.OK}
    assert all(second.matrix.recap(h).lasting == [] for h in second.matrix.hosts)

    mixed.reset_changed()
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
    mixed.reset_changed()
    done = behave(tmp_path, *own_feature(tmp_path, "broken", BROKEN_RELEASE), "-D", f"env={MIXED}", "-D", "lint=off",
                  "-D", "service_wait=5")   # the restart's readiness wait, 30 s by default
    assert done.rc != 0 and "Release gate: FAILED" in done.out and "Traceback" not in done.out
    assert "readiness check, 5 s allowed" in done.out, done.out
    assert done.matrix.bad_hosts() == ["web2", "web4"]
    assert all(installed(mixed, h) == BROKEN and blocked(mixed, h) for h in RPM)
    assert all(haproxy(mixed)[h][0] == "0" for h in RPM) and all(haproxy(mixed)[h][0] == "2" for h in DEB)


def test_the_systemd_backend_runs_the_app_as_a_unit_on_a_host_whose_pid_1_is_systemd(mixed):
    """web6 runs systemd as PID 1 (lab: {service_manager: systemd}): the service agent picks its
    systemd backend and each action leaves the unit as systemd itself reports it."""
    def unit(*query: str) -> str:
        return mixed.exec_in("web6", ["systemctl", *query, "mywebapp"]).stdout.strip()

    assert mixed.exec_in("web6", ["cat", "/proc/1/comm"]).stdout.strip() == "systemd"
    with Session(MIXED) as session:
        web6 = [session.host("web6")]

        def service(action: str, name: str = "mywebapp"):
            return session.call(web6, "service", action, {"name": name}).results["web6"]

        status = service("status")
        assert (status.data["backend"], status.data["running"], status.after) == ("systemd", True, "running")
        assert service("status", "no-such-unit").after == "absent"
        stopped = service("stop")
        assert (stopped.status.value, unit("is-active")) == ("changed", "inactive")
        assert service("stop").status.value == "ok"
        started = service("start")
        assert (started.status.value, unit("is-active")) == ("changed", "active")
        assert health("web6")["version"] == OLD  # ready when start returns (the unit's ExecStartPost)
        restarted = service("restart")
        assert restarted.status.value == "changed" and restarted.data["pid"] != started.data["pid"]
        assert unit("show", "-p", "MainPID", "--value") == str(restarted.data["pid"])
        disabled = service("disable")
        assert (disabled.status.value, unit("is-enabled"), unit("is-active")) == ("changed", "disabled", "active")
        assert service("disable").status.value == "ok"
        enabled = service("enable")
        assert (enabled.status.value, unit("is-enabled")) == ("changed", "enabled")


def test_a_half_installed_rpm_package_is_reported_and_repaired_to_the_version_asked_for(mixed):
    """rpm's half-installed package: an upgrade interrupted between installing the new package and
    erasing the old leaves both in the rpm database. Made here as dnf's own tests make it
    (ci-dnf-stack remove-duplicates.feature): `rpm -i` of the newer package next to the older."""
    mixed.reset(["web5"])
    made = mixed.exec_in("web5", ["rpm", "-i", "--replacefiles", f"/srv/rpm/main/mywebapp-{NEW}.noarch.rpm"])
    assert made.returncode == 0, made.stderr
    assert sorted(mixed.exec_in("web5", ["rpm", "-q", "mywebapp"]).stdout.split()) == [
        f"mywebapp-{OLD}.noarch", f"mywebapp-{NEW}.noarch"]
    with Session(MIXED) as session:
        web5 = [session.host("web5")]

        def package(action: str, **args):
            return session.call(web5, "package", action, {"name": "mywebapp", **args}).results["web5"]

        status = package("status")
        assert (status.data["state"], status.data["version"]) == ("duplicated", None)
        assert "half-installed" in status.message and OLD in status.message and NEW in status.message
        refused = package("update", version=OLD)  # the newer files are on disk: going back is a downgrade
        assert refused.status.value == "failed" and "refusing to downgrade" in refused.message
        assert package("status").data["state"] == "duplicated"
        repaired = package("update", version=NEW)
        assert (repaired.status.value, repaired.after) == ("changed", NEW) and "repaired" in repaired.message
        assert package("update", version=NEW).status.value == "ok"
    assert mixed.exec_in("web5", ["rpm", "-q", "mywebapp"]).stdout.split() == [f"mywebapp-{NEW}.noarch"]
    assert mixed.exec_in("web5", ["cat", "/usr/lib/mywebapp/VERSION"]).stdout.strip() == NEW
    assert mixed.exec_in("web5", ["dnf", "-q", "-C", "check", "--duplicates"]).stdout.strip() == ""
    mixed.reset(["web5"])


def test_a_failed_dpkg_configure_names_dpkg_s_reason_and_a_rerun_repairs_it(mixed):
    """The postinst of the new version fails for real (its runit link exists, dangling): the
    agent's message carries dpkg's own line, not only apt's `Sub-process ... returned an error
    code (1)`; the package is left half-configured, and once the cause is gone the same update
    configures it."""
    mixed.reset(["web3"])
    mixed.exec_in("web3", ["sh", "-c", "rm /etc/service/mywebapp && ln -s /nonexistent /etc/service/mywebapp"])
    with Session(MIXED) as session:
        web3 = [session.host("web3")]

        def package(action: str, **args):
            return session.call(web3, "package", action, {"name": "mywebapp", **args}).results["web3"]

        failed = package("update", version=NEW)
        assert failed.status.value == "failed"
        assert "dpkg: error processing package mywebapp" in failed.message
        assert "post-installation script" in failed.message and "half-configured" in failed.message
        assert package("status").data["state"] == "half-configured"
        mixed.exec_in("web3", ["rm", "/etc/service/mywebapp"])
        fixed = package("update", version=NEW)
        assert (fixed.status.value, fixed.after) == ("changed", NEW)
    assert installed(mixed, "web3") == NEW
    mixed.reset(["web3"])
