"""service agent: runit (the lab), systemd and SysV backends from recorded outputs."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from test_agents_fakes import FakeSystem, call  # noqa: E402

from orchestrator_lib.host import core

from orchestrator_lib.host.agents import service  # noqa: E402

RUN = "run: mywebapp: (pid 1234) 56s\n"
DOWN = "down: mywebapp: 3s, normally up\n"


def runit_host(running: bool = True, check: bool = True) -> FakeSystem:
    """A lab host: runit as PID 1, /etc/sv/mywebapp enabled, with a ./check script."""
    files = {"/run/runit/.keep": "", "/etc/sv/mywebapp/run": "#!/bin/sh", "/etc/service/mywebapp": "-> /etc/sv/mywebapp"}
    if check:
        files["/etc/sv/mywebapp/check"] = "#!/bin/sh"
    state = {"running": running, "pid": 1234}
    fake = FakeSystem(files=files)

    def status(_line):
        if state["running"]:
            return (0, f"run: mywebapp: (pid {state['pid']}) 5s; run: log: (pid 99) 60s\n", "")
        return (0, DOWN, "")

    def restart(_line):
        state.update(running=True, pid=state["pid"] + 1)
        return (0, f"ok: run: mywebapp: (pid {state['pid']}) 0s\n", "")

    def term(_line):  # runsv starts the service again (wanted up): a new pid
        if state["running"]:
            state["pid"] += 1
        return (0, "", "")

    def stop(_line):
        state["running"] = False
        return (0, "ok: down: mywebapp: 0s, normally up\n", "")

    fake.on(r"^sv status mywebapp$", status)
    fake.on(r"^sv -w 30 start mywebapp$", restart)
    fake.on(r"^sv term mywebapp$", term)
    fake.on(r"^sv (cont|up) mywebapp$", (0, "", ""))
    fake.on(r"exec \./check' check /etc/service/mywebapp$", (0, "", ""))
    fake.on(r"^sv -w 30 stop mywebapp$", stop)
    fake.on(r"^sv -w 30 check mywebapp$", lambda _l: (0, f"ok: run: mywebapp: (pid {state['pid']}) 1s\n", ""))
    fake.state = state
    return fake


def test_runit_status_parse():
    assert service.Runit.parse_status(RUN) == (True, 1234)
    assert service.Runit.parse_status("run: mywebapp: (pid 7) 1s; run: log: (pid 5) 9s") == (True, 7)
    assert service.Runit.parse_status(DOWN) == (False, None)
    assert service.Runit.parse_status("fail: x: unable to change to service directory: file does not exist") == (False, None)
    assert service.Runit.parse_status("finish: mywebapp: (pid 8) 0s, normally up") == (False, 8)


def test_backend_choice():
    with core.use_system(runit_host()):
        assert isinstance(service.choose_backend("mywebapp"), service.Runit)
    with core.use_system(FakeSystem(files={"/etc/sv/x/run": ""}, processes={"runsvdir"})):
        assert isinstance(service.choose_backend("x"), service.Runit)
    with core.use_system(FakeSystem(files={"/run/systemd/system/.keep": ""})):
        assert isinstance(service.choose_backend("nginx"), service.Systemd)
    with core.use_system(FakeSystem()):
        assert isinstance(service.choose_backend("nginx"), service.SysV)


def test_status_runit():
    r = call(runit_host(), "service", "status", name="mywebapp")
    assert (r.status, r.data["running"], r.data["pid"], r.data["backend"]) == ("ok", True, 1234, "runit")
    assert r.message == "mywebapp running"


def test_start_of_running_service_is_a_noop():
    fake = runit_host(running=True)
    r = call(fake, "service", "start", name="mywebapp")
    assert (r.status, r.changed) == ("ok", False)
    assert fake.calls == ["sv status mywebapp"]


def test_start_of_stopped_service_waits_for_check():
    fake = runit_host(running=False)
    r = call(fake, "service", "start", name="mywebapp")
    assert (r.status, r.changed, r.after) == ("changed", True, "running")
    assert fake.calls == ["sv status mywebapp", "sv -w 30 start mywebapp", "sv status mywebapp", "sv -w 30 check mywebapp"]
    assert fake.envs[1] == {"SVDIR": "/etc/service"}


def test_restart_always_changes_and_runs_readiness_check():
    fake = runit_host(running=True)
    r = call(fake, "service", "restart", name="mywebapp", wait=30)
    assert (r.status, r.changed) == ("changed", True)
    assert r.message == "mywebapp restarted and ready"
    assert r.data["pid"] == 1235 and r.data["previous_pid"] == 1234
    assert "sv -w 30 check mywebapp" in fake.calls


def test_restart_without_check_script_trusts_running():
    fake = runit_host(check=False)
    r = call(fake, "service", "restart", name="mywebapp")
    assert r.status == "changed" and r.message == "mywebapp restarted"
    assert not any("check" in c for c in fake.calls)


def test_restart_fails_when_readiness_check_fails():
    fake = runit_host()
    fake.on(r"^sv -w 30 check", (1, "timeout: run: mywebapp: (pid 1235) 30s\n", ""))
    r = call(fake, "service", "restart", name="mywebapp")
    assert r.status == "failed"
    assert "mywebapp runs but was not ready 0.0 s after the restart (readiness check, 30 s allowed): " \
           "timeout: run: mywebapp" in r.message


def test_restart_fails_when_process_does_not_run():
    fake = runit_host()
    fake.on(r"^sv term mywebapp$", lambda _l: fake.state.update(running=False) or (0, "", ""))
    r = call(fake, "service", "restart", name="mywebapp")
    assert r.status == "failed" and "mywebapp did not restart: timeout: down" in r.message
    assert 29 <= sum(fake.sleeps) <= 31  # it looked again until the wait was over


def test_restart_waits_for_the_new_process_to_pass_its_check():
    """sv's own -w looks every 420 ms; the agent looks every 50 ms until ./check passes."""
    fake = runit_host()
    answers = iter([(1, "", "curl: (7) Failed to connect"), (1, "", "curl: (7) Failed to connect"), (0, "", "")])
    fake.on(r"exec \./check' check /etc/service/mywebapp$", lambda _l: next(answers))
    r = call(fake, "service", "restart", name="mywebapp")
    assert r.status == "changed" and r.message == "mywebapp restarted and ready"
    assert fake.sleeps == [0.05, 0.05]


