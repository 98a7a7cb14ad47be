"""Many simulated NATS agents in one process, for bench/nats_scale.py.

`real` mode: each agent is the host's own request path (orchestrator_lib/host/nats_service.Responder):
verify the ed25519 signature, key named by the policy, collective/TTL/replay checks, the filter
against the agent's facts and classes, core.handle (policy, dispatch to rpcutil#ping, audit line),
reply. `floor` mode: the bare broker cost, a fixed reply and nothing else.

Each agent has its own subscriptions (its node subject and the rpcutil broadcast subject), so the
broker fans a broadcast out to every one of them as it would to real hosts. Prints `ready N` once
subscribed, then serves until stdin closes (the driver holds it open) or it is killed by PID.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator_lib.controller.discovery import Filter  # noqa: E402
from orchestrator_lib.host.nats_service import LocalHost, Responder, broadcast_subject, node_subject  # noqa: E402

PENDING = 1_000_000


def identity(index: int) -> str:
    return f"sim{index:05d}"


def facts(index: int) -> dict[str, str]:
    return {"cluster": "alfa" if index % 2 else "bravo", "country": ("de", "nl", "uk")[index % 3]}


_PARSED: dict[str, Filter] = {}


def match(flt: dict, host: LocalHost) -> bool:
    """As the NATS service bundle's __main__ does: the controller's filter, parsed once."""
    key = repr(sorted(flt.items()))
    if key not in _PARSED:
        _PARSED[key] = Filter.from_wire(flt)
    return _PARSED[key].matches(host)


async def main(args: argparse.Namespace) -> None:
    import nats
    nc = await nats.connect(args.url, name=f"bench-agents-{args.offset}", pending_size=1024 ** 3,
                            max_reconnect_attempts=0)
    loop = asyncio.get_running_loop()

    def handler(responder: Responder | None, broadcast: bool, name: str):
        floor = json.dumps({"identity": name, "status": "ok"}).encode()

        async def on_message(msg) -> None:
            if responder is None:
                await nc.publish(msg.reply, floor)
                return
            reply = responder.respond(msg.data, broadcast)
            if reply is not None and msg.reply:
                await nc.publish(msg.reply, json.dumps(reply, separators=(",", ":")).encode())
        return on_message

    for index in range(args.offset, args.offset + args.count):
        name = identity(index)
        responder = None
        if args.mode == "real":
            host = LocalHost(name, facts(index), ("roles::web",), ("rpcutil",))
            responder = Responder(name, args.collective, match=match, local_host=lambda host=host: host,
                                  policy_path=args.policy)
        for subject, broadcast in ((broadcast_subject(args.collective, "rpcutil"), True),
                                   (node_subject(args.collective, name), False)):
            await nc.subscribe(subject, cb=handler(responder, broadcast, name),
                               pending_msgs_limit=PENDING, pending_bytes_limit=1024 ** 3)
    await nc.flush()
    print(f"ready {args.count}", flush=True)
    await loop.run_in_executor(None, sys.stdin.read)  # until the driver closes our stdin
    await nc.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--collective", default="bench")
    parser.add_argument("--offset", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--mode", choices=("real", "floor"), required=True)
    parser.add_argument("--policy", default="")
    asyncio.run(main(parser.parse_args()))
