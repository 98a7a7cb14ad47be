"""The behave layer against the lab: the shipped deploys run as an operator runs them (behave in
a subprocess), and the tests check both what the deploy reports (exit code, JSON matrix) and what
the hosts really are afterwards (dpkg, iptables, HAProxy, the apps' own /health)."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from orchestrator_lib.lab import Lab
from orchestrator_lib.controller.reporting import Outcome, ResultMatrix

ROOT = Path(__file__).resolve().parents[2]
WEB = [f"web{i}" for i in range(1, 10)]
DE = ["web1", "web2", "web3", "web4"]          # class roles::web, country=de (also cluster alfa)
OLD, NEW = "4.2.5-1.el5", "4.2.6-3.el5"


@dataclass
class Done:
    rc: int
    out: str
    matrix: ResultMatrix | None

    def step(self, text: str, scenario: int = 0):
        return next(s for s in self.matrix.scenarios[scenario].steps if text in s.name)


def behave(tmp_path: Path, *args: str, name: str = "report") -> Done:
    report = tmp_path / f"{name}.json"
    done = subprocess.run([sys.executable, "-m", "behave", *args, "-D", f"report={report}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    matrix = ResultMatrix.read_json(report) if report.exists() else None
    return Done(done.returncode, done.stdout + done.stderr, matrix)


# ---- the hosts' real state, read around the deployer ---------------------------------------------
def version(lab: Lab, host: str, package: str = "mywebapp") -> str:
    return lab.exec_in(host, ["dpkg-query", "-W", "-f=${Version}", package]).stdout


def blocked(lab: Lab, host: str) -> bool:
    return "deployer-block-10.231.0.2" in lab.exec_in(host, ["iptables", "-S", "INPUT"]).stdout


def haproxy(lab: Lab) -> dict[str, tuple[str, str]]:
    """{server: (op state, admin state)}: op 2 = UP, 0 = DOWN; admin 0 = ready, 1 = maint."""
    out = lab.exec_in("lb1", ["sh", "-c", "echo 'show servers state app' | socat stdio /run/haproxy/admin.sock"]).stdout
    return {f[3]: (f[5], f[6]) for f in (line.split() for line in out.splitlines()[2:]) if len(f) > 6}


def http_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=3) as reply:
        return json.loads(reply.read())


def health(host: str, port: int = 8080) -> dict:
    return http_json(f"http://10.231.0.{10 + int(host[3:])}:{port}/health")  # type: ignore[return-value]


def served_by_lb(count: int = 18) -> Counter:
    hosts: Counter = Counter()
    for _ in range(count):
        with urllib.request.urlopen("http://10.231.0.2/", timeout=3) as reply:
            hosts[reply.read().decode().split()[-1]] += 1
    return hosts


def snapshot(lab: Lab, hosts: list[str] = WEB) -> dict:
    """Everything a deploy could change: packages, firewall, service processes, HAProxy."""
    script = ("dpkg-query -W -f='${Package} ${Version}\\n' mywebapp openssl-lab; iptables -S INPUT; "
              "sv status mywebapp nginx | grep -o 'pid [0-9]*'")
    return {"hosts": {h: lab.exec_in(h, ["sh", "-c", script]).stdout for h in hosts}, "haproxy": haproxy(lab)}


# ---- the shipped features ------------------------------------------------------------------------------
def test_seed_deploy_updates_the_german_hosts_and_a_second_run_changes_nothing(fresh_lab, tmp_path):
    first = behave(tmp_path, "features/deploy_webapp.feature", name="first")
    assert first.rc == 0, first.out
    assert first.matrix.passed and first.matrix.hosts[:4] == DE
    assert {h: version(fresh_lab, h) for h in ("web1", "web4", "web5")} == {"web1": NEW, "web4": NEW, "web5": OLD}
    assert all(health(h)["version"] == NEW for h in DE)
    assert not any(blocked(fresh_lab, h) for h in DE)
    assert all(op == "2" for op, _ in haproxy(fresh_lab).values())
    assert f"web1: changed package mywebapp {OLD} -> {NEW}" in first.out
    assert "Release gate: PASSED" in first.out

    second = behave(tmp_path, "features/deploy_webapp.feature", name="second")
    assert second.rc == 0, second.out
    update = second.step("I update the package mywebapp")
    assert {h: c.status for h, c in update.cells.items()} == {h: Outcome.OK for h in DE}
    assert all(second.matrix.recap(h).lasting == [] for h in second.matrix.hosts)
    assert "service#restart: not needed" in second.out


def readme_gherkin() -> str:
    """The Gherkin at the top of README.md, as a reader copies it."""
    return re.search(r"```gherkin\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)


def test_the_readme_gherkin_word_for_word_passes_and_the_broken_release_stays_out_of_reach(fresh_lab, tmp_path):
    """`When I update the package mywebapp` (no version) means the repository's release, 4.2.6-3.el5:
    the broken 4.2.7-1.el5 sits in the NotAutomatic `proposed` suite, reached only by version."""
    text = readme_gherkin()
    assert (ROOT / "features" / "update_production.feature").read_text() == text
    done = behave(tmp_path, *own_feature(tmp_path, "readme", text))
    assert done.rc == 0, done.out
    assert {h: version(fresh_lab, h) for h in (*DE, "web5")} == {**{h: NEW for h in DE}, "web5": OLD}
    assert not any(blocked(fresh_lab, h) for h in DE)
    policy = fresh_lab.exec_in("web5", ["apt-cache", "policy", "mywebapp"]).stdout
    assert f"Candidate: {NEW}" in policy and "4.2.7-1.el5" in policy


def test_rolling_upgrade_of_cluster_alfa_notifies_ops(fresh_lab, tmp_path):
    junit = tmp_path / "junit"
    done = behave(tmp_path, "features/rolling_upgrade.feature", "--junit", f"--junit-directory={junit}")
    assert done.rc == 0, done.out
    assert all(health(h)["version"] == NEW for h in DE) and health("web5")["version"] == OLD
    assert all(haproxy(fresh_lab)[h] == ("2", "0") for h in DE)
    deploy = done.step("I deploy revision")
    assert {c.status for c in deploy.cells.values()} == {Outcome.CHANGED}
    messages = http_json("http://10.231.0.21:8025/messages")
    assert {"recipient": "ops@example.com", "message": f"upgraded 4 hosts of cluster alfa to {NEW}"}.items() \
        <= messages[-1].items()
    assert list(junit.glob("TESTS-*.xml"))


def test_openssl_patch_stops_at_the_first_failing_group_then_converges(fresh_lab, tmp_path):
    """@fail_fast: HA group b fails (web5 pinned), so group c is not touched; once fixed, the
    re-run patches b and c and leaves a alone."""
    fresh_lab.exec_in("web5", ["apt-mark", "hold", "openssl-lab"])
    failed = behave(tmp_path, "features/openssl_patch.feature", name="failed")
    assert failed.rc != 0
    assert "Summary of version: 3.0.11-1 = 9" in failed.out
    assert [s.status for s in failed.matrix.scenarios] == ["passed", "passed", "failed", "skipped"]
    assert failed.matrix.bad_hosts() == ["web5"]
    assert [version(fresh_lab, h, "openssl-lab") for h in ("web1", "web2", "web5", "web3")] == \
        ["3.0.13-1", "3.0.13-1", "3.0.11-1", "3.0.11-1"]

    fresh_lab.exec_in("web5", ["apt-mark", "unhold", "openssl-lab"])
    rerun = behave(tmp_path, "features/openssl_patch.feature", name="rerun")
    assert rerun.rc == 0, rerun.out
    assert [s.status for s in rerun.matrix.scenarios] == ["passed"] * 4
    assert all(version(fresh_lab, h, "openssl-lab") == "3.0.13-1" for h in WEB)
    assert all(health(h, 80)["openssl"] == "3.0.13-1" for h in WEB)
    assert rerun.matrix.recap("web1").lasting == [] and rerun.matrix.recap("web9").lasting


# ---- failures: the gate, and the hosts left out of the load balancer ------------------------------------
def test_a_host_that_fails_stays_blocked_the_rest_serve_and_a_rerun_converges(fresh_lab, tmp_path):
    fresh_lab.exec_in("web3", ["apt-mark", "hold", "mywebapp"])           # web3 cannot take the update
    failed = behave(tmp_path, "features/deploy_webapp.feature", name="failed")
    assert failed.rc != 0
    assert "package#update did not succeed on web3" in failed.out and "Traceback" not in failed.out
    assert failed.matrix.bad_hosts() == ["web3"]
    update = failed.step("I update the package mywebapp")
    assert update.cells["web3"].status is Outcome.FAILED and update.cells["web1"].status is Outcome.CHANGED
    assert failed.step("I unblock").cells["web3"].status is Outcome.SKIPPED
    assert blocked(fresh_lab, "web3") and haproxy(fresh_lab)["web3"][0] == "0"
    assert set(served_by_lb()) <= {"web5", "web6", "web7", "web8", "web9"}

    fresh_lab.exec_in("web3", ["apt-mark", "unhold", "mywebapp"])         # the fix
    rerun = behave(tmp_path, "features/deploy_webapp.feature", name="rerun")
    assert rerun.rc == 0, rerun.out
    update = rerun.step("I update the package mywebapp")
    assert {h: c.status.value for h, c in update.cells.items()} == \
        {"web1": "ok", "web2": "ok", "web3": "changed", "web4": "ok"}
    assert all(version(fresh_lab, h) == NEW and not blocked(fresh_lab, h) for h in DE)
    assert set(served_by_lb(36)) == set(WEB)


def test_an_unreachable_host_stops_the_deploy_before_anything_changes(lab, tmp_path):
    before = snapshot(lab, ["web1", "web2", "web4"])["hosts"]
    lab.stop_host("web3")
    try:
        done = behave(tmp_path, "features/deploy_webapp.feature")
    finally:
        lab.start_host("web3")
    assert done.rc != 0
    assert "1 of 4 discovered hosts did not answer: web3: unreachable" in done.out
    assert "Traceback" not in done.out
    assert done.matrix.bad_hosts() == ["web3"]
    assert snapshot(lab, ["web1", "web2", "web4"])["hosts"] == before


def test_plan_mode_reports_what_would_change_and_changes_nothing(fresh_lab, tmp_path):
    before = snapshot(fresh_lab)
    for feature in ("deploy_webapp", "rolling_upgrade", "openssl_patch"):
        done = behave(tmp_path, f"features/{feature}.feature", "-D", "plan", name=feature)
        assert done.rc == 0, done.out
        assert done.matrix.plan and "nothing was changed" in done.out
    assert snapshot(fresh_lab) == before
    plan = ResultMatrix.read_json(tmp_path / "deploy_webapp.json")
    update = next(s for s in plan.scenarios[0].steps if "update the package" in s.name)
    assert {(c.status, c.before, c.after) for c in update.cells.values()} == {(Outcome.WOULD_CHANGE, OLD, NEW)}


def test_another_estate_file_works_and_notification_fails_over(lab, tmp_path):
    """An estate file that is not a lab (no `lab:` section) naming some of the lab's hosts: the
    same feature runs unchanged; with notify1 down the message goes through notify2."""
    lab.reset(["web1", "web2", "web3", "web4", "lb1"])
    state = ROOT / ".lab" / "local"
    hosts = {"lb1": ("10.231.0.2", "[roles::lb]", "{country: de}")}
    hosts |= {h: (f"10.231.0.{10 + i}", "[roles::web]", f"{{cluster: alfa, hagroup: x{i}}}") for i, h in enumerate(DE, 1)}
    hosts |= {"notify1": ("10.231.0.21", "[roles::notify]", "{}"), "notify2": ("10.231.0.22", "[roles::notify]", "{}")}
    estate = tmp_path / "other.yaml"
    estate.write_text(f"name: other\nknown_hosts: {state / 'known_hosts'}\ndefaults: {{user: deploy, become: sudo, key: {state / 'id_ed25519'}}}\n"
                      "hosts:\n" + "".join(f"  {h}: {{address: {a}, classes: {c}, facts: {f}}}\n"
                                           for h, (a, c, f) in hosts.items())
                      + "groups:\n  notify: [notify1, notify2]\n")
    lab.stop_host("notify1")
    try:
        done = behave(tmp_path, "features/rolling_upgrade.feature", "-D", f"env={estate}")
    finally:
        lab.start_host("notify1")
    assert done.rc == 0, done.out
    assert "notify1 could not notify" in done.out and "notified through notify2" in done.out
    assert http_json("http://10.231.0.22:8025/messages")[-1]["message"] == f"upgraded 4 hosts of cluster alfa to {NEW}"


def own_feature(tmp_path: Path, name: str, text: str) -> list[str]:
    """behave's paths for a feature of the test's own (steps/ is found from the first path)."""
    feature = tmp_path / f"{name}.feature"
    feature.write_text(text)
    return ["features/", str(feature), "--include", name]


PLANNED = """\
Feature: planned
  Scenario: options and versions the real run would refuse
    Given I want to update hosts named web1, web2
    When I update the package mywebapp to {version}{options}
    Then the package version for mywebapp should be {version}
