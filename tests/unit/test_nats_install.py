"""The estate's NATS TLS and login settings, and what `orch install nats` sends (nats#install)."""
from __future__ import annotations

import textwrap

import pytest

from orchestrator_lib import protocol_args
from orchestrator_lib.controller import nats_install
from orchestrator_lib.controller.inventory import InventoryError, load_inventory
from orchestrator_lib.host.redact import redact

ESTATE = """\
    nats:
      servers: [tls://10.0.0.9:4223]
      tls: {ca: ca.pem, cert: me.pem, key: me-key.pem}
      user: orch
      password_file: orch.password
      agent: {user: agent, password_file: agent.password, tls_cert: agent.pem, tls_key: agent-key.pem}
    hosts:
      web1: {address: 10.0.0.1}
    """


@pytest.fixture
def estate(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "environments").mkdir()
    for name in ("ca.pem", "me.pem", "me-key.pem", "agent.pem", "agent-key.pem"):
        (tmp_path / "environments" / name).write_text(f"-----BEGIN {name}-----\n")
    (tmp_path / "environments" / "agent.password").write_text("s3cret-agent\n")

    def write(text: str):
        (tmp_path / "environments" / "x.yaml").write_text(textwrap.dedent(text))
        return load_inventory("x")
    return write


def test_tls_and_passwords_are_paths_next_to_the_estate(estate, tmp_path):
    nats = estate(ESTATE).nats
    assert nats.tls_ca == tmp_path / "environments" / "ca.pem" and nats.user == "orch"
    assert nats.agent.user == "agent" and nats.agent.tls_key == tmp_path / "environments" / "agent-key.pem"


def test_a_client_certificate_without_its_key_is_an_error_naming_the_key(estate):
    with pytest.raises(InventoryError, match=r"x.yaml:\d+: nats.tls: a client certificate needs its key"):
        estate(ESTATE.replace(", key: me-key.pem", ""))
    with pytest.raises(InventoryError, match=r"nats.agent.*unknown key 'password'"):
        estate(ESTATE.replace("password_file: agent.password", "password: x"))


def test_install_sends_the_agents_credentials_and_the_audit_never_shows_the_secret_ones(estate):
    inventory = estate(ESTATE)
    path = nats_install.upload_path("0123456789ab")
    args = nats_install.install_args(inventory, path, "0123456789ab")
    assert args["password"] == "s3cret-agent" and args["user"] == "agent" and args["servers"] == ["tls://10.0.0.9:4223"]
    protocol_args.check("nats", "install", args)  # what the host checks before anything runs
    shown = redact(args)
    assert shown["password"] == shown["tls_key"] == "***" and shown["tls_cert"].startswith("-----BEGIN")


def test_install_refuses_an_upload_outside_its_own_tmp_names():
    with pytest.raises(protocol_args.ArgError, match="upload"):
        protocol_args.check("nats", "install", {"upload": "/etc/shadow", "sha": "0123456789ab",
                                                "servers": ["nats://h:4222"], "collective": "orch"})
