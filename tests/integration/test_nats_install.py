"""`orch install nats` on the lab: a host without a NATS agent gets one over SSH and then answers
over NATS; a second install changes nothing; the same command moves it onto a broker that wants TLS
with client certificates and a password, where the controller and the agent connect and a client
without credentials is refused; the secrets appear in no output, reply or audit line.

One host (web9) of the default estate; the TLS broker (lab/natstls.py) runs on the bridge next to
the lab's own for this module only; web9 goes back to the lab's broker at the end."""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import pytest

from orchestrator_lib.controller.session import Session
from orchestrator_lib.host.nats_service import client_options
from tests.conftest import ROOT

HOST = "web9"
LOCAL = ROOT / "environments" / "local.yaml"
TLS_PORT, TLS_MONITOR = 4223, 8223


def orch(*args: str, env=LOCAL) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator_lib.cli", *args, "--env", str(env), "--no-progress"],
                          cwd=ROOT, capture_output=True, text=True, timeout=180)


def nats_ping(env, timeout: float = 20.0) -> str:
    """web9's status over NATS, waiting up to `timeout` for its agent to connect."""
    deadline = time.monotonic() + timeout
    with Session(env, transport="nats") as session:
        while True:
            status = session.call([session.host(HOST)], "rpcutil", "ping").results[HOST].status.value
            if status == "ok" or time.monotonic() > deadline:
                return status
            time.sleep(0.5)


def remove_nats_agent(lab) -> None:
    script = ("sv -w 10 down /etc/service/orchestrator-nats; rm -f /etc/service/orchestrator-nats; "
              "sleep 6; rm -rf /etc/sv/orchestrator-nats /var/lib/orchestrator/nats-* /etc/orchestrator/nats.json")
    assert lab.exec_in(HOST, ["sh", "-c", script], timeout=60).returncode == 0


@pytest.fixture(scope="module")
def tls_estate(lab, tmp_path_factory):
    """The TLS broker (started once, stopped by PID) and an estate file that uses it."""
    from orchestrator_lib.lab import natstls
    state = tmp_path_factory.mktemp("natstls")
    tls = natstls.make(state, lab.gateway, TLS_PORT, TLS_MONITOR)
    tls.broker.start()
    text = LOCAL.read_text().replace("../.lab/", f"{ROOT}/.lab/")
    head, _, rest = text.partition("nats:\n")
    rest = rest[rest.index("\nlab:"):]
    nats = (f"nats:\n  servers: [{tls.broker.url}]\n  collective: orch\n"
            f"  tls: {{ca: {tls.ca}, cert: {tls.controller_cert}, key: {tls.controller_key}}}\n"
            f"  user: orch\n  password_file: {tls.controller_password}\n"
            f"  agent: {{user: agent, password_file: {tls.agent_password}, tls_cert: {tls.agent_cert}, "
            f"tls_key: {tls.agent_key}}}")
    estate = state / "tls.yaml"
    estate.write_text(head + nats + rest)
    try:
        yield estate, tls
    finally:
        tls.broker.stop()


def test_install_puts_the_nats_agent_on_a_host_without_one_and_a_second_run_changes_nothing(lab):
    remove_nats_agent(lab)
    assert nats_ping(LOCAL, timeout=0) == "unreachable"
    first = orch("install", "nats", "-I", HOST, "--changed")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "changed" in first.stdout and "runit" in first.stdout
    assert nats_ping(LOCAL) == "ok"
    second = orch("install", "nats", "-I", HOST, "--json")
    assert second.returncode == 0, second.stdout + second.stderr
    assert json.loads(second.stdout)["results"][HOST]["status"] == "ok"  # already installed and running
    mode = lab.exec_in(HOST, ["stat", "-c", "%a %U", "/etc/orchestrator/nats.json"]).stdout.split()
    assert mode == ["600", "root"]


def test_over_tls_with_passwords_the_agent_and_controller_connect_and_a_client_without_credentials_is_refused(
        lab, tls_estate):
    estate, tls = tls_estate
    secrets = [tls.controller_password.read_text().strip(), tls.agent_password.read_text().strip(),
               tls.agent_key.read_text().splitlines()[1]]
    try:
        moved = orch("install", "nats", "-I", HOST, "-v", env=estate)
        assert moved.returncode == 0, moved.stdout + moved.stderr
        assert nats_ping(estate) == "ok"  # the controller over TLS + password, the agent too
        config = json.loads(lab.exec_in(HOST, ["cat", "/etc/orchestrator/nats.json"]).stdout)
        assert config["servers"] == [tls.broker.url] and config["user"] == "agent" and "tls" in config
        with Session(LOCAL, transport="nats") as plain:  # the lab's own broker no longer hears web9
            assert plain.call([plain.host(HOST)], "rpcutil", "ping").results[HOST].status.value == "unreachable"

        async def connect(**options):
            import nats
            nc = await nats.connect(tls.broker.url, connect_timeout=3, allow_reconnect=False,
                                    max_reconnect_attempts=0, error_cb=_quiet, **options)
            await nc.close()

        with pytest.raises(Exception, match="Authorization Violation"):  # TLS right, no user
            asyncio.run(connect(**client_options(tls_ca=str(tls.ca), tls_cert=str(tls.controller_cert),
                                                 tls_key=str(tls.controller_key))))
        with pytest.raises(Exception):  # a password but no client certificate: the TLS handshake fails
            asyncio.run(connect(**client_options(tls_ca=str(tls.ca), user="orch",
                                                 password=tls.controller_password.read_text().strip())))
        audit = lab.exec_in(HOST, ["cat", "/var/log/orchestrator/audit.jsonl"]).stdout
        shown = moved.stdout + moved.stderr + audit
        assert not any(secret in shown for secret in secrets)
    finally:
        back = orch("install", "nats", "-I", HOST)
    assert back.returncode == 0, back.stdout + back.stderr
    assert nats_ping(LOCAL) == "ok"


async def _quiet(error: Exception) -> None:
    pass
