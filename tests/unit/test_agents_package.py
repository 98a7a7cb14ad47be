"""package agent: converged hosts run no package-manager write; changes are verified."""
import json
import pathlib
import subprocess
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from test_agents_fakes import ROCKY_OS_RELEASE, FakeSystem, call, debian  # noqa: E402

from orchestrator_lib.host import core

from orchestrator_lib.host.agents import package  # noqa: E402

POLICY = """mywebapp:
  Installed: {installed}
  Candidate: 4.2.6-3.el5
  Version table:
     4.2.6-3.el5 500
        500 file:/srv/apt ./ Packages
 *** 4.2.5-1.el5 500
        500 file:/srv/apt ./ Packages
        100 /var/lib/dpkg/status
"""
MADISON = """  mywebapp | 4.2.6-3.el5 | file:/srv/apt ./ Packages
  mywebapp | 4.2.5-1.el5 | file:/srv/apt ./ Packages
  mywebapp | 4.2.4-1.el5 | file:/srv/apt ./ Packages
"""
NOT_FOUND = (1, "", "dpkg-query: no packages found matching mywebapp\n")


def dpkg_host(installed: str | None) -> FakeSystem:
    """A Debian host whose dpkg database follows what apt-get installs."""
    state = {"version": installed}
    fake = debian()

    def query(_line):
        v = state["version"]
        return (0, f"install ok installed\t{v}\n", "") if v else NOT_FOUND

    def apt_install(line):
        state["version"] = line.split("=")[-1] if "=" in line.split()[-1] else "4.2.6-3.el5"
        return (0, "Setting up mywebapp ...\n", "")

    def apt_remove(_line):
        state["version"] = None
        return (0, "", "")

    def compare(line):
        parts = line.split()
        a, op, b = parts[2], parts[3], parts[4]
        key = lambda v: [int(x) for x in v.split("-")[0].split(".")]  # enough for these fixtures
        result = {"lt": key(a) < key(b), "gt": key(a) > key(b)}[op]
        return (0 if result else 1, "", "")

    fake.on(r"^dpkg-query -W", query)
    fake.on(r"^apt-cache policy mywebapp", lambda _l: (0, POLICY.format(installed=state["version"] or "(none)"), ""))
    fake.on(r"^apt-cache madison mywebapp", (0, MADISON, ""))
    fake.on(r"^dpkg --compare-versions", compare)
    fake.on(r"^apt-get install", apt_install)
    fake.on(r"^apt-get (remove|purge)", apt_remove)
    fake.state = state
    return fake


def test_status_installed_and_absent():
    fake = dpkg_host("4.2.5-1.el5")
    r = call(fake, "package", "status", name="mywebapp")
    assert (r.status, r.data["version"], r.data["backend"]) == ("ok", "4.2.5-1.el5", "dpkg-apt")
    assert fake.calls == ["dpkg-query -W '-f=${Status}\t${Version}\n' mywebapp"]
    r = call(dpkg_host(None), "package", "status", name="mywebapp")
    assert (r.status, r.data["version"], r.data["state"], r.message) == ("ok", None, "absent", "mywebapp absent")


def test_status_lists_the_offered_versions_unless_the_host_has_the_one_wanted():
    fake = dpkg_host("4.2.5-1.el5")
    r = call(fake, "package", "status", name="mywebapp", available=True, version="4.2.6-3.el5")
    assert "4.2.6-3.el5" in r.data["available"]
    converged = dpkg_host("4.2.6-3.el5")
    r = call(converged, "package", "status", name="mywebapp", available=True, version="4.2.6-3.el5")
    assert "available" not in r.data and not any("apt-cache" in c for c in converged.calls)


def test_a_dry_run_update_says_what_it_would_install_and_writes_nothing():
    fake = dpkg_host("4.2.5-1.el5")
    r = call(fake, "package", "update", dry_run=True, name="mywebapp")
    assert (r.status, r.changed, r.before, r.after) == ("would change", True, "4.2.5-1.el5", "4.2.6-3.el5")
    r = call(fake, "package", "update", dry_run=True, name="mywebapp", version="4.2.5-1.el5")
    assert (r.status, r.changed) == ("ok", False)
    assert fake.writes() == []


