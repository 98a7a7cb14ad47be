"""lease: the deploy lock, held on each host a run changes. One lease per host, in one file, read
and written under an exclusive flock, so two controllers asking at once are served one after the
other by the host itself: exactly one holds it. A lease names its holder (caller, feature, run id,
start) and expires unless renewed; an expired lease is taken over, and the reply says whose it was.

The expiry is the host's own clock (`expires` = host time at acquire/renew + ttl), so controllers
with skewed clocks agree on it."""
from __future__ import annotations

import json
import os

from .. import core
from ..core import Reply, Request

agent = core.Agent(__name__, "the deploy lock on this host: acquire, renew, release, status")

LEASE_DIR = "/var/lib/orchestrator"
LEASE_FILE = "lease.json"
LOCK_FILE = "lease.lock"


class _Locked:
    """The lease file's lock (flock on a side file: the lease file itself is replaced by rename)."""

    def __enter__(self) -> "_Locked":
        import fcntl
        os.makedirs(LEASE_DIR, mode=0o755, exist_ok=True)
        self.fd = os.open(os.path.join(LEASE_DIR, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)  # closing drops the flock


def _read() -> dict | None:
    text = core.system().read_text(os.path.join(LEASE_DIR, LEASE_FILE))
    if not text:
        return None
    try:
        lease = json.loads(text)
    except ValueError:
        return None  # a torn or foreign file holds nothing: the rename below never leaves one
    return lease if isinstance(lease, dict) and isinstance(lease.get("run"), str) else None


def _write(lease: dict | None) -> None:
    """Replace the lease atomically (write, fsync, rename): a crash leaves the old or the new one."""
    path = os.path.join(LEASE_DIR, LEASE_FILE)
    if lease is None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        return
    tmp = f"{path}.tmp-{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, (json.dumps(lease, sort_keys=True) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)


def _run_id(req: Request) -> str:
    return req.str_arg("run")  # checked against protocol_args.RUN_ID before dispatch


def _ttl(req: Request) -> float:
    return req.float_arg("ttl", 60.0)  # finite and bounded: protocol_args checked it


def describe(lease: dict, now: float) -> str:
    """`alice@ci running deploy_webapp (run 3f2a...) since 08:01:02 UTC, expires in 41 s`."""
    import time
    since = time.strftime("%H:%M:%S UTC", time.gmtime(float(lease.get("started", 0))))
    left = float(lease.get("expires", 0)) - now
    when = f"expires in {left:.0f} s" if left > 0 else f"expired {-left:.0f} s ago"
    return (f"{lease.get('caller') or 'unknown caller'} running {lease.get('feature') or 'a run'} "
            f"(run {lease['run']}) since {since}, {when}")


def _view(lease: dict | None, now: float) -> dict | None:
    if lease is None:
        return None
    return {**lease, "expired": float(lease.get("expires", 0)) <= now, "text": describe(lease, now)}


@agent.action
def status(req: Request) -> Reply:
    """Read-only: who holds the lease here, if anyone."""
    now = core.system().time()
    lease = _read()
    view = _view(lease, now)
    text = "free" if view is None else ("expired: " if view["expired"] else "held by ") + view["text"]
    return Reply.ok(text, before=view, after=view, data={"lease": view})


@agent.action
def acquire(req: Request) -> Reply:
    """Take the lease for run `run` (or renew it if that run holds it). Held by another run and
    not expired: failed, naming the holder (data.holder). Expired: taken over (data.took_over)."""
    run, ttl = _run_id(req), _ttl(req)
    feature = req.str_arg("feature", "")
    with _Locked():
        now = core.system().time()
        held = _read()
        if held is not None and held["run"] != run and float(held.get("expires", 0)) > now:
            return Reply.failed(f"deploy lock held by {describe(held, now)}",
                                before=_view(held, now), after=_view(held, now), data={"holder": _view(held, now)})
        mine = held is not None and held["run"] == run
        if req.dry_run:  # a dry run says whether it would get the lease, and takes nothing
            return Reply.done(not mine, "holds the lease" if mine else "would take the lease",
                              dry_run=True, before=_view(held, now))
        lease = {"run": run, "caller": req.caller, "feature": feature, "reqid": req.reqid,
                 "started": held["started"] if mine else now, "expires": now + ttl}
        _write(lease)
    data: dict = {"lease": _view(lease, now)}
    if mine:
        return Reply.ok(f"lease renewed for {ttl:g} s", before=_view(held, now), after=data["lease"], data=data)
    if held is not None:
        data["took_over"] = _view(held, now)
        return Reply.done(True, f"took over the expired lease of {describe(held, now)}",
                          before=data["took_over"], after=data["lease"], data=data)
    return Reply.done(True, f"lease taken for {ttl:g} s", after=data["lease"], data=data)


@agent.action
def renew(req: Request) -> Reply:
    """Push the expiry of run `run`'s lease `ttl` seconds ahead; failed if the run lost it."""
    run, ttl = _run_id(req), _ttl(req)
    with _Locked():
        now = core.system().time()
        held = _read()
        if held is None or held["run"] != run:
            who = "nobody" if held is None else describe(held, now)
            return Reply.failed(f"lease of run {run} lost: now held by {who}", data={"holder": _view(held, now)})
        if req.dry_run:
            return Reply.ok("would renew the lease", data={"lease": _view(held, now)})
        lease = {**held, "expires": now + ttl}
        _write(lease)
    return Reply.ok(f"lease renewed for {ttl:g} s", data={"lease": _view(lease, now)})


@agent.action
def release(req: Request) -> Reply:
    """Give the lease up if run `run` holds it; another run's lease is left alone."""
    run = _run_id(req)
    with _Locked():
        now = core.system().time()
        held = _read()
        if held is None or held["run"] != run:
            who = "free" if held is None else f"held by {describe(held, now)}"
            return Reply.ok(f"not held by run {run} ({who})", data={"holder": _view(held, now)})
        if req.dry_run:
            return Reply.done(True, f"would release the lease of run {run}", dry_run=True, before=_view(held, now))
        _write(None)
    return Reply.done(True, f"lease of run {run} released", before=_view(held, now))
