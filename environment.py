from orchestrator_lib.behave.hooks import *  # noqa: F401,F403  (the deploy hooks, as any repository uses them)
