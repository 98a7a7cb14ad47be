"""The NATS transport: requests to hosts whose agents stay connected to a broker (Choria's layout),
for estates past what one SSH controller reaches, or where inbound SSH is not allowed.

- A request to one host goes to `COLLECTIVE.node.NAME`, with a reply inbox; a host whose agent is not
  connected makes the broker answer "no responders" at once (UNREACHABLE, named), one that does not
  reply within the timeout may or may not have run it (outcome unknown, never resent, as over SSH).
- Discovery broadcasts to `COLLECTIVE.broadcast.agent.AGENT` with the filter inside the request:
  each agent evaluates it against its own live facts and classes and only matching ones answer.
  Replies are collected until the discovery timeout, or until every host expected has answered.
- Every request is signed with the caller's ed25519 key (host/signing.py) and carries a TTL; the
  hosts check it against their policy, so the key must be one the host policy names.

nats-py is asyncio; the orchestration layer is threads. One event loop runs in a daemon thread
per transport, and the blocking methods hand coroutines to it.
"""
from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from ...host.nats_service import client_options
from ...host.signing import seal
from ...protocol import Request
from ..errors import OrchestratorError, OutcomeUnknownError, UnreachableError
from ..inventory import Host, Inventory, NatsSettings
from ..orchestration.results import HostResult, Status
from .base import Transport
from .ssh_agent import parse_reply

#: Per-subscription buffer for a broadcast's replies: a request answered by 50,000 agents must not
#: drop replies as a slow consumer (nats-py's default is 512 Ki messages / 128 MiB per subscription).
PENDING_MSGS = 1_000_000
PENDING_BYTES = 1024 * 1024 * 1024


class NatsError(OrchestratorError):
    """The broker cannot be reached, or the signing key cannot be used."""


def broadcast_subject(collective: str, agent: str) -> str:
    return f"{collective}.broadcast.agent.{agent}"


def node_subject(collective: str, identity: str) -> str:
    return f"{collective}.node.{identity}"


