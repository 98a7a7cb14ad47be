"""The host side: stdlib-only code shipped to every host as one zipapp (with `protocol.py`),
unpacked and compiled there into a directory named by the zipapp's hash, and run per request
(`python3 -S -E agent-SHA/__main__.py`, JSON request in, JSON reply out) or resident (`--serve`).

`core` is the runtime (System, the action registry, the request pipeline policy -> dispatch ->
audit), `policy` decides who may run what, `audit` records every request, `agents/` holds the
resources (one module per agent), `build` packs the zipapp (run on the controller, never shipped).
Nothing here imports the controller.
"""
