"""service: status/start/stop/restart/reload under whatever init the host runs.
A start or restart counts only when the service runs AND passes its readiness check: `sv restart`
returns once the process exists, not once it serves (lab notes, pitfall 5)."""
from __future__ import annotations

import math
import re
from collections import namedtuple

from ... import protocol_args
from .. import core
from ..core import ActionError, CmdResult, Reply, Request

agent = core.Agent(__name__, "status, start, stop, restart, reload, enable, disable (runit, systemd, SysV init)")

SERVICE_NAME = protocol_args.SERVICE  # matched whole (fullmatch)
DEFAULT_WAIT = 30.0


class ServiceState(namedtuple("ServiceState", "name exists running pid detail", defaults=(None, ""))):
    """`pid` may be None; `detail` is the init system's own words, e.g. "run: app: (pid 42) 7s"."""
    __slots__ = ()


class ServiceBackend:
    label = ""

    def state(self, name: str) -> ServiceState: raise NotImplementedError
    def start(self, name: str, wait: float) -> CmdResult: raise NotImplementedError
    def stop(self, name: str, wait: float) -> CmdResult: raise NotImplementedError
    def restart(self, name: str, wait: float) -> CmdResult: raise NotImplementedError
    def reload(self, name: str, wait: float) -> CmdResult: raise NotImplementedError

    def enabled(self, name: str) -> bool:
        """Whether the service starts at boot."""
        raise ActionError(f"{self.label}: enabling services at boot is not supported on this host")

    def set_enabled(self, name: str, on: bool, wait: float) -> CmdResult:
        raise ActionError(f"{self.label}: enabling services at boot is not supported on this host")

    def ready(self, name: str, wait: float) -> CmdResult | None:
        """The service's own readiness check, None when it has none."""
        return None


