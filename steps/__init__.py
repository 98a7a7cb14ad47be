"""Step definitions (behave loads every module here) and, in `steps.support`, the glue they share.
A package so that the hooks in features/support/ and the step modules import one `steps.support`."""