class Signer:
    """The caller's ed25519 key (an OpenSSH private key file: the same key it logs in with over
    SSH, so the host policy's fingerprint names it either way)."""

    def __init__(self, path: Path) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        try:
            key = serialization.load_ssh_private_key(path.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as e:
            raise NatsError(f"{path}: cannot load the signing key: {e}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise NatsError(f"{path}: the signing key must be ed25519, not {type(key).__name__}")
        self.sign: Callable[[bytes], bytes] = key.sign
        line = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                             serialization.PublicFormat.OpenSSH).decode()
        self.public_blob = line.split()[1]


class NatsTransport(Transport):
    """One connection to the broker for one run; the blocking API orchestration calls. `signer`:
    a Signer, or the path of its key file (loaded at connect)."""

    def __init__(self, servers: Iterable[str], collective: str, signer: Signer | Path | None, caller: str, *,
                 ttl: float = 60.0, credentials: Path | None = None, name: str = "orch-controller",
                 connect_timeout: float = 5.0, settings: NatsSettings | None = None) -> None:
        self.servers, self.collective = list(servers), collective
        self._signer, self.caller, self.ttl = signer, caller, ttl
        self.credentials, self.name, self.connect_timeout = credentials, name, connect_timeout
        #: TLS and login (nats.tls, nats.user/password_file, nats.nkey), read at connect.
        self.settings = settings
        self.last_error = ""
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="nats-transport", daemon=True)
        self.nc: Any = None
        self.lock = threading.Lock()
        #: (host, reqid) -> sends so far: a retry (tries) is a new request to the host (reqid.N),
        #: because the host refuses a reqid it has seen (replay).
        self.sends: dict[tuple[str, str], int] = {}
        #: (host, reqid) -> why the outcome is unknown: never sent again, as over SSH.
        self.unknown: dict[tuple[str, str], str] = {}

    @classmethod
    def for_inventory(cls, inventory: Inventory, caller: str) -> "NatsTransport":
        settings = inventory.nats
        if settings is None:
            raise NatsError(f"{inventory.path.name}: transport nats needs a 'nats:' section naming the broker's servers")
        return cls(settings.servers, settings.collective, settings.key, caller, ttl=settings.ttl,
                   credentials=settings.credentials, settings=settings)

    @property
    def signer(self) -> Signer:
        if not isinstance(self._signer, Signer):
            if self._signer is None:
                raise NatsError("nats.key (or defaults.key): no ed25519 key to sign requests with")
            self._signer = Signer(Path(self._signer))
        return self._signer

    # ---- the loop ----------------------------------------------------------------------------
    def _run(self, coro: Any, timeout: float | None = None) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def connect(self, hosts: Any = ()) -> "NatsTransport":
        """Load the signing key and connect to the broker, once per run (a bad key or an absent
        broker is one error before any host is touched)."""
        with self.lock:
            if self.nc is None:
                self._connect()
        return self

    def _connect(self) -> None:
        import nats
        self.signer  # noqa: B018 -- a key that cannot sign fails here, once
        if not self.thread.is_alive():
            self.thread.start()
        options: dict[str, Any] = {"servers": self.servers, "name": self.name, "connect_timeout": self.connect_timeout,
                                   "allow_reconnect": True, "max_reconnect_attempts": 3,
                                   "pending_size": PENDING_BYTES}
        if self.credentials is not None:
            options["user_credentials"] = str(self.credentials)
        options.update(self._login_options())

        async def quiet(error: Exception) -> None:  # nats-py logs a traceback by default: one line is ours
            self.last_error = f"{type(error).__name__}: {error}"

        options["error_cb"] = quiet

        async def connect() -> Any:
            return await nats.connect(**options)
        try:
            self.nc = self._run(connect(), self.connect_timeout * 3)
        except Exception as e:
            raise NatsError(f"cannot connect to the NATS broker {', '.join(self.servers)}: "
                            f"{type(e).__name__}: {e}") from None

    def _login_options(self) -> dict[str, Any]:
        """TLS and login from the estate's settings; a file that cannot be read or used is one error
        naming it (never its content)."""
        s = self.settings
        if s is None:
            return {}
        password = None
        if s.password_file is not None:
            try:
                password = s.password_file.read_text().strip()
            except OSError as e:
                raise NatsError(f"nats.password_file {s.password_file}: {e.strerror or e}") from None
        for what, path in (("nats.tls.ca", s.tls_ca), ("nats.tls.cert", s.tls_cert), ("nats.tls.key", s.tls_key),
                           ("nats.nkey", s.nkey)):
            if path is not None and not path.is_file():
                raise NatsError(f"{what} {path}: no such file")
        try:
            return client_options(tls_ca=_str(s.tls_ca), tls_cert=_str(s.tls_cert), tls_key=_str(s.tls_key),
                                  user=s.user, password=password, nkey=_str(s.nkey))
        except (OSError, ValueError) as e:  # ssl.SSLError is an OSError
            raise NatsError(f"nats.tls: cannot use {s.tls_ca or ''} {s.tls_cert or ''}: "
                            f"{type(e).__name__}: {e}".replace("  ", " ")) from None

    def close(self) -> None:
        if self.nc is not None:
            nc, self.nc = self.nc, None
            try:
                self._run(nc.drain(), 5)
            except Exception:
                pass
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
        if not self.loop.is_running() and not self.loop.is_closed():
            self.loop.close()

    # ---- requests ----------------------------------------------------------------------------
    def envelope(self, request: Request, *, reqid: str, to: str | None = None,
                 flt: Mapping[str, Any] | None = None, facts: Mapping[str, Any] | None = None) -> bytes:
        """The signed request: the protocol's request (with the host's inventory facts, as over SSH,
        when it goes to one host), sent now with the estate's TTL, for this collective and host or filter."""
        body: dict[str, Any] = {**request.to_obj(dict(facts or {})), "reqid": reqid, "time": time.time(),
                                "ttl": self.ttl, "collective": self.collective}
        if to is not None:
            body["to"] = to
        if flt:
            body["filter"] = dict(flt)
        return seal(body, self.signer.public_blob, self.signer.sign)

    def call(self, host: Host, request: Request, timeout: float | None) -> HostResult:
        """The request on one host. UnreachableError when no agent of that name listens;
        OutcomeUnknownError when the request went out and no reply came in time."""
        import nats.errors
        timeout = 300.0 if timeout is None else timeout
        self.connect()
        label, name, reqid = request.label, host.name, request.reqid
        with self.lock:
            if (name, reqid) in self.unknown:
                return HostResult(host=name, status=Status.UNREACHABLE,
                                  message=f"{label}: outcome unknown: {self.unknown[(name, reqid)]}; not sent again")
            sends = self.sends[(name, reqid)] = self.sends.get((name, reqid), 0) + 1
        wire_reqid = reqid if sends == 1 else f"{reqid}.{sends}"
        payload = self.envelope(request, reqid=wire_reqid, to=name, facts=host.facts)
        subject = node_subject(self.collective, name)
        started = time.monotonic()
        try:
            msg = self._run(self.nc.request(subject, payload, timeout=timeout), timeout + 5)
        except nats.errors.NoRespondersError:
            raise UnreachableError(f"{name}: its agent is not connected to the NATS broker "
                                   f"(no one listens on {subject})") from None
        except (nats.errors.TimeoutError, TimeoutError, asyncio.TimeoutError):
            why = f"no reply over NATS within {timeout:g} s to request {wire_reqid}: it may or may not have run"
            with self.lock:
                self.unknown[(name, reqid)] = why
            raise OutcomeUnknownError(f"{name}: {why}") from None
        except nats.errors.Error as e:
            raise UnreachableError(f"{name}: NATS: {type(e).__name__}: {e}") from None
        return parse_reply(name, label, 0, msg.data.decode(errors="replace"), "", time.monotonic() - started)

    def broadcast(self, request: Request, *, flt: Mapping[str, Any] | None = None, timeout: float = 2.0,
                  expect: Iterable[str] | int | None = None, payload: bytes | None = None) -> dict[str, dict[str, Any]]:
        """Publish the request once to every agent of its agent; identity -> reply object, for each
        host that matched `flt` and answered within `timeout`. Returns early once every host of
        `expect` (names, or a count) has answered. `payload`: bytes to send as they are (tests and
        the bench send envelopes of their own making)."""
        self.connect()
        if payload is None:
            payload = self.envelope(request, reqid=request.reqid or uuid.uuid4().hex, flt=flt)
        return self._run(self._broadcast(broadcast_subject(self.collective, request.agent), payload, timeout,
                                         expect), timeout + 10)

    async def _broadcast(self, subject: str, payload: bytes, timeout: float,
                         expect: Iterable[str] | int | None) -> dict[str, dict[str, Any]]:
        nc = self.nc
        replies: dict[str, dict[str, Any]] = {}
        waiting = set(expect) if expect is not None and not isinstance(expect, int) else None
        count = expect if isinstance(expect, int) else None
        done = asyncio.Event()
        inbox = nc.new_inbox()

        async def on_reply(msg: Any) -> None:
            try:
                reply = decode_reply(msg.data)
            except ValueError:
                return
            if isinstance(reply, dict) and isinstance(reply.get("identity"), str):
                replies[reply["identity"]] = reply
                if waiting is not None:
                    waiting.discard(reply["identity"])
                if waiting == set() or (count is not None and len(replies) >= count):
                    done.set()

        sub = await nc.subscribe(inbox, cb=on_reply, pending_msgs_limit=PENDING_MSGS,
                                 pending_bytes_limit=PENDING_BYTES)
        try:
            await nc.publish(subject, payload, reply=inbox)
            await nc.flush()
            try:
                await asyncio.wait_for(done.wait(), timeout)
            except asyncio.TimeoutError:
                pass
        finally:
            await sub.unsubscribe()
        return replies


def _reply_decoder() -> Callable[[bytes], Any]:
    """JSON bytes -> object: orjson when installed (~1 µs for a ping's reply here against ~5 µs
    for json.loads; a broadcast decodes one per host), else the standard library's decoder without
    json.loads' per-call encoding detection (~3.5 µs). Both raise ValueError on bad JSON."""
    try:
        import orjson
    except ImportError:
        decode = json.JSONDecoder().decode
        return lambda data: decode(data.decode())
    return orjson.loads


decode_reply = _reply_decoder()


def _str(path: Path | None) -> str | None:
    return None if path is None else str(path)


def reply_result(host: str, label: str, reply: Mapping[str, Any], duration: float = 0.0) -> HostResult:
    """A broadcast reply as the HostResult an SSH or node request would have given."""
    return parse_reply(host, label, 0, json.dumps(reply, default=str), "", duration)