def test_update_when_already_at_version_runs_no_write():
    fake = dpkg_host("4.2.6-3.el5")
    r = call(fake, "package", "update", name="mywebapp", version="4.2.6-3.el5")
    assert (r.status, r.changed, r.before, r.after) == ("ok", False, "4.2.6-3.el5", "4.2.6-3.el5")
    assert fake.writes() == []
    assert len(fake.calls) == 1  # one dpkg-query, nothing else


def test_update_to_newest_when_current_runs_no_write():
    fake = dpkg_host("4.2.6-3.el5")
    r = call(fake, "package", "update", name="mywebapp")
    assert (r.status, r.changed) == ("ok", False)
    assert fake.writes() == []


def test_update_to_version_installs_and_verifies():
    fake = dpkg_host("4.2.5-1.el5")
    r = call(fake, "package", "update", name="mywebapp", version="4.2.6-3.el5")
    assert (r.status, r.changed, r.before, r.after) == ("changed", True, "4.2.5-1.el5", "4.2.6-3.el5")
    assert r.message == "mywebapp updated 4.2.5-1.el5 -> 4.2.6-3.el5"
    [install] = fake.writes()
    assert install.startswith("apt-get install -y -q -o DPkg::Lock::Timeout=60")
    assert install.endswith("mywebapp=4.2.6-3.el5") and "--allow-downgrades" not in install
    env = fake.envs[fake.calls.index(install)]
    assert env["DEBIAN_FRONTEND"] == "noninteractive"
    assert "apt-get update" not in " ".join(fake.calls)  # the version was known


def test_update_to_newest_available():
    fake = dpkg_host("4.2.5-1.el5")
    r = call(fake, "package", "update", name="mywebapp")
    assert (r.status, r.after) == ("changed", "4.2.6-3.el5")
    assert fake.writes()[-1].endswith("mywebapp=4.2.6-3.el5")


def test_downgrade_refused_unless_asked():
    fake = dpkg_host("4.2.6-3.el5")
    r = call(fake, "package", "update", name="mywebapp", version="4.2.5-1.el5")
    assert r.status == "failed" and "refusing to downgrade mywebapp from 4.2.6-3.el5 to 4.2.5-1.el5" in r.message
    assert fake.writes() == []
    r = call(fake, "package", "update", name="mywebapp", version="4.2.5-1.el5", downgrade="true")
    assert (r.status, r.after) == ("changed", "4.2.5-1.el5")
    assert "--allow-downgrades" in fake.writes()[-1]
    assert r.message.startswith("mywebapp downgraded")


def test_unknown_version_refreshes_index_once_then_fails():
    fake = dpkg_host("4.2.5-1.el5")
    fake.on(r"^apt-get update", (0, "Reading package lists...", ""))
    r = call(fake, "package", "update", name="mywebapp", version="9.9-1")
    assert r.status == "failed"
    assert "mywebapp 9.9-1 is not available" in r.message and "4.2.6-3.el5" in r.message
    assert [c for c in fake.calls if c.startswith("apt-get")] == ["apt-get update -q -o DPkg::Lock::Timeout=60"]


def test_version_appearing_after_refresh_is_installed():
    fake = dpkg_host("4.2.5-1.el5")
    fake.on(r"^apt-cache madison mywebapp", (0, "  mywebapp | 4.2.5-1.el5 | file:/srv/apt ./ Packages\n", ""), times=1)
    fake.on(r"^apt-get update", (0, "", ""))
    r = call(fake, "package", "update", name="mywebapp", version="4.2.6-3.el5")
    assert r.status == "changed"
    assert [c.split()[1] for c in fake.calls if c.startswith("apt-get")] == ["update", "install"]


def test_failed_install_reports_the_apt_error():
    fake = dpkg_host("4.2.5-1.el5")
    fake.on(r"^apt-get install", (100, "", "W: something harmless\nE: Sub-process /usr/bin/dpkg returned an error code (1)\n"))
    r = call(fake, "package", "update", name="mywebapp", version="4.2.6-3.el5")
    assert r.status == "failed"
    assert "E: Sub-process /usr/bin/dpkg returned an error code (1)" in r.message
    assert "mywebapp now 4.2.5-1.el5" in r.message