class Runit(ServiceBackend):
    """Debian's runit: services in /etc/sv, enabled by a link in /etc/service."""
    label = "runit"
    SVDIR = "/etc/service"
    #: how often a restart looks whether the new process runs and passes ./check
    POLL = 0.05
    STATUS = re.compile(r"^(?P<word>run|down|finish|fail|warning): [^:]+: (?:\(pid (?P<pid>\d+)\) )?(?P<rest>.*)$")

    def _sv(self, *args: str, timeout: float = 60.0) -> CmdResult:
        return core.run(["sv", *args], env={"SVDIR": self.SVDIR}, timeout=timeout)

    @classmethod
    def parse_status(cls, text: str) -> tuple[bool, int | None]:
        """(running, pid) from `sv status` ("run: app: (pid 42) 7s; run: log: ...")."""
        first = text.strip().split(";")[0]
        m = cls.STATUS.match(first)
        if not m:
            return False, None
        return m.group("word") == "run", int(m.group("pid")) if m.group("pid") else None

    def state(self, name: str) -> ServiceState:
        sys_ = core.system()
        if not sys_.exists(f"/etc/sv/{name}"):
            return ServiceState(name, False, False, detail=f"no /etc/sv/{name}")
        if not sys_.exists(f"{self.SVDIR}/{name}"):
            return ServiceState(name, True, False, detail=f"disabled (no {self.SVDIR}/{name})")
        r = self._sv("status", name)
        running, pid = self.parse_status(r.stdout)
        return ServiceState(name, True, running, pid, r.stdout.strip() or r.line())

    def _enable(self, name: str, wait: float) -> None:
        """Link the service into /etc/service and wait for runsvdir (it rescans every 5 s)."""
        sys_ = core.system()
        sys_.symlink(f"/etc/sv/{name}", f"{self.SVDIR}/{name}")
        deadline = sys_.monotonic() + max(wait, 6.0)
        while sys_.monotonic() < deadline:
            if self._sv("status", name).rc == 0:
                return
            sys_.sleep(0.25)

    def start(self, name: str, wait: float) -> CmdResult:
        if not core.system().exists(f"{self.SVDIR}/{name}"):
            self._enable(name, wait)
        return self._sv("-w", f"{wait:g}", "start", name, timeout=wait + 10)

    def stop(self, name: str, wait: float) -> CmdResult:
        return self._sv("-w", f"{wait:g}", "stop", name, timeout=wait + 10)

    def restart(self, name: str, wait: float) -> CmdResult:
        """What `sv -w N restart` does (term, cont, up; then wait for the service to run and pass
        ./check), with the wait done here: sv looks every 420 ms, which was most of a restart of
        an app that is ready 0.2 s after its start. The commands are sent without sv's own wait."""
        old = self.state(name).pid
        for command in ("term", "cont", "up"):
            r = self._sv(command, name)
            if not r.ok:
                return r
        return self._wait_up(name, old, wait)

    def _wait_up(self, name: str, old_pid: int | None, wait: float) -> CmdResult:
        """Until a process other than `old_pid` runs and ./check (when there is one) exits 0,
        looking every POLL s, at most `wait` s; sv's own words (ok: / timeout:) on the way out."""
        clock = core.system()
        deadline = clock.monotonic() + wait
        has_check = clock.exists(f"/etc/sv/{name}/check")
        while True:
            st = self._sv("status", name)
            running, pid = self.parse_status(st.stdout)
            if running and pid != old_pid and (not has_check or self._check(name).ok):
                return CmdResult(0, f"ok: {st.stdout}", "")
            if clock.monotonic() >= deadline:
                return CmdResult(1, f"timeout: {st.stdout}", st.stderr)
            clock.sleep(self.POLL)

    def _check(self, name: str) -> CmdResult:
        """The service's ./check, run as sv runs it: from the service directory."""
        return core.run(["sh", "-c", 'cd "$1" && exec ./check', "check", f"{self.SVDIR}/{name}"], timeout=10)

    def reload(self, name: str, wait: float) -> CmdResult:
        return self._sv("hup", name)

    def enabled(self, name: str) -> bool:
        """runit supervises (and starts at boot) exactly the services linked into /etc/service."""
        return core.system().exists(f"{self.SVDIR}/{name}")

    def set_enabled(self, name: str, on: bool, wait: float) -> CmdResult:
        """Linking a service in also starts it (runit has no enabled-but-stopped without a `down`
        file); unlinking stops its runsv, and with it the service."""
        if on:
            self._enable(name, wait)
            return self._sv("status", name)
        self._sv("-w", f"{wait:g}", "stop", name, timeout=wait + 10)
        return core.run(["rm", "-f", f"{self.SVDIR}/{name}"])

    def ready(self, name: str, wait: float) -> CmdResult | None:
        if not core.system().exists(f"/etc/sv/{name}/check"):
            return None
        return self._sv("-w", f"{wait:g}", "check", name, timeout=wait + 10)


class Systemd(ServiceBackend):
    label = "systemd"

    def state(self, name: str) -> ServiceState:
        r = core.run(["systemctl", "show", name, "--property=LoadState,ActiveState,SubState,MainPID"])
        props = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)
        exists = r.rc == 0 and props.get("LoadState", "not-found") not in ("not-found", "")
        running = props.get("ActiveState") in ("active", "reloading")
        pid = int(props.get("MainPID", "0") or 0) or None
        detail = f"{props.get('ActiveState', '?')} ({props.get('SubState', '?')})" if exists else r.line()
        return ServiceState(name, exists, running, pid, detail)

    def _ctl(self, verb: str, name: str, wait: float) -> CmdResult:
        return core.run(["systemctl", verb, name], timeout=wait + 60)

    def start(self, name: str, wait: float) -> CmdResult: return self._ctl("start", name, wait)
    def stop(self, name: str, wait: float) -> CmdResult: return self._ctl("stop", name, wait)
    def restart(self, name: str, wait: float) -> CmdResult: return self._ctl("restart", name, wait)
    def reload(self, name: str, wait: float) -> CmdResult: return self._ctl("reload", name, wait)

    def enabled(self, name: str) -> bool:
        """`systemctl is-enabled`: exit 0 for enabled (and static/alias/indirect), else 1."""
        return core.run(["systemctl", "is-enabled", "--quiet", name]).rc == 0

    def set_enabled(self, name: str, on: bool, wait: float) -> CmdResult:
        """Boot-time only, as `systemctl enable|disable` without --now: start/stop stay separate."""
        return self._ctl("enable" if on else "disable", name, wait)