def test_stop_and_stop_again():
    fake = runit_host()
    assert call(fake, "service", "stop", name="mywebapp").status == "changed"
    r = call(fake, "service", "stop", name="mywebapp")
    assert (r.status, r.changed, r.message) == ("ok", False, "mywebapp already stopped")


def test_disabled_runit_service_is_linked_then_started():
    fake = runit_host(running=False)
    del fake.files["/etc/service/mywebapp"]
    r = call(fake, "service", "start", name="mywebapp")
    assert r.status == "changed"
    assert "ln -s /etc/sv/mywebapp /etc/service/mywebapp" in fake.calls


def test_unknown_service_fails_changes_but_status_says_absent():
    fake = FakeSystem(files={"/run/runit/.keep": ""})
    r = call(fake, "service", "restart", name="nginx")
    assert r.status == "failed" and r.message.startswith("no service nginx on this host")
    r = call(fake, "service", "status", name="nginx")
    assert (r.status, r.after) == ("ok", "absent")


def test_reload_of_stopped_service_fails():
    r = call(runit_host(running=False), "service", "reload", name="mywebapp")
    assert r.status == "failed" and "not running" in r.message
    fake = runit_host()
    fake.on(r"^sv hup mywebapp$", (0, "", ""))
    assert call(fake, "service", "reload", name="mywebapp").status == "changed"


def test_systemd_backend():
    state = {"active": "inactive"}
    fake = FakeSystem(files={"/run/systemd/system/.keep": ""})
    fake.on(r"^systemctl show nginx", lambda _l: (0, f"LoadState=loaded\nActiveState={state['active']}\nSubState=x\nMainPID=0\n", ""))
    fake.on(r"^systemctl start nginx$", lambda _l: (state.update(active="active"), (0, "", ""))[1])
    r = call(fake, "service", "start", name="nginx")
    assert (r.status, r.data["backend"]) == ("changed", "systemd")
    r = call(fake, "service", "start", name="nginx")
    assert (r.status, r.changed) == ("ok", False)
    fake.on(r"^systemctl show ghost", (0, "LoadState=not-found\nActiveState=inactive\n", ""))
    assert call(fake, "service", "restart", name="ghost").status == "failed"


def test_sysv_backend():
    state = {"rc": 3}
    fake = FakeSystem(files={"/etc/init.d/nginx": "#!/bin/sh"})
    fake.on(r"^service nginx status$", lambda _l: (state["rc"], "nginx is not running" if state["rc"] else "nginx is running", ""))
    fake.on(r"^service nginx start$", lambda _l: (state.update(rc=0), (0, "", ""))[1])
    r = call(fake, "service", "start", name="nginx")
    assert (r.status, r.data["backend"]) == ("changed", "sysv")
    assert call(fake, "service", "status", name="nginx").data["running"] is True


def test_invalid_service_name():
    fake = FakeSystem()
    r = call(fake, "service", "restart", name="../../bin/sh")
    assert r.status == "failed" and "invalid service name" in r.message and fake.calls == []