def test_install_and_remove_are_idempotent():
    fake = dpkg_host(None)
    r = call(fake, "package", "install", name="mywebapp")
    assert (r.status, r.after) == ("changed", "4.2.6-3.el5")
    writes = len(fake.writes())
    r = call(fake, "package", "install", name="mywebapp")
    assert (r.status, r.changed) == ("ok", False) and len(fake.writes()) == writes
    r = call(fake, "package", "remove", name="mywebapp")
    assert (r.status, r.before, r.after) == ("changed", "4.2.6-3.el5", None)
    r = call(fake, "package", "remove", name="mywebapp")
    assert (r.status, r.changed) == ("ok", False)


def test_bad_names_are_rejected_before_any_command():
    fake = dpkg_host("1")
    r = call(fake, "package", "update", name="mywebapp; rm -rf /")
    assert r.status == "failed" and "invalid package name" in r.message
    r = call(fake, "package", "update", name="mywebapp", version="1.0 --force")
    assert r.status == "failed" and fake.calls == []
    assert call(fake, "package", "update").message == "package#update: missing argument 'name'"


def test_half_configured_package_is_not_converged():
    fake = dpkg_host("4.2.6-3.el5")
    fake.on(r"^dpkg-query -W", (0, "install ok half-configured\t4.2.6-3.el5\n", ""), times=1)
    r = call(fake, "package", "update", name="mywebapp", version="4.2.6-3.el5")
    assert r.status == "changed" and len(fake.writes()) == 1


OPENSSL_MADISON = """openssl-lab |   3.0.13-1 | file:/srv/apt ./ Packages
openssl-lab |   3.0.11-1 | file:/srv/apt ./ Packages
"""
#: apt-get's answer (recorded on a lab host) when the install is a downgrade without the flag
APT_DOWNGRADE_REFUSED = (100, """Reading package lists...
Building dependency tree...
Reading state information...
The following packages will be DOWNGRADED:
  openssl-lab
0 upgraded, 0 newly installed, 1 downgraded, 0 to remove and 0 not upgraded.
1 not fully installed or removed.
""", "E: Packages were downgraded and -y was used without --allow-downgrades.\n")
APT_DOWNGRADED = (0, """Reading package lists...
The following packages will be DOWNGRADED:
  openssl-lab
dpkg: warning: downgrading openssl-lab from 3.0.13-1 to 3.0.11-1
Preparing to unpack .../openssl-lab_3.0.11-1_all.deb ...
Unpacking openssl-lab (3.0.11-1) over (3.0.13-1) ...
Setting up openssl-lab (3.0.11-1) ...
""", "")


def half_configured_openssl() -> FakeSystem:
    """openssl-lab 3.0.13-1 left half-configured (its postinst failed), as dpkg-query reports it;
    apt-get refuses a downgrade without --allow-downgrades, as it does."""
    state = {"status": "install ok half-configured", "version": "3.0.13-1"}
    fake = debian()

    def apt_install(line):
        if "--allow-downgrades" not in line:
            return APT_DOWNGRADE_REFUSED
        state.update(status="install ok installed", version=line.split("=")[-1])
        return APT_DOWNGRADED

    def compare(line):
        a, op, b = line.split()[2:5]
        key = lambda v: [int(x) for x in v.split("-")[0].split(".")]
        return (0 if {"lt": key(a) < key(b), "gt": key(a) > key(b)}[op] else 1, "", "")

    fake.on(r"^dpkg-query -W", lambda _l: (0, f"{state['status']}\t{state['version']}\n", ""))
    fake.on(r"^apt-cache madison openssl-lab", (0, OPENSSL_MADISON, ""))
    fake.on(r"^dpkg --compare-versions", compare)
    fake.on(r"^apt-get install", apt_install)
    return fake


def test_rolling_back_from_a_half_configured_package_is_a_downgrade():
    fake = half_configured_openssl()
    r = call(fake, "package", "update", name="openssl-lab", version="3.0.11-1", downgrade="true")
    assert (r.status, r.before, r.after) == ("changed", "3.0.13-1", "3.0.11-1"), r.message
    assert r.message == "openssl-lab downgraded 3.0.13-1 (half-configured) -> 3.0.11-1"
    [install] = fake.writes()
    assert "--allow-downgrades" in install and install.endswith("openssl-lab=3.0.11-1")