"""


def test_plan_mode_refuses_the_options_and_the_versions_the_real_run_refuses(lab, tmp_path):
    """Plan mode said "Plan complete ... would change" for all of these."""
    for options, error in ((" in batches of 0", "batch_size '0': expected a positive count"),
                           (" in batches of abc", "batch_size 'abc': expected a positive count"),
                           (" with 0 tries", "tries '0': expected a whole number from 1 to 100"),
                           (" with 2 tries with 3 tries", "an option given more than once: 'with 2 tries', 'with 3 tries'")):
        text = PLANNED.format(version=NEW, options=options)
        done = behave(tmp_path, *own_feature(tmp_path, "planned", text), "-D", "plan")
        assert done.rc != 0 and error in done.out and "Plan INCOMPLETE" in done.out, done.out
        assert done.matrix.scenarios[0].steps[-1].cells == {}, "no host was asked"
    done = behave(tmp_path, *own_feature(tmp_path, "planned", PLANNED.format(version="9.9.9", options="")), "-D", "plan")
    assert done.rc != 0 and "Plan INCOMPLETE" in done.out, done.out
    assert "package#update did not succeed on web1, web2" in done.out, done.out  # the hosts' own dry run says why:
    assert "mywebapp 9.9.9 is not available from the package sources (available: " in done.out, done.out
    assert "4.2.6-3.el5" in done.out and "a dry run reads the index as it is" in done.out, done.out


# ---- no lab needed --------------------------------------------------------------------------------------
def test_dry_run_lists_the_steps_without_a_session(tmp_path):
    done = behave(tmp_path, "--dry-run", "features/", "-D", "env=/nonexistent.yaml")
    assert done.rc == 0, done.out
    assert "When I block the load balancer" in done.out and " untested" in done.out
    assert done.matrix is None  # the hooks (and so the Session) never ran


def test_setup_errors_and_undefined_steps_fail_in_one_line(tmp_path):
    bad_env = behave(tmp_path, "features/deploy_webapp.feature", "-D", "env=nope")
    assert bad_env.rc != 0 and "Traceback" not in bad_env.out
    assert "HOOK-ERROR in before_feature: SetupFailed: environments/nope.yaml: unknown environment 'nope'" in bad_env.out
    assert bad_env.matrix.error and not bad_env.matrix.passed
    feature = tmp_path / "undefined.feature"
    feature.write_text("Feature: t\n  Scenario: s\n    When I frobnicate the hosts\n")
    # behave finds steps/ from its first path, so the repository's features come first, and
    # --include keeps only the temporary file
    undefined = behave(tmp_path, "--dry-run", "features/", str(feature), "--include", "undefined")
    assert undefined.rc != 0 and "1 undefined" in undefined.out and "Traceback" not in undefined.out
