"""The bastion estate (environments/bastion.yaml): its web hosts accept SSH only from bastion1, so
the deployer reaches them through it (estate `jump:`, or `ProxyJump` in an ssh config), with both
host keys checked. Brought up once for this module, next to the default lab, and taken down."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator_lib.controller.errors import HostKeyError
from orchestrator_lib.controller.inventory import load_inventory
from orchestrator_lib.controller.orchestration import Status
from orchestrator_lib.controller.reporting import ResultMatrix
from orchestrator_lib.controller.session import Session
from orchestrator_lib.controller.transports.ssh import SSHPool
from tests.conftest import ROOT

ESTATE = ROOT / "environments" / "bastion.yaml"
WEB = ["web1", "web2", "web3"]
NEW = "4.2.6-3.el5"


@pytest.fixture(scope="module")
def bastion_lab():
    import os
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    from orchestrator_lib.lab import Lab
    lab = Lab(load_inventory(ESTATE))
    lab.up(fresh=True, progress=lambda _msg: None)
    try:
        yield lab
    finally:
        lab.down(progress=lambda _msg: None)


def ping(env: Path, hosts: list[str] = WEB, **pool_args):
    with Session(env) as session:
        inventory = session.inventory
        return session.call([inventory.host(h) for h in hosts], "rpcutil", "ping")


def test_the_web_hosts_refuse_ssh_that_does_not_come_through_the_bastion(bastion_lab):
    inventory = load_inventory(ESTATE)
    direct = dataclasses.replace(inventory.host("web1"), jump=None)
    with SSHPool(inventory, ssh_config=None) as pool:
        with pytest.raises(Exception, match=r"^web1: unreachable at 10\.231\.8\.11:22: connection refused"):
            pool.transport(direct)
        pool.transport(inventory.host("web1"))        # through bastion1
        assert pool.connects == 2                   # bastion1 and web1


def test_the_seed_deploy_passes_through_the_bastion(bastion_lab, tmp_path):
    seed = (ROOT / "features" / "deploy_webapp.feature").read_text()
    feature = tmp_path / "bastion_seed.feature"   # a name no feature of features/ has (--include)
    feature.write_text(seed.replace("the load balancer has ip address 10.231.0.2", "the load balancer is lb1"))
    report = tmp_path / "report.json"
    done = subprocess.run([sys.executable, "-m", "behave", "features/", str(feature), "--include", feature.name,
                           "-D", f"env={ESTATE}", "-D", f"report={report}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    assert ResultMatrix.read_json(report).passed
    for host in ("web1", "web2"):   # country=de
        assert bastion_lab.exec_in(host, ["dpkg-query", "-W", "-f=${Version}", "mywebapp"]).stdout == NEW


def test_proxyjump_in_an_ssh_config_works_like_the_estate_jump(bastion_lab, tmp_path):
    text = ESTATE.read_text().replace("  jump: bastion1", "  # no jump: the ssh config says")
    text = text.replace("../.lab/", f"{ROOT}/.lab/")
    (tmp_path / "ssh_config").write_text("Host web*\n    ProxyJump bastion1\n")
    env = tmp_path / "via-config.yaml"
    env.write_text("ssh_config: ssh_config\n" + text)
    assert load_inventory(env).host("web1").jump is None
    result = ping(env)
    assert result.ok, {h: r.message for h, r in result.results.items()}


def test_both_host_keys_are_checked(bastion_lab, tmp_path):
    inventory = load_inventory(ESTATE)
    lines = inventory.known_hosts.read_text().splitlines()
    for drop, named in (("web2", "web2"), ("bastion1", "bastion1")):
        known = tmp_path / f"known-{drop}"
        known.write_text("\n".join(line for line in lines if not line.startswith(f"{drop},")) + "\n")
        with SSHPool(dataclasses.replace(inventory, known_hosts=known), ssh_config=None) as pool:
            with pytest.raises(Exception) as caught:
                pool.transport(inventory.host("web2"))
        message = str(caught.value)
        assert f"{named}: host key SHA256:" in message and "is not in" in message, message
        assert isinstance(caught.value, HostKeyError)


def test_with_the_bastion_stopped_each_host_is_unreachable_through_it(bastion_lab):
    bastion_lab.stop_host("bastion1")
    try:
        result = ping(ESTATE)
        for host in WEB:
            r = result.results[host]
            assert r.status is Status.UNREACHABLE and "\n" not in r.message
            assert r.message.startswith(f"{host}: unreachable through bastion1 (bastion1: unreachable at 10.231.8.3:22"), r.message
    finally:
        bastion_lab.start_host("bastion1")