class SysV(ServiceBackend):
    """LSB init scripts through `service`; status exit 0 = running, 3 = stopped (LSB)."""
    label = "sysv"

    def state(self, name: str) -> ServiceState:
        if not core.system().exists(f"/etc/init.d/{name}"):
            return ServiceState(name, False, False, detail=f"no /etc/init.d/{name}")
        r = core.run(["service", name, "status"])
        return ServiceState(name, True, r.rc == 0, detail=r.line())

    def _service(self, verb: str, name: str, wait: float) -> CmdResult:
        return core.run(["service", name, verb], timeout=wait + 60)

    def start(self, name: str, wait: float) -> CmdResult: return self._service("start", name, wait)
    def stop(self, name: str, wait: float) -> CmdResult: return self._service("stop", name, wait)
    def restart(self, name: str, wait: float) -> CmdResult: return self._service("restart", name, wait)
    def reload(self, name: str, wait: float) -> CmdResult: return self._service("reload", name, wait)


def choose_backend(name: str) -> ServiceBackend:
    """The init that manages this service: runit if it has /etc/sv/NAME and runit runs;
    systemd if it is PID 1; else SysV scripts."""
    sys_ = core.system()
    if sys_.exists(f"/etc/sv/{name}") and (sys_.exists("/run/runit") or sys_.process_running("runsvdir")):
        return Runit()
    if sys_.exists("/run/systemd/system"):
        return Systemd()
    return SysV()


def _data(st: ServiceState, backend: ServiceBackend, **extra: object) -> dict:
    return {"name": st.name, "running": st.running, "pid": st.pid, "detail": st.detail,
            "backend": backend.label, **extra}


def _word(running: bool) -> str:
    return "running" if running else "stopped"


def _args(req: Request) -> tuple[str, ServiceBackend, ServiceState, float]:
    name = req.str_arg("name")
    if not SERVICE_NAME.fullmatch(name):
        raise ActionError(f"{req.label}: invalid service name {name!r}")
    backend = choose_backend(name)
    wait = req.float_arg("wait", DEFAULT_WAIT)
    return name, backend, backend.state(name), wait


def _require(st: ServiceState, backend: ServiceBackend) -> None:
    if not st.exists:
        raise ActionError(f"no service {st.name} on this host ({backend.label}: {st.detail})")


def converge_running(backend: ServiceBackend, name: str, wait: float, restart: bool) -> tuple[ServiceState, str]:
    """Start (or restart), then insist on running + ready, all within `wait` seconds (the
    readiness check gets what the start left of it, at least a second). Shared with appmgr."""
    clock = core.system()
    started = clock.monotonic()
    r = backend.restart(name, wait) if restart else backend.start(name, wait)
    verb = "restart" if restart else "start"
    after = backend.state(name)
    if not after.running:
        raise ActionError(f"{name} did not {verb}: {r.line() if not r.ok else after.detail}")
    check = backend.ready(name, max(1, math.ceil(wait - (clock.monotonic() - started))))
    if check is not None and not check.ok:
        raise ActionError(f"{name} runs but was not ready {clock.monotonic() - started:.1f} s after the {verb} "
                          f"(readiness check, {wait:g} s allowed): {check.line()}")
    if not r.ok:
        raise ActionError(f"{name}: {backend.label} {verb} reported failure: {r.line()}")
    return after, f"{name} {verb}ed" + (" and ready" if check is not None else "")


