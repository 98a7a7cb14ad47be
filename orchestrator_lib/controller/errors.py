"""User-facing errors. Every one carries a single line that names the file, key or host at fault;
the CLI and behave hooks print it without a traceback."""


class OrchestratorError(Exception):
    """Base of every error a user can cause or fix (bad input, unreachable host, ...)."""


class InventoryError(OrchestratorError):
    """An environment file is missing, malformed or inconsistent."""


class FilterError(OrchestratorError):
    """A discovery filter cannot be parsed or names something unknown."""


class ArgumentError(OrchestratorError):
    """An agent action's arguments fail the protocol's schema (protocol_args): refused before any
    host is contacted."""


class DiscoveryError(OrchestratorError):
    """Discovery found a set of hosts that breaks the expected contract (count, liveness)."""


class TransportError(OrchestratorError):
    """A host could not be reached or authenticated over SSH."""


class HostKeyError(TransportError):
    """The host's key is unknown or differs from the one recorded in known_hosts."""


class UnreachableError(TransportError):
    """The host did not answer (connection refused, timeout, no route)."""


class OutcomeUnknownError(UnreachableError):
    """A command or request went out and no answer came (timeout, connection lost): it may or may
    not have run, so it must never be sent again under the same reqid."""


class LabError(OrchestratorError):
    """The local lab could not be brought up, down or changed."""
