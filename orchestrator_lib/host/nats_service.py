"""The agent as a long-lived NATS service (Choria's layout): the host stays connected to the broker
and answers requests addressed to it by name or by filter, so no inbound SSH is needed.

Subjects (COLLECTIVE from the config): `COLLECTIVE.broadcast.agent.AGENT` for every agent this
package ships (requests to whichever hosts match the filter they carry) and `COLLECTIVE.node.IDENTITY`
(requests to this host). Replies go to the request's reply subject (the caller's inbox).

Every request takes the path an SSH request takes, plus the check a broker makes necessary:
signing.open_envelope (signature, key named by the policy, collective, addressee, TTL, replay)
-> the filter, for a broadcast -> core.handle (policy, dispatch, audit) with the verified key as
the caller. A refused request is audited (`refused: ...`, nothing run); it is answered only when
addressed to this host (a refused broadcast answered by every host would let anyone make the
whole estate talk).

Config, /etc/orchestrator/nats.json: {"servers": ["nats://10.231.0.1:4222"], "collective": "orch",
"identity": "web1" (default: the host name), "facts_dir": "/etc/orchestrator/facts.d",
"classes_file": "/etc/orchestrator/classes.txt", "tls": {"ca": ..., "cert": ..., "key": ...},
"user": ..., "password": ...} (the last two: mode 0600, written by nats#install). Host side: stdlib, nats-py (shipped with the
service bundle: host/build.py) and an ed25519 implementation (signing.py).
"""
from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from collections import namedtuple

from . import core, policy, signing

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Mapping

CONFIG_PATH = "/etc/orchestrator/nats.json"
FACTS_DIR = "/etc/orchestrator/facts.d"
CLASSES_FILE = "/etc/orchestrator/classes.txt"
#: Actions run in threads, so a ping is answered while a package installs.
WORKERS = 8

#: What a filter is matched against: the shape of the controller's inventory Host, from the host's
#: own knowledge of itself.
LocalHost = namedtuple("LocalHost", "name facts classes agents")


def broadcast_subject(collective: str, agent: str) -> str:
    return f"{collective}.broadcast.agent.{agent}"


def node_subject(collective: str, identity: str) -> str:
    return f"{collective}.node.{identity}"


def client_options(*, tls_ca: str | None = None, tls_cert: str | None = None, tls_key: str | None = None,
                   user: str | None = None, password: str | None = None, creds: str | None = None,
                   nkey: str | None = None) -> dict[str, Any]:
    """nats.connect's keyword arguments for TLS (the CA that signed the broker's certificate; a
    client certificate for mutual TLS) and authentication (user and password, a .creds file or an
    nkey seed), as nats-py takes them. The controller and the agents both build theirs here."""
    options: dict[str, Any] = {}
    if tls_ca or tls_cert:
        import ssl
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=tls_ca or None)
        if tls_cert:
            context.load_cert_chain(tls_cert, tls_key or None)
        options["tls"] = context
    if user:
        options["user"], options["password"] = user, password or ""
    if creds:
        options["user_credentials"] = creds
    if nkey:
        options["nkeys_seed"] = nkey
    return options


def config_options(config: Mapping[str, Any]) -> dict[str, Any]:
    """client_options from the agent's config file (`tls`: {ca, cert, key}, `user`, `password`)."""
    tls = config.get("tls") if isinstance(config.get("tls"), dict) else {}
    return client_options(tls_ca=tls.get("ca"), tls_cert=tls.get("cert"), tls_key=tls.get("key"),
                          user=config.get("user"), password=config.get("password"))


def encode_reply(reply: Mapping[str, Any]) -> bytes:
    """A reply on the wire: compact strict JSON (ASCII), `identity` first (the controller reads it
    from there); a NaN an agent put in its data goes as a string (audit.redact), as over SSH."""
    try:
        return _REPLY_ENCODER.encode(reply).encode()
    except ValueError:
        from . import audit
        return _REPLY_ENCODER.encode(audit.redact(dict(reply))).encode()


#: One encoder for every reply (json.dumps with options builds a new one per call).
_REPLY_ENCODER = json.JSONEncoder(separators=(",", ":"), default=str, allow_nan=False)


