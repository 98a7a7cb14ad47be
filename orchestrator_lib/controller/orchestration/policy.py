"""How a request fans out (RunOptions) and when a rolling run gives up (FailurePolicy): the point
is to stop breaking hosts, not to finish the list."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from orchestrator_lib.controller.errors import OrchestratorError

from .batches import BatchSize

#: tries per host at most (a typo'd 1000000 would hammer a host for hours)
MAX_TRIES = 100


@dataclass(frozen=True)
class FailurePolicy:
    """Decides, after each batch, whether the remaining batches run.

    A failure is a host that ended FAILED or UNREACHABLE.

    * ``max_fail_percentage=None`` (default): stop after the first batch that had any failure.
    * ``max_fail_percentage=P``: stop once ``failed_so_far / total * 100 > P``, where ``total``
      is every host the run targets (all batches, not just those started). Like Ansible, the
      limit must be *exceeded*: at exactly P the run continues. So P=0 stops on any failure and
      P=100 never stops. The comparison is done as ``failed_so_far * 100 > P * total`` so that,
      e.g., 1 failure of 10 hosts at P=10 is exactly at the limit and not a float rounding error
      above it.
    """

    max_fail_percentage: float | None = None

    def __post_init__(self) -> None:
        p = self.max_fail_percentage
        if p is not None and (isinstance(p, bool) or not isinstance(p, (int, float))
                              or not 0 <= p <= 100):
            raise OrchestratorError(
                f"max_fail_percentage '{p}': expected a number from 0 to 100")

    def should_stop(self, failed_so_far: int, total: int) -> bool:
        if self.max_fail_percentage is None:
            return failed_so_far > 0
        if total <= 0:
            return False
        return failed_so_far * 100 > self.max_fail_percentage * total


@dataclass(frozen=True)
class RunOptions:
    """How one request fans out: batches, tries (`retry_sleep` s apart), the failure policy, and
    the seconds one try may take on a host (None: no bound). Checked once, here, when made; every
    layer passes the one object on."""
    batch_size: BatchSize = None
    tries: int = 1
    retry_sleep: float = 0.0
    policy: FailurePolicy = field(default_factory=FailurePolicy)
    timeout: float | None = 300.0

    def __post_init__(self) -> None:
        if isinstance(self.tries, bool) or not isinstance(self.tries, int) or not 1 <= self.tries <= MAX_TRIES:
            raise OrchestratorError(f"tries '{self.tries}': expected a whole number from 1 to {MAX_TRIES}")
        if not 0 <= self.retry_sleep < math.inf:
            raise OrchestratorError(f"retry_sleep '{self.retry_sleep}': expected 0 or more seconds")
        if self.timeout is not None and not 0 < self.timeout < math.inf:
            raise OrchestratorError(f"timeout '{self.timeout}': expected a positive number of seconds")

    @property
    def deadline(self) -> float | None:
        """Seconds a host's whole task may take, every try and the sleeps between them."""
        return None if self.timeout is None else (self.timeout + self.retry_sleep) * self.tries
