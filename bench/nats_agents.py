"""Many simulated NATS agents in one process, for bench/nats_scale.py.

`real` mode: each agent is the host's own request path (orchestrator_lib/host/nats_service.Responder,
one per agent, each with its own replay cache and nothing shared between agents that could spare one
of them its work): verify the ed25519 signature, key named by the policy, collective/TTL/replay
checks, the filter against the agent's facts and classes, core.handle (policy, "received" and
result audit lines, dispatch to rpcutil#ping), reply. `floor` mode: a fixed reply and nothing else.

Layouts (`--layout`):
- `shared` (default): the process holds ONE connection with one subscription to the broadcast
  subject and one to `COLLECTIVE.node.*`, and hands each message to its agents in-process (a
  broadcast to every agent in turn, a node request to the one named by the subject's last token),
  the way one multi-agent daemon would. The broker sends each broadcast once per process.
- `own`: each agent subscribes on its own (its node subject and the broadcast subject), so the
  broker fans every broadcast out to N subscriptions, as to N real hosts.

Replies are published in batches (`--chunk` agents, then the event loop writes them out and reads
on); nats-py's flusher writes them, there is no flush per reply. A batch's audit lines (one per
read-only request) are written in one locked write before any of its replies is published
(host/nats_service.Batch), so no reply leaves before its line is in the log. Prints `ready N` once subscribed,
then serves until stdin closes (the driver holds it open) or it is killed by PID.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator_lib.controller.discovery import Filter  # noqa: E402
from orchestrator_lib.host.nats_service import (Batch, LocalHost, Responder,  # noqa: E402
                                                broadcast_subject, encode_reply, node_subject)

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


def make_agents(args: argparse.Namespace) -> dict[str, Responder | bytes]:
    """name -> its Responder (real) or its fixed reply (floor)."""
    agents: dict[str, Responder | bytes] = {}
    for index in range(args.offset, args.offset + args.count):
        name = identity(index)
        if args.mode == "real":
            host = LocalHost(name, facts(index), ("roles::web",), ("rpcutil",))
            agents[name] = Responder(name, args.collective, match=match, local_host=lambda host=host: host,
                                     policy_path=args.policy)
        else:
            agents[name] = json.dumps({"identity": name, "status": "ok"}).encode()
    return agents


async def main(args: argparse.Namespace) -> None:
    import nats
    nc = await nats.connect(args.url, name=f"bench-agents-{args.offset}", pending_size=1024 ** 3,
                            max_reconnect_attempts=0, skip_subject_validation=True)
    loop = asyncio.get_running_loop()
    agents = make_agents(args)
    publish = nc.publish

    async def answer(agent: Responder | bytes, data: bytes, reply_to: str, broadcast: bool) -> None:
        if isinstance(agent, bytes):
            await publish(reply_to, agent)
            return
        reply = agent.respond(data, broadcast)
        if reply is not None and reply_to:
            await publish(reply_to, encode_reply(reply))

    async def on_broadcast(msg) -> None:  # shared layout: every agent of the process, in turn
        data, reply_to = msg.data, msg.reply
        batch = Batch()  # a chunk's audit lines are written once, before any of its replies goes out
        for n, agent in enumerate(agents.values(), 1):
            if isinstance(agent, bytes):
                await publish(reply_to, agent)
            else:
                batch.answer(agent, data, True, reply_to)
            if n % args.chunk == 0:
                for subject, reply in batch.replies():
                    await publish(subject, reply)
                await asyncio.sleep(0)  # let the flusher write this batch and the reader read
        for subject, reply in batch.replies():
            await publish(subject, reply)

    async def on_node(msg) -> None:
        agent = agents.get(msg.subject.rpartition(".")[2])
        if agent is not None:
            await answer(agent, msg.data, msg.reply, False)

    limits = {"pending_msgs_limit": PENDING, "pending_bytes_limit": 1024 ** 3}
    if args.layout == "shared":
        await nc.subscribe(broadcast_subject(args.collective, "rpcutil"), cb=on_broadcast, **limits)
        await nc.subscribe(node_subject(args.collective, "*"), cb=on_node, **limits)
    else:
        for name, agent in agents.items():
            async def own_broadcast(msg, agent=agent) -> None:
                await answer(agent, msg.data, msg.reply, True)
            await nc.subscribe(broadcast_subject(args.collective, "rpcutil"), cb=own_broadcast, **limits)
            await nc.subscribe(node_subject(args.collective, name), cb=on_node, **limits)
    await nc.flush()
    if args.freeze:
        gc.collect()
        gc.freeze()  # the agents' long-lived objects leave the collector's generations
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
    parser.add_argument("--layout", choices=("shared", "own"), default="shared")
    parser.add_argument("--chunk", type=int, default=200, help="replies published between two reads")
    parser.add_argument("--policy", default="")
    parser.add_argument("--no-freeze", dest="freeze", action="store_false")
    asyncio.run(main(parser.parse_args()))
