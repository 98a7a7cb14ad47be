"""Ansible inventories (INI, YAML, a directory) read through ansible-core's own loader: groups,
children, ranges, vars, and the ansible_* connection variables; bad ones in one line."""
import shutil
import sys
from pathlib import Path

import pytest

from orchestrator_lib.controller.errors import InventoryError
from orchestrator_lib.controller.inventory import load_inventory

pytest.importorskip("ansible.inventory.manager")  # not tests/unit/ansible/, a folder of inventories
HERE = Path(__file__).parent / "ansible"
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["lab.ini", "lab.yml"])
def test_the_lab_as_an_ansible_inventory(name):
    inv = load_inventory(HERE / name)
    assert sorted(inv.hosts) == sorted(["lb1"] + [f"web{i}" for i in range(1, 10)])      # web[1:4], web[5:9]
    assert inv.groups["web"] == tuple(f"web{i}" for i in range(1, 10))                   # children
    assert inv.groups["web_alfa"] == ("web1", "web2", "web3", "web4")
    web8, lb1 = inv.hosts["web8"], inv.hosts["lb1"]
    assert set(web8.classes) == {"web", "web_bravo", "uk"}
    assert web8.facts == {"cluster": "bravo", "country": "uk"}                            # group vars
    assert lb1.facts == {"role": "lb"} and lb1.address == "10.231.0.2"                    # host vars
    assert (web8.user, web8.become, web8.key) == ("deploy", "sudo", REPO / ".lab/local/id_ed25519")
    assert web8.address == "web8" and "address" not in web8.explicit                     # ssh config's HostName applies
    assert inv.known_hosts == REPO / ".lab/local/known_hosts" and inv.ssh_config == HERE / "ssh_config"


def test_a_directory_and_proxyjump(tmp_path):
    (tmp_path / "inv").mkdir()
    (tmp_path / "inv" / "hosts").write_text("[web]\nweb[01:02] ansible_port=2222\n\n[web:vars]\n"
                                            "ansible_ssh_common_args='-J ops@bastion1:22'\n")
    inv = load_inventory(tmp_path / "inv")
    assert sorted(inv.hosts) == ["web01", "web02"]
    assert (inv.hosts["web01"].jump, inv.hosts["web01"].port) == ("ops@bastion1:22", 2222)
    assert inv.hosts["web01"].explicit == {"port", "jump"}


@pytest.mark.parametrize("name, where", [("broken.ini", "broken.ini:3: "), ("broken.yml", "broken.yml:6: ")])
def test_a_malformed_inventory_is_one_line_naming_file_and_line(name, where):
    with pytest.raises(InventoryError) as caught:
        load_inventory(HERE / name)
    message = str(caught.value)
    assert where in message and "invalid Ansible inventory" in message and "\n" not in message


def test_without_ansible_core_one_line_says_how_to_add_it(monkeypatch):
    for mod in [m for m in sys.modules if m == "ansible" or m.startswith("ansible.")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setitem(sys.modules, "ansible", None)
    with pytest.raises(InventoryError, match=r"lab.ini: an Ansible inventory needs ansible-core: "
                                             r"pip install 'orchestrator-lib\[ansible\]'"):
        load_inventory(HERE / "lab.ini")


def test_an_estate_file_is_still_an_estate_file():
    assert load_inventory(REPO / "environments" / "local.yaml").lab
