"""Where an agent's CPU goes: the NATS request path of bench/nats_agents.py, in this process, with
each stage timed (thread CPU time), for bench/nats_scale.py's report.

Stages: `verify` (the ed25519 check itself), `envelope` (the rest of signing.open_envelope: JSON,
key, policy names the key, collective/TTL/replay), `filter` (the discovery filter on facts and
classes), `policy` (core.handle's policy.check), `audit` (building the audit entries, and writing them: the
"received" line of an action that may change the host at once, the result lines of a chunk of 200
agents together, as nats_agents.py does),
`dispatch` (rpcutil#ping), `encode` (the reply's JSON), `other` (the remainder of respond and
core.handle: Request parsing, argument schema, replies). The wrappers cost ~0.5 µs per stage.
"""
from __future__ import annotations

import gc
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import nats_agents  # noqa: E402
from orchestrator_lib.host import audit, core, nats_service, policy, signing  # noqa: E402
from orchestrator_lib.protocol import Request  # noqa: E402

#: Agents handled between two writes of their audit lines (nats_agents.py --chunk).
CHUNK = 200
STAGES = ("verify", "envelope", "filter", "policy", "audit", "dispatch", "encode", "other")


def measure(transport, policy_path: Path, collective: str, agents: int = 2000, rounds: int = 5) -> dict:
    """µs of CPU per request and stage (the best of `rounds` rounds over `agents` agents, each with its
    own Responder as in nats_agents.py), and the same for the whole path."""
    spent = dict.fromkeys(STAGES, 0)
    clock = time.thread_time_ns

    def timed(stage: str, fn):
        def wrapper(*args, **kwargs):
            start = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[stage] += clock() - start
        return wrapper

    patches = [(signing, "verify_signature", "verify"), (signing, "open_envelope", "envelope"),
               (nats_service.Responder, "_matches", "filter"), (policy, "check", "policy"),
               (audit, "write", "audit"), (audit, "entry", "audit"), (audit, "write_pending", "audit"),
               (core, "dispatch", "dispatch"),
               (nats_service, "encode_reply", "encode")]
    originals = [(obj, name, getattr(obj, name)) for obj, name, _ in patches]
    args = type("Args", (), {"offset": 0, "count": agents, "mode": "real", "collective": collective,
                             "policy": str(policy_path)})
    responders = list(nats_agents.make_agents(args).values())
    gc.collect()
    gc.freeze()
    best: dict[str, float] | None = None
    try:
        for instrumented in [False] * rounds + [True] * rounds:
            for (obj, name, original), (_, _, stage) in zip(originals, patches):
                setattr(obj, name, timed(stage, original) if instrumented else original)
            request = Request("rpcutil", "ping", {}, reqid=uuid.uuid4().hex, caller="bench@controller")
            payload = transport.envelope(request, reqid=request.reqid, flt=nats_agents_filter())
            for stage in spent:
                spent[stage] = 0
            start = clock()
            batch = nats_service.Batch()  # as nats_agents.py: lines written once per chunk of agents
            for n, responder in enumerate(responders, 1):
                batch.answer(responder, payload, True, "inbox")
                if n % CHUNK == 0:
                    batch.replies()
            batch.replies()
            total = clock() - start
            per = {stage: ns / agents / 1000 for stage, ns in spent.items()}
            per["total"] = total / agents / 1000
            key = "instrumented" if instrumented else "plain"
            best = {} if best is None else best
            if key not in best or per["total"] < best[key]["total"]:
                best[key] = per
    finally:
        for obj, name, original in originals:
            setattr(obj, name, original)
        gc.unfreeze()
    staged = best["instrumented"]
    staged["envelope"] -= staged["verify"]  # open_envelope's own share
    staged["other"] = staged["total"] - sum(staged[s] for s in STAGES if s != "other")
    result = {"agents": agents, "us_per_request": round(best["plain"]["total"], 1),
              "stages_us": {s: round(staged[s], 1) for s in STAGES},
              "instrumented_total_us": round(staged["total"], 1),
              "ed25519": signing._verifier().__name__}
    return result


def nats_agents_filter() -> dict:
    return {"classes": ["roles::web"]}

