"""The SSH pool's checks that need no host: key files are read before any connection."""
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from orchestrator_lib.errors import TransportError
from orchestrator_lib.inventory import load_inventory
from orchestrator_lib.transport import SSHPool


def estate(tmp_path, key: str):
    env = tmp_path / "estate.yaml"
    hosts = "\n".join(f"  web{i}: {{address: 10.0.0.{i}}}" for i in range(1, 6))
    env.write_text(f"known_hosts: {tmp_path}/known_hosts\ndefaults: {{key: {key}}}\nhosts:\n{hosts}\n"
                   f"  db1: {{address: 10.0.1.1, key: {tmp_path}/db_key}}\n")
    return load_inventory(env)


def write_key(path):
    pem = Ed25519PrivateKey.generate().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                                    serialization.NoEncryption())
    path.write_bytes(pem)


def test_a_missing_key_is_one_error_naming_the_environment_and_its_hosts(tmp_path):
    inventory = estate(tmp_path, f"{tmp_path}/nope")
    pool = SSHPool(inventory, ssh_config=None)  # constructing needs no key: discovery works without
    web = [h for h in inventory.hosts.values() if h.name.startswith("web")]
    with pytest.raises(TransportError, match=rf"^{tmp_path}/estate.yaml: private key {tmp_path}/nope does not exist "
                                             r"\(the key of web1, web2, web3 and 2 more\)$"):
        pool.check_keys(web)


def test_a_directory_is_not_a_key_and_good_keys_pass(tmp_path):
    (tmp_path / "keydir").mkdir()
    inventory = estate(tmp_path, f"{tmp_path}/keydir")
    pool = SSHPool(inventory, ssh_config=None)
    with pytest.raises(TransportError, match=r"keydir is a directory, not a key file \(the key of web1,"):
        pool.check_keys(list(inventory.hosts.values()))
    write_key(tmp_path / "db_key")
    pool.check_keys([inventory.host("db1")])  # only the hosts asked about are checked
    write_key(tmp_path / "key")
    good = SSHPool(estate(tmp_path, f"{tmp_path}/key"), ssh_config=None)
    good.check_keys(list(good.inventory.hosts.values()))
