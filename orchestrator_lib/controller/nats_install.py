"""`orch install nats`: put the NATS agent service on hosts over SSH (and upgrade it), from the
estate's `nats:` section, so a host that only had SSH then answers over the broker.

Per host: the service bundle (host/build.nats_archive) is uploaded as the login user to
/tmp/orchestrator-nats-SHA-RANDOM.pyz (mode 0600); then the agent action nats#install, run as root
by the SSH agent (sudo or root login alike, under the host policy, audited), reads it once, checks
its hash, and installs bundle, config, TLS files and the service definition (host/agents/nats.py).
"""
from __future__ import annotations

import shlex
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .errors import OrchestratorError
from .inventory import Host, Inventory


def install_args(inventory: Inventory, upload: str, sha: str) -> dict[str, Any]:
    """nats#install's arguments: where the bundle is, its hash, and the agents' broker settings."""
    settings = inventory.nats
    if settings is None:
        raise OrchestratorError(f"{inventory.path.name}: install nats needs a 'nats:' section naming the broker's servers")
    args: dict[str, Any] = {"upload": upload, "sha": sha, "servers": list(settings.servers),
                            "collective": settings.collective}
    args.update(agent_credentials(inventory))
    return args


def agent_credentials(inventory: Inventory) -> dict[str, str]:
    """The agents' own broker credentials (nats.agent: user, password_file, tls_cert, tls_key) and
    the CA (nats.tls.ca), as file contents; read here, on the controller, never printed."""
    settings = inventory.nats
    out: dict[str, str] = {}
    if settings is None:
        return out
    agent = settings.agent
    files = {"tls_ca": settings.tls_ca, "tls_cert": agent.tls_cert, "tls_key": agent.tls_key,
             "password": agent.password_file}
    for arg, path in files.items():
        if path is None:
            continue
        try:
            text = path.read_text()
        except OSError as e:
            raise OrchestratorError(f"{inventory.path.name}: nats: cannot read {path}: {e.strerror or e}") from None
        out[arg] = text.strip() if arg == "password" else text
    if agent.user:
        out["user"] = agent.user
    return out


def upload_path(sha: str) -> str:
    return f"/tmp/orchestrator-nats-{sha}-{uuid.uuid4().hex[:8]}.pyz"


def upload(pool: Any, hosts: list[Host], data: bytes, path: str, workers: int = 16) -> dict[str, str]:
    """Upload `data` to `path` on every host as its login user; host name -> why it failed."""
    command = f"umask 077 && cat > {shlex.quote(path)}"

    def one(host: Host) -> tuple[str, str]:
        try:
            r = pool.exec(host, command, stdin=data, timeout=60)
        except Exception as e:  # unreachable, bad host key: named per host, the others go on
            return host.name, f"upload: {' '.join(str(e).split())}"
        if r.rc != 0:
            return host.name, f"upload to {path} failed: {(r.stderr.strip().splitlines() or [f'rc {r.rc}'])[0]}"
        return host.name, ""

    with ThreadPoolExecutor(max(1, min(workers, len(hosts)))) as ex:
        return {name: why for name, why in ex.map(one, hosts) if why}
