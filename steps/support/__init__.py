"""What the step definitions share, all of it behave glue: the parameter types (`parsing`), the
run's Deploy on behave's context and the step decorators (`binding`), and the PyHamcrest
assertions on every host (`matchers`). The deploy logic itself is orchestrator_lib.controller.deploy.

Steps stay thin (parse, call the library, assert)."""