def test_a_half_configured_package_is_not_downgraded_unless_asked():
    fake = half_configured_openssl()
    r = call(fake, "package", "update", name="openssl-lab", version="3.0.11-1")
    assert r.status == "failed" and fake.writes() == []
    assert r.message == ("refusing to downgrade openssl-lab from 3.0.13-1 (half-configured) to 3.0.11-1 "
                         "(pass downgrade=true to allow it)")


def test_a_failed_install_names_the_half_configured_state_not_absent():
    fake = half_configured_openssl()
    fake.on(r"^apt-get install", APT_DOWNGRADE_REFUSED)  # e.g. apt refusing whatever we pass
    r = call(fake, "package", "update", name="openssl-lab", version="3.0.11-1", downgrade="true")
    assert r.status == "failed"
    assert r.message == ("installing openssl-lab 3.0.11-1 failed: E: Packages were downgraded and -y was used "
                         "without --allow-downgrades. (openssl-lab now 3.0.13-1 (half-configured))")


# --------------------------------------------------------------------------- rpm/dnf

def rpm_host(installed: str | None) -> FakeSystem:
    fake = FakeSystem(files={"/etc/os-release": ROCKY_OS_RELEASE})
    if installed:
        fake.on(r"^rpm -q", (0, f"(none):{installed}\n", ""))
    else:
        fake.on(r"^rpm -q", (1, "package mywebapp is not installed\n", ""))
    fake.on(r"^dnf -q repoquery", (0, "0:4.2.5-1.el5\n0:4.2.6-3.el5\n0:4.2.10-1.el5\n", ""))
    fake.on(r"^dnf -y", (0, "", ""))
    return fake


def test_rpm_backend_chosen_from_os_release_and_converged_is_quiet():
    fake = rpm_host("4.2.6-3.el5")
    r = call(fake, "package", "update", name="mywebapp", version="4.2.6-3.el5")
    assert (r.status, r.data["backend"]) == ("ok", "rpm-dnf")
    assert fake.calls == ["rpm -q --qf '%{EPOCH}:%{VERSION}-%{RELEASE}\n' mywebapp"]


def test_rpm_update_to_newest_uses_rpm_ordering():
    fake = rpm_host("4.2.6-3.el5")
    state = {"v": "4.2.6-3.el5"}
    fake.on(r"^rpm -q", lambda _l: (0, f"(none):{state['v']}\n", ""))
    fake.on(r"^dnf -y", lambda line: (state.update(v="4.2.10-1.el5"), (0, "", ""))[1])
    r = call(fake, "package", "update", name="mywebapp")
    assert (r.status, r.after) == ("changed", "4.2.10-1.el5")   # 10 > 6, not "1" < "6"
    assert fake.writes() == ["dnf -y -q install mywebapp-4.2.10-1.el5"]


def test_rpm_absent_install():
    fake = rpm_host(None)
    state = {"v": None}
    fake.on(r"^rpm -q", lambda _l: (0, f"0:{state['v']}\n", "") if state["v"] else (1, "package mywebapp is not installed\n", ""))
    fake.on(r"^dnf -y", lambda line: (state.update(v="4.2.5-1.el5"), (0, "", ""))[1])
    r = call(fake, "package", "install", name="mywebapp", version="4.2.5-1.el5")
    assert (r.status, r.before, r.after) == ("changed", None, "4.2.5-1.el5")


@pytest.mark.parametrize("a,b,expected", [
    ("1.0", "1.0", 0), ("1.0", "1.1", -1), ("1.10", "1.9", 1), ("1.0a", "1.0", 1), ("1.0~rc1", "1.0", -1),
    ("1.0", "1.0^git1", -1), ("1.0^git1", "1.0^git2", -1), ("2.0", "2_0", 0), ("1.0010", "1.9", 1),
    ("1.a", "1.1", -1), ("5.5p1", "5.5p10", -1), ("a", "b", -1), ("1.0.0", "1.0", 1),
])
def test_rpmvercmp(a, b, expected):
    assert package.rpmvercmp(a, b) == expected
    assert package.rpmvercmp(b, a) == -expected


