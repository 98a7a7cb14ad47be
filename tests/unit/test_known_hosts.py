"""known_hosts parsing and lookup: OpenSSH's format and meaning, without paramiko's linear scans."""
import base64
import hashlib
import hmac

import paramiko

from orchestrator_lib.controller.transports.known_hosts import KnownHosts, fingerprint

ED = b"\x00\x00\x00\x0bssh-ed25519" + b"\x01" * 36
ED2 = b"\x00\x00\x00\x0bssh-ed25519" + b"\x02" * 36
RSA = b"\x00\x00\x00\x07ssh-rsa" + b"\x03" * 40


def b64(blob: bytes) -> str:
    return base64.b64encode(blob).decode()


def hashed(name: str, salt: bytes = b"s" * 20) -> str:
    digest = hmac.digest(salt, name.encode(), "sha1")
    return f"|1|{b64(salt)}|{b64(digest)}"


def test_plain_names_ports_and_several_keys_per_name(tmp_path):
    path = tmp_path / "known_hosts"
    path.write_text(f"# comment\n\n10.0.0.1,web1 ssh-ed25519 {b64(ED)}\n"
                    f"[10.0.0.1]:2222 ssh-ed25519 {b64(ED2)}\n10.0.0.1 ssh-rsa {b64(RSA)}\n")
    known = KnownHosts.load(path)
    assert [(k.key_type, k.blob, k.line) for k in known.lookup("10.0.0.1")] == [
        ("ssh-ed25519", ED, 3), ("ssh-rsa", RSA, 5)]
    assert [k.blob for k in known.lookup("web1")] == [ED]
    assert [k.blob for k in known.lookup("[10.0.0.1]:2222")] == [ED2]
    assert known.lookup("10.0.0.2") == []


def test_hashed_names_match_only_their_host(tmp_path):
    path = tmp_path / "known_hosts"
    path.write_text(f"{hashed('10.0.0.7')} ssh-ed25519 {b64(ED)}\n"
                    f"{hashed('10.0.0.8', b'x' * 20)} ssh-ed25519 {b64(ED2)}\n")
    known = KnownHosts.load(path)
    assert [k.blob for k in known.lookup("10.0.0.7")] == [ED]
    assert [k.blob for k in known.lookup("10.0.0.8")] == [ED2]
    assert known.lookup("10.0.0.9") == []


def test_revoked_keys_and_cert_authorities_and_garbage(tmp_path):
    path = tmp_path / "known_hosts"
    path.write_text(f"@revoked * ssh-ed25519 {b64(ED2)}\n@cert-authority *.lab ssh-ed25519 {b64(ED)}\n"
                    "web1 ssh-ed25519 not-base64!\nweb2 ssh-ed25519\n|1|bad|salt ssh-ed25519 AAAA\n")
    known = KnownHosts.load(path)
    assert known.is_revoked(ED2) and not known.is_revoked(ED)
    assert known.lookup("web1") == [] and known.lookup("web2") == [] and known.lookup("x.lab") == []


def test_missing_file_is_empty_and_add_appends_a_line(tmp_path):
    path = tmp_path / "sub" / "known_hosts"
    known = KnownHosts.load(path)
    assert known.lookup("10.0.0.1") == []
    known.add("10.0.0.1", "ssh-ed25519", ED)
    known.add("[10.0.0.2]:2222", "ssh-ed25519", ED2)
    assert [k.blob for k in known.lookup("10.0.0.1")] == [ED]
    reread = KnownHosts.load(path)
    assert [k.blob for k in reread.lookup("[10.0.0.2]:2222")] == [ED2]


def test_what_add_writes_is_read_back_by_paramiko(tmp_path):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    raw = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    blob = paramiko.Message()
    blob.add_string("ssh-ed25519")
    blob.add_string(raw)
    path = tmp_path / "known_hosts"
    KnownHosts.load(path).add("10.0.0.1", "ssh-ed25519", blob.asbytes())
    assert paramiko.HostKeys(str(path)).lookup("10.0.0.1")["ssh-ed25519"].asbytes() == blob.asbytes()


def test_add_after_a_last_line_without_newline_keeps_both(tmp_path):
    path = tmp_path / "known_hosts"
    path.write_text(f"web1 ssh-ed25519 {b64(ED)}")
    KnownHosts.load(path).add("web2", "ssh-ed25519", ED2)
    reread = KnownHosts.load(path)
    assert [k.blob for k in reread.lookup("web1")] == [ED]
    assert [k.blob for k in reread.lookup("web2")] == [ED2]


def test_fingerprint_is_ssh_keygens():
    assert fingerprint(ED) == "SHA256:" + base64.b64encode(hashlib.sha256(ED).digest()).decode().rstrip("=")


def test_a_negated_pattern_takes_the_line_away_from_the_host_as_openssh_does(tmp_path):
    """Issue 12: `web1,!10.0.0.1` was indexed as two plain names, so web1 at 10.0.0.1 was accepted."""
    from types import SimpleNamespace
    from orchestrator_lib.controller.transports.ssh import SSHPool
    path = tmp_path / "known_hosts"
    path.write_text(f"web1,!10.0.0.1 ssh-ed25519 {b64(ED)}\n*.lab,!bad.lab ssh-ed25519 {b64(ED2)}\n")
    pool = SSHPool(SimpleNamespace(known_hosts=path), ssh_config=None)
    assert pool._known_keys(pool._host_names(SimpleNamespace(name="web1"), "10.0.0.1", 22)) == []
    assert [k.blob for k in pool._known_keys(pool._host_names(SimpleNamespace(name="web1"), "10.0.0.2", 22))] == [ED]
    known = KnownHosts.load(path, global_path=None)
    assert [k.blob for k in known.lookup("good.lab")] == [ED2]
    assert known.lookup("bad.lab") == [] and known.lookup("!10.0.0.1") == []


def test_the_system_wide_known_hosts_is_read_but_never_written(tmp_path):
    """Issue 12: /etc/ssh/ssh_known_hosts was ignored."""
    user, system = tmp_path / "known_hosts", tmp_path / "ssh_known_hosts"
    system.write_text(f"10.0.0.9 ssh-ed25519 {b64(ED)}\n")
    known = KnownHosts.load(user, global_path=system)
    assert [k.blob for k in known.lookup("10.0.0.9")] == [ED]
    known.add("10.0.0.10", "ssh-ed25519", ED2)
    assert system.read_text() == f"10.0.0.9 ssh-ed25519 {b64(ED)}\n" and "10.0.0.10" in user.read_text()
    from orchestrator_lib.controller.transports import known_hosts
    assert known_hosts.GLOBAL == __import__("pathlib").Path("/etc/ssh/ssh_known_hosts")
