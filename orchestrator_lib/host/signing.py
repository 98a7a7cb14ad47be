"""Signed requests for agents that listen on a broker (NATS): who sent a request, and is it fresh?

Over SSH, sshd tells the agent which key logged in. A broker tells it nothing, so every request
carries its own proof: the caller signs the request body with its ed25519 key (the same key it
logs in with over SSH), and the agent checks, before anything else:

- the envelope is well formed and the signature verifies against the public key it carries;
- that key is one the host policy names (policy.names_key): a key the policy does not list is
  refused, even under a `"*"` rule, and with no policy file at all every signed request is refused
  (a broker reaches every agent, so "no policy = allow all" does not hold here);
- the request is addressed to this host (`to`) or is a broadcast to this collective;
- it is fresh: `time` + `ttl` not passed, not from the future beyond CLOCK_SKEW, not older than the
  service itself (a broker delivers only to subscribers that exist when it is published, so an
  older request can only be a replay), and its reqid was not seen within its TTL (ReplayCache).

The caller the audit records is the verified key's fingerprint, never the body's `caller` field.

Envelope (JSON): {"body": "<the request as JSON text>", "key": "<OpenSSH public key blob, base64>",
"sig": "<ed25519 signature of SIGNED_PREFIX + body, base64>"}. Host side: the standard library and,
for the ed25519 check, PyNaCl when the host has it (libsodium: ~65 µs a verify here, Debian's
python3-nacl, which the lab installs) or `cryptography` (python3-cryptography, ~125 µs).
"""
from __future__ import annotations

import base64
import json
import struct

TYPE_CHECKING = False  # as in core: annotations only
if TYPE_CHECKING:
    from typing import Any, Callable

#: Signed bytes = SIGNED_PREFIX + body: a signature made for anything else never verifies here.
SIGNED_PREFIX = b"orchestrator-request-v1\0"
#: How far a caller's clock may be ahead of the host's before its requests count as from the future.
CLOCK_SKEW = 5.0
#: The longest TTL a host accepts (and so the longest time a reqid stays in the replay cache).
MAX_TTL = 3600.0
SSH_ED25519 = b"ssh-ed25519"


class Refused(Exception):
    """The request is refused before it reaches the policy. `body` is what could be read of it
    (for the audit line), `key` the verified fingerprint or "" when there is none."""

    def __init__(self, reason: str, body: dict | None = None, key: str = "") -> None:
        super().__init__(reason)
        self.body = body or {}
        self.key = key


def ed25519_from_blob(blob: bytes) -> bytes:
    """The 32 raw public key bytes of an OpenSSH `ssh-ed25519` key blob; ValueError otherwise."""
    try:
        (n,) = struct.unpack(">I", blob[:4])
        kind, rest = blob[4:4 + n], blob[4 + n:]
        (m,) = struct.unpack(">I", rest[:4])
        raw = rest[4:4 + m]
    except struct.error:
        raise ValueError("not an OpenSSH key blob") from None
    if kind != SSH_ED25519 or m != 32 or len(raw) != 32 or len(rest) != 4 + m:
        raise ValueError("not an ssh-ed25519 key")
    return raw


def blob_of(raw: bytes) -> bytes:
    """The OpenSSH blob of raw ed25519 public key bytes (what `key` carries, base64)."""
    return struct.pack(">I", len(SSH_ED25519)) + SSH_ED25519 + struct.pack(">I", len(raw)) + raw


