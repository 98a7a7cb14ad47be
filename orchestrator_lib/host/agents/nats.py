"""nats: this host's NATS agent service (host/nats_service.py), installed and upgraded by `orch
install nats` over SSH, the way the SSH agent itself is installed.

install: the service bundle (host/build.nats_archive) that `orch` uploaded to `upload` (any user's
file: it is read once and must hash to `sha`, as sudo's INSTALLER checks the agent), unpacked and
compiled into root-owned /var/lib/orchestrator/nats-SHA; its config /etc/orchestrator/nats.json
(mode 0600: it may hold the broker password) and TLS files under /etc/orchestrator/nats/; the
service definition for the host's service manager (runit: /etc/sv/orchestrator-nats linked into
/etc/service; systemd: /etc/systemd/system/orchestrator-nats.service). Idempotent: nothing that is
already as asked is written, and the service is restarted only when something changed. Older
nats-* bundles are removed. status: what is installed and whether the service runs.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile

from .. import core
from ..core import ActionError, Reply, Request

agent = core.Agent(__name__, "status, install (the host's NATS agent service)")

NAME = "orchestrator-nats"
BASE = "/var/lib/orchestrator"
CONFIG = "/etc/orchestrator/nats.json"
TLS_DIR = "/etc/orchestrator/nats"
LOG = "/var/log/orchestrator/nats.log"
RUNIT_SV, RUNIT_LINK = f"/etc/sv/{NAME}", f"/etc/service/{NAME}"
UNIT = f"/etc/systemd/system/{NAME}.service"
#: TLS files: argument -> (file, mode); the key is readable by root only.
TLS_FILES = {"tls_ca": ("ca.pem", 0o644), "tls_cert": ("cert.pem", 0o644), "tls_key": ("key.pem", 0o600)}
#: How long install waits for the (re)started service to run.
START_WAIT = 15.0


def bundle_dir(sha: str) -> str:
    return f"{BASE}/nats-{sha}"


def manager() -> str:
    """runit when the host runs runsvdir (the lab), systemd when it booted with it; "" otherwise."""
    sys_ = core.system()
    if sys_.exists("/etc/service") and sys_.which("sv") and sys_.process_running("runsvdir"):
        return "runit"
    if sys_.exists("/run/systemd/system") and sys_.which("systemctl"):
        return "systemd"
    return ""


def definition(kind: str, sha: str) -> str:
    command = f"/usr/bin/python3 -I {bundle_dir(sha)}/__main__.py {CONFIG}"
    if kind == "runit":
        return f"#!/bin/sh\n# Written by orchestrator (nats#install).\nexec {command} >>{LOG} 2>&1\n"
    return ("# Written by orchestrator (nats#install).\n[Unit]\nDescription=orchestrator NATS agent\n"
            "After=network-online.target\n\n[Service]\n"
            f"ExecStart={command}\nRestart=always\nRestartSec=1\n"
            f"StandardOutput=append:{LOG}\nStandardError=append:{LOG}\n\n[Install]\nWantedBy=multi-user.target\n")


def installed_sha() -> str:
    """The bundle the service definition runs ("" when there is none)."""
    for path in (f"{RUNIT_SV}/run", UNIT):
        text = core.system().read_text(path) or ""
        marker = f"{BASE}/nats-"
        if marker in text:
            return text.split(marker, 1)[1][:12]
    return ""


def running(kind: str) -> bool:
    if kind == "runit":
        r = core.run(["sv", "status", NAME], env={"SVDIR": "/etc/service"}, timeout=10)
        return r.stdout.startswith("run:")
    if kind == "systemd":
        return core.run(["systemctl", "is-active", "--quiet", NAME], timeout=10).rc == 0
    return False


@agent.action
def status(req: Request) -> Reply:
    kind = manager()
    sha = installed_sha()
    up = running(kind) if sha else False
    return Reply.ok(f"{'running' if up else 'not running'}: " + (f"nats-{sha} ({kind})" if sha else "not installed"),
                    data={"sha": sha or None, "manager": kind or None, "running": up})


def _write(path: str, data: bytes, mode: int, dry_run: bool) -> bool:
    """Write `path` atomically (root-owned, `mode`) unless it already holds `data`; True when it changed."""
    try:
        with open(path, "rb") as f:
            if f.read() == data and (os.stat(path).st_mode & 0o7777) == mode:
                return False
    except OSError:
        pass
    if dry_run:
        return True
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(path))
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return True


def _read_upload(path: str, sha: str) -> bytes:
    """The uploaded bundle's bytes, read once (no link followed) and checked against `sha`."""
    from ..policy import sha256
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as e:
        raise ActionError(f"cannot read the uploaded bundle {path}: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "rb") as f:
            data = f.read(64 * 1024 * 1024)
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass
    if not sha256(data).hex().startswith(sha):
        raise ActionError(f"the uploaded bundle {path} does not have hash {sha}")
    return data


def _unpack(data: bytes, sha: str) -> None:
    """Into a temporary directory beside the final one, compiled, then renamed into place."""
    import compileall
    import io
    import zipfile
    final = bundle_dir(sha)
    os.makedirs(BASE, 0o755, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f"nats-{sha}.tmp-", dir=BASE)
    try:
        zipfile.ZipFile(io.BytesIO(data)).extractall(tmp)
        if not compileall.compile_dir(tmp, ddir=final, quiet=1):
            raise ActionError("cannot compile the NATS service bundle")
        os.chmod(tmp, 0o755)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _config(req: Request) -> dict:
    """nats_service's config from the arguments (TLS files by their path on this host)."""
    config: dict = {"servers": list(req.args["servers"]), "collective": str(req.args["collective"])}
    if req.args.get("identity"):
        config["identity"] = str(req.args["identity"])
    for name in ("user", "password"):
        if req.args.get(name):
            config[name] = str(req.args[name])
    tls = {arg[4:]: f"{TLS_DIR}/{TLS_FILES[arg][0]}" for arg in TLS_FILES if req.args.get(arg)}
    if tls:
        config["tls"] = tls
    return config


def _restart(kind: str, was_linked: bool) -> None:
    if kind == "runit":
        if not was_linked:
            core.system().symlink(RUNIT_SV, RUNIT_LINK)  # runsvdir starts it at its next scan (<= 5 s)
        else:
            core.run(["sv", "restart", NAME], env={"SVDIR": "/etc/service"}, timeout=30)
    else:
        core.run(["systemctl", "daemon-reload"], timeout=60)
        core.run(["systemctl", "enable", NAME], timeout=60)
        core.run(["systemctl", "restart", NAME], timeout=60)
    deadline = core.system().monotonic() + START_WAIT
    while not running(kind):
        if core.system().monotonic() > deadline:
            raise ActionError(f"{NAME} did not start within {START_WAIT:g} s (see {LOG})")
        core.system().sleep(0.2)


@agent.action
def install(req: Request) -> Reply:
    kind = manager()
    if not kind:
        raise ActionError("no supported service manager on this host (runit with runsvdir, or systemd)")
    sha = str(req.args["sha"])
    data = _read_upload(str(req.args["upload"]), sha)
    changes = []
    if not os.path.isdir(bundle_dir(sha)):
        changes.append(f"bundle nats-{sha}")
        if not req.dry_run:
            _unpack(data, sha)
    for arg, (name, mode) in TLS_FILES.items():
        if req.args.get(arg) and _write(f"{TLS_DIR}/{name}", str(req.args[arg]).encode(), mode, req.dry_run):
            changes.append(f"{TLS_DIR}/{name}")
    config = json.dumps(_config(req), indent=2, sort_keys=True).encode() + b"\n"
    if _write(CONFIG, config, 0o600, req.dry_run):
        changes.append(CONFIG)
    if kind == "runit":
        if _write(f"{RUNIT_SV}/run", definition(kind, sha).encode(), 0o755, req.dry_run):
            changes.append(f"{RUNIT_SV}/run")
        linked = os.path.islink(RUNIT_LINK)
    else:
        if _write(UNIT, definition(kind, sha).encode(), 0o644, req.dry_run):
            changes.append(UNIT)
        linked = True
    if changes or not running(kind) or (kind == "runit" and not linked):
        changes.append(f"{NAME} (re)started")
        if req.dry_run:
            return Reply.done(True, f"nats-{sha} ({kind}): would change {', '.join(changes)}", dry_run=True,
                              data={"sha": sha, "manager": kind, "changes": changes})
        _restart(kind, linked)
    if not req.dry_run:
        for entry in os.listdir(BASE):
            if entry.startswith("nats-") and entry != f"nats-{sha}" and os.path.isdir(f"{BASE}/{entry}"):
                shutil.rmtree(f"{BASE}/{entry}", ignore_errors=True)
    message = f"nats-{sha} ({kind}): " + (", ".join(changes) if changes else "already installed and running")
    return Reply.done(bool(changes), message, data={"sha": sha, "manager": kind, "changes": changes})
