"""How a host is reached (SSHPool.route): the inventory's explicit values win over ~/.ssh/config
(or the estate's `ssh_config:`), which wins over the defaults. Pure lookups: nothing connects."""
from pathlib import Path

import pytest

from orchestrator_lib.controller.errors import TransportError
from orchestrator_lib.controller.inventory import load_inventory
from orchestrator_lib.controller.transports.ssh import Route, SSHPool

SSH_CONFIG = """\
Host bastion1
    HostName 10.9.0.3
    User jumper
    Port 2022
Host web*
    User fromconfig
    Port 2200
    IdentityFile ~/.ssh/web_key
    ProxyJump bastion1
Host db1
    ProxyJump none
Host *
    User everyone
"""


def pool(tmp_path: Path, hosts: str, defaults: str = "{}", config: str = SSH_CONFIG) -> SSHPool:
    (tmp_path / "ssh_config").write_text(config)
    env = tmp_path / "estate.yaml"
    env.write_text(f"ssh_config: ssh_config\nknown_hosts: kh\ndefaults: {defaults}\nhosts:\n{hosts}")
    return SSHPool(load_inventory(env), ssh_config=None)


def test_ssh_config_fills_what_the_inventory_leaves_open(tmp_path):
    p = pool(tmp_path, "  web1: {address: 10.0.0.11}\n")
    assert p.route(p.inventory.host("web1")) == Route("10.0.0.11", 2200, "fromconfig",
                                                      (Path("~/.ssh/web_key").expanduser(),), "bastion1")


def test_the_inventory_wins_over_ssh_config_host_by_host_and_by_defaults(tmp_path):
    p = pool(tmp_path, "  web1: {address: 10.0.0.11, user: deploy, port: 22, key: k, jump: b2}\n"
                       "  web2: {address: 10.0.0.12}\n", defaults="{user: ops}")
    assert p.route(p.inventory.host("web1")) == Route("10.0.0.11", 22, "deploy", (tmp_path / "k",), "b2")
    web2 = p.route(p.inventory.host("web2"))
    assert (web2.user, web2.port, web2.jump) == ("ops", 2200, "bastion1")   # defaults are the inventory's too


def test_defaults_when_neither_says(tmp_path):
    p = pool(tmp_path, "  app1: {address: 10.0.0.5}\n", config="Host other\n  User x\n")
    assert p.route(p.inventory.host("app1")) == Route("10.0.0.5", 22, "root", (), None)


def test_wildcards_and_proxyjump_none(tmp_path):
    p = pool(tmp_path, "  db1: {address: 10.0.0.21}\n")
    route = p.route(p.inventory.host("db1"))
    assert (route.user, route.jump) == ("everyone", None)   # Host * applies; ProxyJump none is none


def test_a_jump_host_named_only_in_ssh_config_gets_its_hostname_user_and_port(tmp_path):
    p = pool(tmp_path, "  web1: {address: 10.0.0.11}\n")
    bastion = p.jump_host("bastion1")
    assert p.route(bastion) == Route("10.9.0.3", 2022, "jumper", (), None)
    explicit = p.jump_host("admin@bastion1:22")
    assert (p.route(explicit).user, p.route(explicit).port, p.route(explicit).address) == ("admin", 22, "10.9.0.3")


def test_a_jump_host_of_the_estate_is_that_host_and_a_chain_is_the_last_through_the_rest(tmp_path):
    p = pool(tmp_path, "  gw: {address: 10.0.0.2, user: gate}\n  web1: {address: 10.0.0.11, jump: gw}\n")
    assert p.jump_host("gw") is p.inventory.host("gw")
    last = p.jump_host("gw,bastion1")
    assert (p.route(last).address, p.route(last).jump) == ("10.9.0.3", "gw")


def test_a_missing_ssh_config_named_by_the_estate_is_one_error(tmp_path):
    env = tmp_path / "estate.yaml"
    env.write_text("ssh_config: nope\nhosts: {a: {address: 10.0.0.1}}\n")
    with pytest.raises(TransportError, match=r"estate.yaml: ssh_config: .*/nope does not exist$"):
        SSHPool(load_inventory(env), ssh_config=None)
