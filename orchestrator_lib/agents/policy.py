"""Authorization on the host: which SSH key may run which `agent#action`.

The caller is the key sshd authenticated, not the request's self-declared `caller`: with
`ExposeAuthInfo yes`, sshd writes the accepted key to the file named by $SSH_USER_AUTH.
No policy file means allow all (the lab's and a fresh host's default). A policy only binds a key
that cannot run other commands, i.e. one restricted in authorized_keys (command="..."); for an
unrestricted root key it is a guard against mistakes, not against an attacker.

Policy file, /etc/orchestrator/policy.json:
    {"default": "deny",
     "rules": [{"key": "SHA256:...", "allow": ["rpcutil#*", "package#status"], "deny": []}]}
A rule's key may be "*" (any key). Deny patterns win over allow patterns; `default` applies when
nothing matches. An unreadable policy denies everything (fail closed).
"""
from __future__ import annotations

import json
from collections import namedtuple

from . import core

TYPE_CHECKING = False  # as in core: annotations only, typing costs every run
if TYPE_CHECKING:
    from typing import Any, Mapping

POLICY_PATH = "/etc/orchestrator/policy.json"


class Identity(namedtuple("Identity", "fingerprints")):
    """OpenSSH SHA256 fingerprints (a tuple) of the keys that authenticated this session."""
    __slots__ = ()

    @property
    def label(self) -> str:
        return self.fingerprints[0] if self.fingerprints else "unknown key"


def sha256(data: bytes) -> bytes:
    """SHA-256 by CPython's built-in implementation when it has one: hashlib's loads OpenSSL, ~4 ms
    on every request (each one fingerprints its caller's key) for the same digest."""
    try:
        from _sha256 import sha256 as builtin      # CPython <= 3.11
    except ImportError:
        try:
            from _sha2 import sha256 as builtin    # CPython >= 3.12
        except ImportError:
            from hashlib import sha256 as builtin
    return builtin(data).digest()


def fingerprint(blob_b64: str) -> str:
    """OpenSSH's `SHA256:...` fingerprint (as `ssh-keygen -lf` prints it) of a base64 key blob."""
    import base64
    blob = base64.b64decode(blob_b64.strip(), validate=True)
    return "SHA256:" + base64.b64encode(sha256(blob)).decode().rstrip("=")


def parse_auth_info(text: str) -> tuple[str, ...]:
    """Fingerprints of the `publickey TYPE BLOB` lines sshd wrote for this session."""
    found: list[str] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "publickey":
            try:
                fp = fingerprint(parts[2])
            except ValueError:
                continue
            if fp not in found:
                found.append(fp)
    return tuple(found)


def identify(env: Mapping[str, str]) -> Identity:
    path = env.get("SSH_USER_AUTH")
    text = core.system().read_text(path) if path else None
    return Identity(parse_auth_info(text) if text else ())


def load_policy(path: str = "") -> dict[str, Any] | None:
    """The policy, or None when there is none. Raises ValueError when it cannot be trusted."""
    text = core.system().read_text(path or POLICY_PATH)
    if text is None:
        return None
    policy = json.loads(text)
    if not isinstance(policy, dict) or not isinstance(policy.get("rules", []), list):
        raise ValueError("expected an object with a 'rules' list")
    if policy.get("default", "deny") not in ("allow", "deny"):
        raise ValueError("'default' must be allow or deny")
    return policy


def decide(policy: Mapping[str, Any], label: str, identity: Identity) -> bool:
    """Pure: does `policy` let `identity` run `label` ("agent#action")?"""
    from fnmatch import fnmatchcase
    allowed = False
    for rule in policy.get("rules", []):
        key = rule.get("key") if isinstance(rule, dict) else None
        if key != "*" and key not in identity.fingerprints:
            continue
        if any(fnmatchcase(label, p) for p in rule.get("deny", [])):
            return False
        allowed = allowed or any(fnmatchcase(label, p) for p in rule.get("allow", []))
    return allowed or policy.get("default", "deny") == "allow"


def check(agent: str, action: str, identity: Identity, path: str = "") -> str | None:
    """None when allowed, else the one-line denial message for the reply and the audit log."""
    label = f"{agent}#{action}"
    path = path or POLICY_PATH
    try:
        policy = load_policy(path)
    except ValueError as e:
        return f"denied by policy: {path} is invalid ({core.one_line(e, 120)}); {label} for {identity.label}"
    if policy is None or decide(policy, label, identity):
        return None
    return f"denied by policy: {label} for {identity.label}"
