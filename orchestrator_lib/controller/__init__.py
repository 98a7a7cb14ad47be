"""The controller side, in layers, each using only those before it: inventory -> discovery ->
transports -> orchestration -> session -> deploy -> reporting. From the host side it imports only
the protocol and what it ships (`host.build`)."""