def _verifier() -> Callable[[bytes, bytes, bytes], bool]:
    """verify(raw_public_key, signature, message) -> bool, by the fastest implementation present:
    libsodium's crypto_sign_open through PyNaCl's binding (nacl.signing.VerifyKey around it costs
    ~20 µs more per call here, for a key object and argument checks done below), else `cryptography`
    (OpenSSL: ~125-170 µs here against ~70 µs)."""
    try:
        from nacl.bindings import crypto_sign_open
        from nacl.exceptions import CryptoError
    except ImportError:
        pass
    else:
        def verify_nacl(raw: bytes, sig: bytes, message: bytes) -> bool:
            if len(sig) != 64 or len(raw) != 32:
                return False
            try:
                crypto_sign_open(sig + message, raw)
                return True
            except (CryptoError, ValueError, TypeError):
                return False
        return verify_nacl
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    def verify_cryptography(raw: bytes, sig: bytes, message: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(raw).verify(sig, message)
            return True
        except (InvalidSignature, ValueError):
            return False
    return verify_cryptography


_VERIFY: Callable[[bytes, bytes, bytes], bool] | None = None


def verify_signature(raw: bytes, sig: bytes, message: bytes) -> bool:
    global _VERIFY
    if _VERIFY is None:
        _VERIFY = _verifier()
    return _VERIFY(raw, sig, message)


class ReplayCache:
    """reqids seen, each kept until its request expires: a second copy within the TTL is a replay."""

    def __init__(self) -> None:
        self.expiry: dict[str, float] = {}
        self._next_prune = 0.0

    def seen(self, reqid: str, expires: float, now: float) -> bool:
        """True when `reqid` was seen before (and not yet expired); else remember it."""
        if now >= self._next_prune:
            self.expiry = {k: v for k, v in self.expiry.items() if v > now}
            self._next_prune = now + 10.0
        if self.expiry.get(reqid, 0.0) > now:
            return True
        self.expiry[reqid] = expires
        return False


def _partial_body(text: object) -> dict:
    """What an unverified body says (only ever for the audit line of its refusal)."""
    try:
        obj = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        obj = None
    return obj if isinstance(obj, dict) else {}


def open_envelope(data: bytes, *, identity: str, collective: str, now: float, started: float,
                  replays: ReplayCache, key_allowed: Callable[[str], bool],
                  fingerprint: Callable[[str], str],
                  keys: dict[str, tuple[bytes, str]] | None = None) -> tuple[dict[str, Any], str]:
    """(request body, verified key fingerprint), or Refused naming why. `key_allowed(fp)` says
    whether the host policy names the key; `fingerprint(b64 blob)` is policy.fingerprint. `keys`:
    the agent's own memo of key blobs it decoded (base64 -> raw key, fingerprint); the signature
    itself is verified on every request."""
    try:
        env = json.loads(data)
    except ValueError:
        raise Refused("unsigned request: not a JSON envelope") from None
    if not isinstance(env, dict) or not isinstance(env.get("body"), str):
        raise Refused("unsigned request: no body")
    body_text = env["body"]
    partial = _partial_body(body_text)
    key_b64, sig_b64 = env.get("key"), env.get("sig")
    if not isinstance(key_b64, str) or not isinstance(sig_b64, str) or not key_b64 or not sig_b64:
        raise Refused("unsigned request", partial)
    try:
        known = keys.get(key_b64) if keys is not None else None
        if known is None:
            known = (ed25519_from_blob(base64.b64decode(key_b64, validate=True)), fingerprint(key_b64))
            if keys is not None and len(keys) < 64:  # the few keys a policy names; no unbounded growth
                keys[key_b64] = known
        raw, fp = known
        sig = base64.b64decode(sig_b64, validate=True)
    except ValueError as e:
        raise Refused(f"bad signature: {e}", partial) from None
    if not verify_signature(raw, sig, SIGNED_PREFIX + body_text.encode("utf-8")):
        raise Refused(f"bad signature (key {fp})", partial)
    body = partial
    if not body:
        raise Refused("signed body is not a JSON object", key=fp)
    if not key_allowed(fp):
        raise Refused(f"key {fp} is not in the host policy", body, fp)
    if body.get("collective") != collective:
        raise Refused(f"request for collective {body.get('collective')!r}, this host is in {collective!r}", body, fp)
    to = body.get("to")
    if to is not None and to != identity:
        raise Refused(f"request addressed to {to!r}, not to this host", body, fp)
    reqid, sent, ttl = body.get("reqid"), body.get("time"), body.get("ttl")
    if not isinstance(reqid, str) or not reqid:
        raise Refused("request without a reqid", body, fp)
    if isinstance(sent, bool) or not isinstance(sent, (int, float)) or isinstance(ttl, bool) \
            or not isinstance(ttl, (int, float)) or not 0 < ttl <= MAX_TTL or sent != sent:
        raise Refused(f"request without a valid time and ttl (ttl at most {MAX_TTL:g} s)", body, fp)
    if now > sent + ttl:
        raise Refused(f"expired request: sent {now - sent:.1f} s ago with a ttl of {ttl:g} s", body, fp)
    if sent > now + CLOCK_SKEW:
        raise Refused(f"request from the future: sent {sent - now:.1f} s ahead of this host's clock", body, fp)
    if sent < started - CLOCK_SKEW:
        raise Refused("replayed request: sent before this agent started listening", body, fp)
    if replays.seen(reqid, sent + ttl, now):
        raise Refused(f"replayed request: reqid {reqid} was already received", body, fp)
    return body, fp


def seal(body: dict[str, Any], public_blob_b64: str, sign: Callable[[bytes], bytes]) -> bytes:
    """The envelope for `body`, signed by `sign` (the caller's private key). Controller side."""
    text = json.dumps(body, separators=(",", ":"), default=str)
    sig = sign(SIGNED_PREFIX + text.encode("utf-8"))
    return json.dumps({"body": text, "key": public_blob_b64,
                       "sig": base64.b64encode(sig).decode()}, separators=(",", ":")).encode()