def test_rpm_compare_epoch_and_release():
    assert package.rpm_compare("1:1.0-1", "2.0-1") == 1
    assert package.rpm_compare("4.2.6-3.el5", "4.2.6-10.el5") == -1


def test_backend_falls_back_to_installed_tools():
    with core.use_system(FakeSystem(tools={"rpm", "dnf"})):
        assert isinstance(package.choose_backend(), package.RpmDnf)
    with core.use_system(FakeSystem(tools={"dpkg-query", "apt-get"})):
        assert isinstance(package.choose_backend(), package.DpkgApt)
    r = call(FakeSystem(), "package", "status", name="x")
    assert r.status == "failed" and "no supported package manager" in r.message


def test_a_dry_run_refuses_a_version_the_index_does_not_offer_without_refreshing_it():
    fake = dpkg_host("4.2.5-1.el5")
    r = call(fake, "package", "update", dry_run=True, name="mywebapp", version="9.9.9")
    assert r.status == "failed" and "9.9.9 is not available" in r.message and "4.2.6-3.el5" in r.message
    assert fake.writes() == [] and not any("apt-get" in c for c in fake.calls), "the index is read, not refreshed"


def test_rpm_a_version_in_a_disabled_repository_is_reached_only_by_name():
    """The broken release sits in a repository that is off by default (lab-proposed): `update`
    without a version ignores it; asking for it by version enables that repository alone."""
    fake = FakeSystem(files={"/etc/os-release": ROCKY_OS_RELEASE})
    state = {"v": "4.2.5-1.el5"}
    fake.on(r"^rpm -q", lambda _l: (0, f"(none):{state['v']}\n", ""))
    fake.on(r"^dnf -q repoquery", (0, "0:4.2.6-3.el5 lab\n", ""))
    fake.on(r"(?s)^dnf -q repoquery .*--enablerepo", (0, "0:4.2.6-3.el5 lab\n0:4.2.7-1.el5 lab-proposed\n", ""))
    fake.on(r"^dnf -y", lambda line: (state.update(v=line.split("mywebapp-")[-1] if "mywebapp-" in line else "4.2.6-3.el5"),
                                      (0, "", ""))[1])
    r = call(fake, "package", "update", name="mywebapp")
    assert (r.status, r.after) == ("changed", "4.2.6-3.el5")
    r = call(fake, "package", "update", name="mywebapp", version="4.2.7-1.el5")
    assert (r.status, r.after) == ("changed", "4.2.7-1.el5")
    assert fake.writes()[-1] == "dnf -y -q --enablerepo=lab-proposed install mywebapp-4.2.7-1.el5"


def test_rpm_repository_versions_split_like_rpm():
    from orchestrator_lib.lab.rpmrepo import _version_release
    assert _version_release("4.2.6-3.el5") == ("4.2.6", "3.el5")
    assert _version_release("1.22.1-9~lab1") == ("1.22.1", "9~lab1")


# apt-get's output when mywebapp's postinst failed (recorded on a lab web host, tests/integration/test_rpm.py)
DPKG_FAILED = """Setting up mywebapp (4.2.6-3.el5) ...
ln: failed to create symbolic link '/etc/service/mywebapp': File exists
dpkg: error processing package mywebapp (--configure):
 installed mywebapp package post-installation script subprocess returned error exit status 1
Errors were encountered while processing:
 mywebapp
"""


def test_a_dpkg_failure_is_told_in_dpkg_s_words_not_apt_s_sub_process_line():
    r = core.CmdResult(100, DPKG_FAILED, "E: Sub-process /usr/bin/dpkg returned an error code (1)\n")
    assert package.PackageBackend.error_line(r) == (
        "dpkg: error processing package mywebapp (--configure): installed mywebapp package "
        "post-installation script subprocess returned error exit status 1")
    assert package.PackageBackend.error_line(core.CmdResult(100, "", "E: Unable to locate package x\n")) == \
        "E: Unable to locate package x"