@agent.action
def status(req: Request) -> Reply:
    name, backend, st, _ = _args(req)
    word = _word(st.running) if st.exists else "absent"
    return Reply.ok(f"{name} {word}", before=word, after=word, data=_data(st, backend, state=word))


@agent.action
def start(req: Request) -> Reply:
    name, backend, st, wait = _args(req)
    _require(st, backend)
    if st.running:
        return Reply.ok(f"{name} already running", before="running", after="running", data=_data(st, backend))
    if req.dry_run:
        return Reply.done(True, f"{name} would be started", dry_run=True, before="stopped", after="running",
                          data=_data(st, backend))
    after, msg = converge_running(backend, name, wait, restart=False)
    return Reply.done(True, msg, before="stopped", after="running", data=_data(after, backend))


@agent.action
def stop(req: Request) -> Reply:
    name, backend, st, wait = _args(req)
    _require(st, backend)
    if not st.running:
        return Reply.ok(f"{name} already stopped", before="stopped", after="stopped", data=_data(st, backend))
    if req.dry_run:
        return Reply.done(True, f"{name} would be stopped", dry_run=True, before="running", after="stopped",
                          data=_data(st, backend))
    r = backend.stop(name, wait)
    after = backend.state(name)
    if after.running:
        raise ActionError(f"{name} did not stop: {r.line() if not r.ok else after.detail}")
    return Reply.done(True, f"{name} stopped", before="running", after="stopped", data=_data(after, backend))


@agent.action
def restart(req: Request) -> Reply:
    """Always a change: a restart is asked for its side effect (reload code, libraries)."""
    name, backend, st, wait = _args(req)
    _require(st, backend)
    if req.dry_run:
        return Reply.done(True, f"{name} would be restarted", dry_run=True, before=_word(st.running),
                          after="running", data=_data(st, backend, previous_pid=st.pid))
    after, msg = converge_running(backend, name, wait, restart=True)
    return Reply.done(True, msg, before=_word(st.running), after="running",
                      data=_data(after, backend, previous_pid=st.pid))


def _set_enabled(req: Request, on: bool) -> Reply:
    name, backend, st, wait = _args(req)
    _require(st, backend)
    word, was = ("enabled" if on else "disabled"), backend.enabled(name)
    before = "enabled" if was else "disabled"
    data = _data(st, backend, enabled=was)
    if was == on:
        return Reply.ok(f"{name} already {word}", before=before, after=word, data=data)
    if req.dry_run:
        return Reply.done(True, f"{name} would be {word}", dry_run=True, before=before, after=word, data=data)
    r = backend.set_enabled(name, on, wait)
    if backend.enabled(name) != on:
        raise ActionError(f"{name} could not be {word}: {r.line()}")
    return Reply.done(True, f"{name} {word}", before=before, after=word,
                      data=_data(backend.state(name), backend, enabled=on))


@agent.action
def enable(req: Request) -> Reply:
    """Start at boot (systemd: `systemctl enable`; runit: the /etc/service link, which starts it)."""
    return _set_enabled(req, True)


@agent.action
def disable(req: Request) -> Reply:
    """Not at boot (systemd: `systemctl disable`, the running service is left alone; runit:
    unlinked, which stops it)."""
    return _set_enabled(req, False)


@agent.action
def reload(req: Request) -> Reply:
    name, backend, st, wait = _args(req)
    _require(st, backend)
    if not st.running:
        raise ActionError(f"{name} is not running; nothing to reload")
    if req.dry_run:
        return Reply.done(True, f"{name} would be reloaded", dry_run=True, before="running", after="running",
                          data=_data(st, backend))
    r = backend.reload(name, wait)
    after = backend.state(name)
    if not r.ok or not after.running:
        raise ActionError(f"{name} reload failed: {r.line() if not r.ok else after.detail}")
    return Reply.done(True, f"{name} reloaded", before="running", after="running", data=_data(after, backend))
