"""Orchestration: fan a task out to hosts in batches, with tries and a failure policy, and
collect one result per host."""
from .batches import parse_batch_size, plan_batches
from .fanout import NOT_ATTEMPTED_MESSAGE, run_on_hosts
from .policy import FailurePolicy, RunOptions
from .results import HostResult, RunResult, Status

__all__ = [
    "FailurePolicy", "HostResult", "NOT_ATTEMPTED_MESSAGE", "RunOptions", "RunResult", "Status",
    "parse_batch_size", "plan_batches", "run_on_hosts",
]