def read_facts(facts_dir: str = FACTS_DIR) -> dict[str, str]:
    """The host's facts now, as rpcutil#facts reports them: the built-in ones under the custom
    facts of `facts_dir` (host/facts.py: *.json and *.yaml, a later file wins). A malformed file is
    skipped with a warning naming it: the service keeps answering (rpcutil#facts names it to callers)."""
    from . import facts as host_facts
    from .agents import rpcutil
    found = dict(rpcutil.live_facts())
    try:
        found.update(host_facts.custom(facts_dir)[0])
    except host_facts.FactsError as exc:
        print(f"warning: {exc}", file=sys.stderr)
    return found


def read_classes(path: str = CLASSES_FILE) -> tuple[str, ...]:
    """Puppet's classes.txt convention (host/facts.py): one class per line."""
    from . import facts as host_facts
    try:
        return tuple(host_facts.classes(path) or ())
    except host_facts.FactsError as exc:
        print(f"warning: {exc}", file=sys.stderr)
        return ()


_ENV: dict[str, str] | None = None


def _process_env() -> dict[str, str]:
    """This process's environment as a dict, taken once: the Responders of one process (thousands
    in bench/nats_agents.py) share it rather than each holding a copy (~2 KB apiece)."""
    global _ENV
    if _ENV is None:
        _ENV = dict(os.environ)
    return _ENV


class Responder:
    """One agent's request path, broker-independent: bytes of a request in, the reply object out
    (None: no reply). The NATS service runs one per host; bench/ runs thousands per process."""

    def __init__(self, identity: str, collective: str, *, match: Callable[[dict, Any], bool],
                 local_host: Callable[[], Any], policy_path: str = "",
                 env: Mapping[str, str] | None = None, started: float | None = None) -> None:
        self.identity, self.collective = identity, collective
        self.match, self.local_host = match, local_host
        self.policy_path = policy_path
        self.env = _process_env() if env is None else dict(env)
        self.started = time.time() if started is None else started
        self.replays = signing.ReplayCache()
        self.keys: dict[str, tuple[bytes, str]] = {}
        self.lock = threading.Lock()

    def respond(self, data: bytes, broadcast: bool, pending: Any = None) -> dict[str, Any] | None:
        """The reply object (None: no reply). `pending` (an audit.Pending): see core.handle; Batch
        is the one holder that passes it."""
        now = core.system().time()
        loaded = policy.snapshot(self.policy_path)  # one version of the policy for the whole request
        try:
            with self.lock:  # the replay cache is shared by the worker threads
                body, fp = signing.open_envelope(
                    data, identity=self.identity, collective=self.collective, now=now,
                    started=self.started, replays=self.replays, fingerprint=policy.fingerprint,
                    key_allowed=lambda key: policy.names_key(key, self.policy_path, loaded), keys=self.keys)
        except signing.Refused as refused:
            self._audit_refusal(refused)
            return None if broadcast else self._reply(refused.body, core.Reply.failed(f"refused: {refused}"))
        if broadcast:
            flt = body.get("filter")
            if flt and not self._matches(flt):
                return None
        body = {**body, "caller": fp}  # the audit's caller is the verified key, never the body's word
        identity = policy.Identity((fp,))
        try:
            reply = core.handle(body, self.env, identity=identity, policy_path=self.policy_path, pending=pending,
                                loaded=loaded)
        except core.ProtocolError as e:
            reply = core.Reply.failed(f"protocol error: {e}")
        return self._reply(body, reply)

    def _matches(self, flt: dict) -> bool:
        try:
            return bool(self.match(flt, self.local_host()))
        except Exception as e:  # a filter this host cannot evaluate selects nothing here, said once
            print(f"warning: filter {flt!r} not evaluated: {type(e).__name__}: {e}", file=sys.stderr)
            return False

    def _reply(self, body: dict, reply: Any) -> dict[str, Any]:
        return {"identity": self.identity, "reqid": body.get("reqid", ""), **reply.to_obj()}

    def _audit_refusal(self, refused: signing.Refused) -> None:
        from . import audit
        body = refused.body
        args = body.get("args") if isinstance(body.get("args"), dict) else {}
        req = core.Request(agent=str(body.get("agent") or "?"), action=str(body.get("action") or "?"),
                           args=args, reqid=str(body.get("reqid") or ""), caller=refused.key or "unverified")
        identity = policy.Identity((refused.key,) if refused.key else ())
        audit.record(req, core.Reply.failed(f"refused: {refused}"), identity,
                     env=policy.trusted_env(self.env))


