"""A lab broker with TLS and authentication, as a production NATS estate runs it: a CA, the broker's
certificate (for the lab bridge's address), client certificates for the controller and the agents
(mutual TLS: nats-server's `verify: true`), and a password per user. Everything is written under
`state_dir` (keys and passwords mode 0600) and returned as paths; nothing is printed."""
from __future__ import annotations

import datetime
import ipaddress
import secrets
from dataclasses import dataclass
from pathlib import Path

from .broker import Broker


@dataclass(frozen=True)
class TlsBroker:
    broker: Broker
    ca: Path
    controller_cert: Path
    controller_key: Path
    agent_cert: Path
    agent_key: Path
    controller_password: Path
    agent_password: Path


def _key_and_cert(name: str, issuer_key, issuer_name, *, ca: bool = False, ip: str | None = None):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(subject)
               .issuer_name(subject if issuer_name is None else issuer_name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ip:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
                                        critical=False)
    if not ca:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if ip else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    cert = builder.sign(issuer_key or key, hashes.SHA256())
    return key, cert


def _write(path: Path, data: bytes, mode: int) -> Path:
    path.write_bytes(data)
    path.chmod(mode)
    return path


def make(state_dir: Path, address: str, port: int, monitor_port: int) -> TlsBroker:
    """The material and a (not yet started) Broker that requires TLS with client certificates and a
    user with a password: `orch` (the controller) or `agent` (the hosts' agents)."""
    from cryptography.hazmat.primitives import serialization
    d = state_dir / "tls"
    d.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM

    def key_bytes(key) -> bytes:
        return key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())

    ca_key, ca_cert = _key_and_cert("orchestrator lab CA", None, None, ca=True)
    files = {"ca.pem": (ca_cert.public_bytes(pem), 0o644)}
    for name, ip in (("server", address), ("controller", None), ("agent", None)):
        key, cert = _key_and_cert(f"lab {name}", ca_key, ca_cert.subject, ip=ip)
        files[f"{name}.pem"] = (cert.public_bytes(pem), 0o644)
        files[f"{name}-key.pem"] = (key_bytes(key), 0o600)
    paths = {n: _write(d / n, data, mode) for n, (data, mode) in files.items()}
    passwords = {u: secrets.token_urlsafe(18) for u in ("orch", "agent")}
    for user, password in passwords.items():
        paths[f"{user}.password"] = _write(d / f"{user}.password", password.encode() + b"\n", 0o600)
    extra = (f"tls {{\n  cert_file: \"{paths['server.pem']}\"\n  key_file: \"{paths['server-key.pem']}\"\n"
             f"  ca_file: \"{paths['ca.pem']}\"\n  verify: true\n  timeout: 5\n}}\n"
             "authorization {\n  users: [\n"
             + "".join(f"    {{user: \"{u}\", password: \"{p}\"}}\n" for u, p in passwords.items())
             + "  ]\n}\n")
    broker = Broker(state_dir, address, port, name="lab-tls", monitor_port=monitor_port, extra=extra, scheme="tls")
    return TlsBroker(broker, paths["ca.pem"], paths["controller.pem"], paths["controller-key.pem"],
                     paths["agent.pem"], paths["agent-key.pem"], paths["orch.password"], paths["agent.password"])
