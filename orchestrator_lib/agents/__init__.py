"""The host agent: stdlib-only code shipped to every host as one zipapp and run once per action
(`python3 agent-SHA.pyz` with a JSON request on stdin, a JSON reply on stdout).

Adding an agent = adding one module here that creates `agent = core.Agent(__name__)` and
decorates its actions with `@agent.action`. `core` has the protocol, `policy` decides who may run
what, `audit` records every request, `build` packs the zipapp (controller side only).
"""
