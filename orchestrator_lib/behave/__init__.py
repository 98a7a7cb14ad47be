"""The behave glue, shipped in the wheel so a team's own deploy repository can use it:
`features/steps/deploy.py` is `from orchestrator_lib.behave.steps import *` (the step library) and
`features/environment.py` is `from orchestrator_lib.behave.hooks import *` (one Session per run, the
result matrix, the release gate). `parsing` (parameter types), `binding` (the run's Deploy on the
context, step decorators that fail in one line) and `matchers` (assertions on every host) are
what the steps share. The deploy logic itself is orchestrator_lib.controller.deploy; steps stay thin."""
