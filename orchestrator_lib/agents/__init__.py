"""The host agent: stdlib-only code shipped to every host as one zipapp, unpacked and compiled
there into a directory named by the zipapp's hash (see rpc.INSTALL_SCRIPT), and run once per action
(`python3 -S -E agent-SHA/__main__.py` with a JSON request on stdin, a JSON reply on stdout).

Adding an agent = adding one module here that creates `agent = core.Agent(__name__)` and
decorates its actions with `@agent.action`, and naming it in `core.AGENTS`. `core` has the
protocol, `policy` decides who may run what, `audit` records every request, `build` packs the
zipapp (controller side only).
"""