class Batch:
    """The replies of several requests handled in a row (by one agent or by many simulated ones in
    one process), with the audit lines of their refused and read-only requests written together
    (audit.Pending: one locked write per log) before any reply of the batch leaves: `replies()`
    writes them, then hands the encoded replies to send. When they cannot be written, the replies
    whose lines were held are refusals (unless the policy says "audit": "best-effort"), as
    core.handle does for one request. Lines of requests that may change the host are not held."""

    def __init__(self) -> None:
        from . import audit
        self.pending = audit.Pending()
        self.out: list[tuple[str, dict[str, Any], bool, Responder]] = []

    def answer(self, responder: Responder, data: bytes, broadcast: bool, reply_to: str) -> None:
        held = self.pending.count
        reply = responder.respond(data, broadcast, self.pending)
        if reply is not None and reply_to:
            self.out.append((reply_to, reply, self.pending.count > held, responder))

    def replies(self) -> list[tuple[str, bytes]]:
        """(reply subject, encoded reply) of every request since the last call, once their audit
        lines are written."""
        from . import audit
        error = audit.write_pending(self.pending) if self.pending.count else None
        self.pending.count = 0
        if error:
            print(f"error: {error}", file=sys.stderr)
        out = []
        for reply_to, reply, held, responder in self.out:
            if error and held and policy.audit_required(responder.policy_path):
                reply = responder._reply(reply, core.unaudited(error, "no reply leaves"))
            out.append((reply_to, encode_reply(reply)))
        self.out = []
        return out


def load_config(path: str = CONFIG_PATH) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        config = json.load(f)
    if not isinstance(config, dict) or not config.get("servers") or not config.get("collective"):
        raise ValueError(f"{path}: expected a JSON object with 'servers' and 'collective'")
    return config


async def serve(config: Mapping[str, Any], match: Callable[[dict, Any], bool]) -> None:
    """Connect (retrying until the broker answers), subscribe, answer until killed."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    import nats

    identity = str(config.get("identity") or socket.gethostname())
    collective = str(config["collective"])
    facts_dir = str(config.get("facts_dir") or FACTS_DIR)
    classes_file = str(config.get("classes_file") or CLASSES_FILE)
    agents = tuple(core.AGENTS)

    def local_host() -> LocalHost:
        return LocalHost(identity, read_facts(facts_dir), read_classes(classes_file), agents)

    responder = Responder(identity, collective, match=match, local_host=local_host)
    workers = ThreadPoolExecutor(WORKERS)
    loop = asyncio.get_running_loop()
    options = config_options(config)

    async def one_line(error: Exception) -> None:  # nats-py would log a whole traceback
        print(f"nats: {type(error).__name__}: {error}", file=sys.stderr, flush=True)

    options["error_cb"] = one_line
    while True:
        try:
            nc = await nats.connect(servers=list(config["servers"]), name=identity, connect_timeout=2,
                                    allow_reconnect=True, max_reconnect_attempts=-1, reconnect_time_wait=0.5,
                                    **options)
            break
        except Exception as e:  # the broker is not up yet: a supervised service keeps trying
            print(f"nats: cannot connect to {config['servers']}: {type(e).__name__}: {e}", file=sys.stderr)
            await asyncio.sleep(1.0)

    def handler(broadcast: bool) -> Callable[[Any], Any]:
        async def on_message(msg: Any) -> None:
            reply = await loop.run_in_executor(workers, responder.respond, msg.data, broadcast)
            if reply is not None and msg.reply:
                await nc.publish(msg.reply, encode_reply(reply))
        return on_message

    for agent in agents:
        await nc.subscribe(broadcast_subject(collective, agent), cb=handler(True))
    await nc.subscribe(node_subject(collective, identity), cb=handler(False))
    await nc.flush()
    print(f"nats: {identity} listening in collective {collective} on {nc.connected_url.netloc}",
          file=sys.stderr, flush=True)
    await asyncio.Event().wait()


def main(match: Callable[[dict, Any], bool], argv: list[str] | None = None) -> int:
    """Entry point of the service bundle (`match(filter_dict, LocalHost)` evaluates a filter: the
    bundle's __main__ passes the discovery module's, the one the controller uses)."""
    import asyncio
    argv = sys.argv[1:] if argv is None else argv
    core._ensure_path()
    try:
        config = load_config(argv[0] if argv else CONFIG_PATH)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve(config, match))
    except KeyboardInterrupt:
        pass
    return 0
