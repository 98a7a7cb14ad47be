"""appmgr agent: a converged host is left alone; otherwise package, restart, health, in order."""
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from test_agents_fakes import call  # noqa: E402
from test_agents_health import App  # noqa: E402
from test_agents_package import dpkg_host  # noqa: E402


@pytest.fixture
def estate():
    """A web host: dpkg with mywebapp, runit running it, and its /health (a local server whose
    reported version changes only when the fake `sv restart` runs, like the lab's app)."""
    made = []

    def make(installed, running, healthy=True):
        fake = dpkg_host(installed)
        app = App([(200, {"status": "ok", "version": running})])
        made.append(app)
        fake.files.update({"/run/runit/.keep": "", "/etc/sv/mywebapp/run": "", "/etc/sv/mywebapp/check": "",
                           "/etc/service/mywebapp": ""})
        pid = {"now": 10}
        fake.on(r"^sv status mywebapp$", lambda _l: (0, f"run: mywebapp: (pid {pid['now']}) 9s\n", ""))

        def restart(_line):  # runsv starts the app again (wanted up): a new pid, the new version
            code = 200 if healthy else 500
            app.answers = [(code, {"status": "ok" if healthy else "failing", "version": fake.state["version"]})]
            pid["now"] += 1
            return (0, "", "")
        fake.on(r"^sv term mywebapp$", restart)
        fake.on(r"^sv (cont|up) mywebapp$", (0, "", ""))
        fake.on(r"exec \./check' check /etc/service/mywebapp$", (0, "", ""))
        fake.on(r"^sv -w \S+ check mywebapp$", (0, "ok: run: mywebapp: (pid 11) 1s\n", ""))
        return fake, app
    yield make
    for app in made:
        app.close()


def deploy(fake, app, revision="4.2.6-3.el5", **extra):
    return call(fake, "appmgr", "deploy", app="mywebapp", revision=revision, health_url=app.url, **extra)


def test_converged_host_is_left_alone(estate):
    fake, app = estate("4.2.6-3.el5", running="4.2.6-3.el5")
    r = deploy(fake, app)
    assert (r.status, r.changed) == ("ok", False)
    assert r.message == "mywebapp already at 4.2.6-3.el5 and running it"
    assert fake.writes() == [] and not any(c.startswith("sv ") for c in fake.calls)
    assert app.hits == 1


def test_upgrade_installs_restarts_and_waits_for_the_new_version(estate):
    fake, app = estate("4.2.5-1.el5", running="4.2.5-1.el5")
    r = deploy(fake, app)
    assert (r.status, r.changed) == ("changed", True)
    assert r.before == {"package": "4.2.5-1.el5", "running": "4.2.5-1.el5"}
    assert r.after == {"package": "4.2.6-3.el5", "running": "4.2.6-3.el5"}
    assert r.data["restarted"] is True and r.data["health"]["passed"] is True
    order = [c.split()[0] + " " + c.split()[1] for c in fake.writes()]
    assert order == ["apt-get install", "sv term", "sv up"]
    assert "mywebapp updated 4.2.5-1.el5 -> 4.2.6-3.el5; restarted mywebapp; healthy at 4.2.6-3.el5" == r.message


def test_installed_but_not_restarted_host_gets_only_a_restart(estate):
    fake, app = estate("4.2.6-3.el5", running="4.2.5-1.el5")   # a previous run died after apt-get
    r = deploy(fake, app)
    assert r.status == "changed" and r.data["restarted"] is True
    assert not any(c.startswith("apt-get") for c in fake.calls)
    assert "(was running 4.2.5-1.el5)" in r.message


def test_unhealthy_after_restart_fails_at_deadline(estate):
    fake, app = estate("4.2.5-1.el5", running="4.2.5-1.el5", healthy=False)
    r = deploy(fake, app, deadline=5, interval=1)
    assert r.status == "failed" and r.changed
    assert "deployed but unhealthy" in r.message and "answered 500" in r.message
    assert r.data["health"]["attempts"] == 6


@pytest.mark.parametrize("extra, allowed", [({}, 30), ({"wait": 5}, 5), ({"wait": 90, "deadline": 40}, 40)])
def test_a_restart_that_never_gets_ready_fails_after_the_wait_asked_within_the_deadline(estate, extra, allowed):
    """`wait` (the controller's -D service_wait) bounds the wait for the readiness check; the
    deadline still bounds the whole deploy. The fake host's clock moves only when it sleeps."""
    fake, app = estate("4.2.5-1.el5", running="4.2.5-1.el5", healthy=False)
    fake.on(r"exec \./check' check /etc/service/mywebapp$", (1, "", "curl: (22) The requested URL returned error: 500"))
    fake.on(r"^sv -w \S+ check mywebapp$", (1, "timeout: run: mywebapp: (pid 11) 1s\n", ""))
    started = fake.clock
    r = deploy(fake, app, **extra)
    assert r.status == "failed" and f"(readiness check, {allowed} s allowed)" in r.message, r.message
    assert allowed <= fake.clock - started < allowed + 1


def test_refused_downgrade_touches_nothing(estate):
    fake, app = estate("4.2.6-3.el5", running="4.2.6-3.el5")
    r = deploy(fake, app, revision="4.2.5-1.el5")
    assert r.status == "failed" and "refusing to downgrade" in r.message
    assert fake.writes() == []
    r = deploy(fake, app, revision="4.2.5-1.el5", downgrade=True)
    assert r.status == "changed" and r.after["running"] == "4.2.5-1.el5"


def test_upgrade_alias():
    from orchestrator_lib.host.agents import appmgr
    assert appmgr.agent.actions["upgrade"] is appmgr.deploy
