"""What the step definitions share: the run's settings, its Session and result matrix, the
scenario's targets, and the few helpers that turn library results into assertions.

Steps stay thin (parse, call, assert); anything longer lives here, where it can be read once."""
