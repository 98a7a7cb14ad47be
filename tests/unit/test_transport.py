"""The SSH pool's checks that need no lab host: key files are read before any connection; host
key types are negotiated as OpenSSH does, against an in-process paramiko server."""
import base64
import socket
import threading

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from orchestrator_lib.controller.errors import HostKeyError, TransportError, UnreachableError
from orchestrator_lib.controller.inventory import load_inventory
from orchestrator_lib.controller.transports.ssh import SSHPool


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


# ---- host key negotiation against a real (in-process) SSH server --------------------------------


class _Accepting(paramiko.ServerInterface):
    """Any key logs in; an exec request is recorded, then the connection drops (a host lost
    while the command runs)."""

    def __init__(self, server):
        self.server = server

    def get_allowed_auths(self, username):
        return "publickey"

    def check_auth_publickey(self, username, key):
        return paramiko.AUTH_SUCCESSFUL

    def check_channel_request(self, kind, chanid):
        return paramiko.OPEN_SUCCEEDED

    def check_channel_exec_request(self, channel, command):
        self.server.commands.append(command.decode())
        threading.Timer(0.1, channel.get_transport().close).start()
        return True


class SSHServer:
    """One port on 127.0.0.1 offering several host keys (as sshd does with ed25519 + RSA/ECDSA)."""

    def __init__(self, host_keys):
        self.host_keys = host_keys
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.transports = []
        self.commands = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            t = paramiko.Transport(sock)
            for key in self.host_keys:
                t.add_server_key(key)
            self.transports.append(t)
            try:
                t.start_server(server=_Accepting(self))
            except Exception:
                pass

    def close(self):
        self.listener.close()
        for t in self.transports:
            t.close()


@pytest.fixture(scope="module")
def host_keys(tmp_path_factory):
    path = tmp_path_factory.mktemp("hostkeys") / "ed25519"
    write_key(path)
    return {"ed25519": paramiko.Ed25519Key.from_private_key_file(str(path)),
            "rsa": paramiko.RSAKey.generate(2048), "ecdsa": paramiko.ECDSAKey.generate()}


def known_line(name, key):
    return f"{name} {key.get_name()} {base64.b64encode(key.asbytes()).decode()}\n"


def pool_for(tmp_path, server, known):
    write_key(tmp_path / "client")
    (tmp_path / "known_hosts").write_text("".join(known_line(f"[127.0.0.1]:{server.port}", k) for k in known))
    env = tmp_path / "estate.yaml"
    env.write_text(f"known_hosts: {tmp_path}/known_hosts\n"
                   f"hosts:\n  web1: {{address: 127.0.0.1, port: {server.port}, key: {tmp_path}/client}}\n")
    inventory = load_inventory(env)
    return SSHPool(inventory, ssh_config=None), inventory.host("web1")


@pytest.mark.parametrize("known_type", ["rsa", "ecdsa"])
def test_a_host_known_by_its_rsa_or_ecdsa_key_is_asked_for_that_key(tmp_path, host_keys, known_type):
    """The server also has ed25519 (paramiko's first choice); known_hosts holds only the other key:
    OpenSSH connects, so must we, and verify the key known_hosts names."""
    server = SSHServer([host_keys["ed25519"], host_keys[known_type]])
    pool, web1 = pool_for(tmp_path, server, [host_keys[known_type]])
    try:
        key = pool.transport(web1).get_remote_server_key()
        assert (key.get_name(), key.asbytes()) == (host_keys[known_type].get_name(), host_keys[known_type].asbytes())
    finally:
        pool.close()
        server.close()


def test_a_changed_key_of_the_known_type_is_still_refused(tmp_path, host_keys):
    server = SSHServer([host_keys["ed25519"], host_keys["rsa"]])
    pool, web1 = pool_for(tmp_path, server, [paramiko.RSAKey.generate(2048)])  # not the server's
    try:
        with pytest.raises(HostKeyError, match=r"web1: host key changed: got ssh-rsa SHA256:\S+, expected ssh-rsa "):
            pool.transport(web1)
    finally:
        pool.close()
        server.close()


def test_a_host_known_by_ed25519_still_negotiates_ed25519(tmp_path, host_keys):
    server = SSHServer([host_keys["rsa"], host_keys["ed25519"]])
    pool, web1 = pool_for(tmp_path, server, [host_keys["ed25519"]])
    try:
        assert pool.transport(web1).get_remote_server_key().get_name() == "ssh-ed25519"
    finally:
        pool.close()
        server.close()


def test_a_command_whose_connection_drops_while_it_runs_is_not_sent_again(tmp_path, host_keys):
    """Reconnecting is for a connection found dead before the command went out; after, the
    command may have run (an agent request read from stdin): never run it a second time."""
    server = SSHServer([host_keys["ed25519"]])
    pool, web1 = pool_for(tmp_path, server, [host_keys["ed25519"]])
    try:
        for stdin in (b"{}", b"x" * (8 << 20)):  # dropped after stdin went / while it was being sent
            server.commands.clear()
            with pytest.raises(UnreachableError, match=r"^web1: connection lost while the command ran \(it may or "
                                                       r"may not have run; not sent again\)"):
                pool.exec(web1, "apt-get install -y mywebapp", stdin=stdin, timeout=10)
            assert server.commands == ["apt-get install -y mywebapp"]
    finally:
        pool.close()
        server.close()
