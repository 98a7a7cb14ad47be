"""Rolling-deploy batches: a canary first, then growing waves, so a bad release is caught
on a few hosts instead of all of them."""
from __future__ import annotations

import math
import re
from typing import Sequence, TypeVar, Union

from orchestrator_lib.controller.errors import OrchestratorError

T = TypeVar("T")

#: One batch size: a count (``2``) or a percentage of the total host count (``"25%"``).
SizeItem = Union[int, str]
#: What callers may pass: None (all at once), one size item, or successive sizes.
BatchSize = Union[None, SizeItem, Sequence[SizeItem]]

_COUNT = re.compile(r"\d+")
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)%")


def _error(spec: object) -> OrchestratorError:
    if isinstance(spec, (list, tuple)):
        spec = ",".join(str(s) for s in spec)
    return OrchestratorError(
        f"batch_size '{spec}': expected a positive count, a percentage such as '50%' "
        "or a list of these")


def _normalise(item: object, spec: object) -> SizeItem:
    """Validate one size item; numeric strings become ints, percentages stay strings."""
    if isinstance(item, bool):  # bool is an int subclass; True is not a batch size
        raise _error(spec)
    if isinstance(item, int):
        if item < 1:
            raise _error(spec)
        return item
    if isinstance(item, str):
        text = item.strip()
        if _COUNT.fullmatch(text):
            return _normalise(int(text), spec)
        m = _PERCENT.fullmatch(text)
        if m and 0 < float(m.group(1)) <= 100:
            return f"{m.group(1)}%"
    raise _error(spec)


def _sizes(batch_size: BatchSize) -> list[SizeItem]:
    if isinstance(batch_size, (list, tuple)):
        if not batch_size:
            raise _error(batch_size)
        return [_normalise(item, batch_size) for item in batch_size]
    return [_normalise(batch_size, batch_size)]


def _count(item: SizeItem, total: int) -> int:
    if isinstance(item, int):
        return item
    return max(1, math.ceil(float(item[:-1]) * total / 100))


def parse_batch_size(text: str) -> BatchSize:
    """Parse CLI/step text: ``"2"`` -> 2, ``"25%"`` -> ``"25%"``, ``"1,2,50%"`` -> [1, 2, "50%"]."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) == 1:
        return _normalise(parts[0], text)
    return [_normalise(p, text) for p in parts]


def plan_batches(hosts: Sequence[T], batch_size: BatchSize) -> list[list[T]]:
    """Split hosts (order kept) into successive batches. A list of sizes is used in turn and its
    last size repeats until the hosts run out; percentages are of the total host count, rounded
    up, so '10%' of 5 hosts is a batch of 1, never 0."""
    hosts = list(hosts)
    if batch_size is None:
        return [hosts] if hosts else []
    sizes = _sizes(batch_size)  # validate even when there are no hosts
    total = len(hosts)
    batches: list[list[T]] = []
    start = 0
    while start < total:
        item = sizes[min(len(batches), len(sizes) - 1)]
        end = start + _count(item, total)
        batches.append(hosts[start:end])
        start = end
    return batches
