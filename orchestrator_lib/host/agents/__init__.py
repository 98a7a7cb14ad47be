"""The resources: one module per agent, each creating `agent = core.Agent(__name__)` and
decorating its actions with `@agent.action`; adding one means naming it and its actions in `protocol.ACTIONS`."""
