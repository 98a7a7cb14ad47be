"""An idempotent orchestration library: discover hosts, run agent actions on them over SSH in
parallel, and return a result per host. Layers, bottom up: inventory -> discovery -> transport
-> rpc/agents -> orchestration -> reporting."""