def test_an_rpm_package_twice_in_the_database_shows_both_versions_as_half_installed():
    st = package.PackageState("mywebapp", "4.2.6-3.el5", "duplicated", ("4.2.5-1.el5",))
    assert not st.installed
    assert package._shown(st) == "4.2.6-3.el5 + 4.2.5-1.el5 (half-installed: duplicated)"


EVR_CASES = [("1:1.0-1", "2.0-1"), ("4.2.6-3.el5", "4.2.6-10.el5"), ("4.2.7-1.el5", "4.2.6-3.el5"),
             ("0:4.2.6-3.el5", "4.2.6-3.el5"), ("2:1.0-1.el8", "1:9.9-1.el9"), ("1.0-1.el8_2", "1.0-1.el8_10"),
             ("1.0~rc1-1", "1.0-1"), ("1.0^git1-1", "1.0-1"), ("1.0-1.fc29", "1.0-1.fc29.1"), ("3.0.13-1", "3.0.13-1.el9")]


def test_rpm_compare_agrees_with_rpm_s_own_label_compare():
    """The agent's port against librpm itself (python3-rpm, which dnf needs, on the machine's python)."""
    script = ("import json, rpm, sys\n"
              "def evr(s):\n"
              "    e, _, rest = s.rpartition(':') if ':' in s else ('0', '', s)\n"
              "    v, _, r = rest.partition('-')\n"
              "    return (e or '0', v, r)\n"
              "print(json.dumps([rpm.labelCompare(evr(a), evr(b)) for a, b in json.loads(sys.argv[1])]))\n")
    done = subprocess.run(["/usr/bin/python3", "-c", script, json.dumps(EVR_CASES)], capture_output=True, text=True)
    if "No module named 'rpm'" in done.stderr:
        pytest.skip("python3-rpm is not installed")
    assert done.returncode == 0, done.stderr
    assert [package.rpm_compare(a, b) for a, b in EVR_CASES] == json.loads(done.stdout)


DPKG_STATUS = """Package: libc6
Status: install ok installed
Architecture: amd64
Version: 2.36-9+deb12u4

Package: libc6
Status: install ok installed
Architecture: i386
Version: 2.36-9+deb12u4

Package: mywebapp
Status: install ok installed
Priority: optional
Version: 4.2.5-1.el5
Description: the lab's web app
 Version: 9.9 (a description line, not the field)

Package: broken
Status: install reinstreq half-configured
Version: 1.0-1

Package: gone
Status: deinstall ok config-files
Version: 2.0-1
"""


def dpkg_database(updates: tuple[str, ...] = ()) -> FakeSystem:
    """A Debian host whose dpkg status file is DPKG_STATUS; no dpkg-query rule unless a test adds one."""
    fake = debian()
    fake.files["/var/lib/dpkg/status"] = DPKG_STATUS
    fake.files["/var/lib/dpkg/updates/.keep"] = ""
    for name in updates:
        fake.files[f"/var/lib/dpkg/updates/{name}"] = "Package: mywebapp\n"
    return fake


def test_state_read_from_dpkgs_status_file_without_a_process():
    fake = dpkg_database(updates=("tmp.i",))  # dpkg's scratch file is no pending change
    with core.use_system(fake):
        apt = package.DpkgApt()
        assert apt.state("mywebapp") == package.PackageState("mywebapp", "4.2.5-1.el5", "installed")
        assert apt.state("broken") == package.PackageState("broken", "1.0-1", "half-configured")
        assert apt.state("gone") == package.PackageState("gone", None, "config-files")
        assert apt.state("mywebapp-extra") == package.PackageState("mywebapp-extra", None, "absent")
    assert fake.calls == []


def test_dpkg_query_decides_for_pending_changes_and_multiarch():
    for fake, name in ((dpkg_database(updates=("0001",)), "mywebapp"), (dpkg_database(), "libc6")):
        fake.on(r"^dpkg-query -W", (0, "install ok installed\t7.0-1\n", ""))
        with core.use_system(fake):
            assert package.DpkgApt().state(name).version == "7.0-1"
        assert [c.split()[0] for c in fake.calls] == ["dpkg-query"]
