from orchestrator_lib.behave.steps import *  # noqa: F401,F403  (the step library, as any repository uses it)
