"""Per-host and per-run results. Reporting, the CLI and the steps all read these, so the
wording of `tally()` and `summary()` lives here, once."""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from ...protocol import FAILURES, HOST_STATUSES, SUCCESS, Status  # noqa: F401 -- FAILURES for fanout

#: Beyond this many names a tally says "... and N more" so one line stays one line at 1000 hosts.
MAX_NAMES = 5


@dataclass
class HostResult:
    host: str
    status: Status
    message: str = ""
    rc: int | None = None
    stdout: str = ""
    stderr: str = ""
    duration: float = 0.0
    tries: int = 0
    data: dict = field(default_factory=dict)  # agent reply data, e.g. {"version": "4.2.6-3.el5"}
    before: Any = None
    after: Any = None
    started: float | None = None  # wall clock (epoch s) when a worker picked the host up
    batch: int | None = None      # 0-based batch the host ran in (None: not attempted)

    @property
    def ok(self) -> bool:
        return self.status in SUCCESS

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["status"] = self.status.value
        return d


@dataclass
class RunResult:
    label: str                      # "package#update"
    results: dict[str, HostResult]  # one per targeted host, in targeted order
    elapsed: float

    @property
    def ok(self) -> bool:
        """True when every targeted host succeeded (vacuously true for no hosts)."""
        return all(r.ok for r in self.results.values())

    def by_status(self) -> dict[Status, list[str]]:
        """Host names per status, every status present, hosts in targeted order."""
        out: dict[Status, list[str]] = {s: [] for s in HOST_STATUSES}
        for name, r in self.results.items():
            out[r.status].append(name)
        return out

    def _names(self, status: Status) -> list[str]:
        return [n for n, r in self.results.items() if r.status is status]

    @property
    def changed(self) -> list[str]:
        return self._names(Status.CHANGED)

    @property
    def failed(self) -> list[str]:
        return self._names(Status.FAILED)

    @property
    def unreachable(self) -> list[str]:
        return self._names(Status.UNREACHABLE)

    @property
    def not_attempted(self) -> list[str]:
        return self._names(Status.NOT_ATTEMPTED)

    @property
    def max_tries(self) -> int:
        return max((r.tries for r in self.results.values()), default=0)

    def tally(self) -> str:
        """One line for the console and the audit log, e.g.
        ``package#update: ok on 7 of 9 hosts (2 changed), failed on 1 (web3), unreachable 1
        (web5) after 2 tries in 3.10 s``."""
        groups = self.by_status()
        total = len(self.results)
        n_ok = sum(len(groups[s]) for s in SUCCESS)
        line = f"{self.label}: ok on {n_ok} of {total} {_plural(total, 'host', 'hosts')}"
        for status in (Status.CHANGED, Status.WOULD_CHANGE):
            if groups[status]:
                line += f" ({len(groups[status])} {status})"
        for status, word in ((Status.FAILED, "failed on"), (Status.UNREACHABLE, "unreachable"),
                             (Status.NOT_ATTEMPTED, "not attempted")):
            if groups[status]:
                line += f", {word} {len(groups[status])} ({_name_list(groups[status])})"
        tries = self.max_tries  # 0 when no host was attempted: nothing to count
        after = f" after {tries} {_plural(tries, 'try', 'tries')}" if tries else ""
        return line + f"{after} in {self.elapsed:.2f} s"

    def summary(self, field_name: str) -> str:
        """Distribution of one reply-data field across hosts, most common first (ties in host
        order), e.g. ``Summary of version: 4.2.5-1.el5 = 5, 4.2.6-3.el5 = 4``. Hosts whose reply
        lacks the field are left out."""
        counts = Counter(str(r.data[field_name]) for r in self.results.values()
                         if field_name in r.data)
        if not counts:
            return f"Summary of {field_name}: no data"
        body = ", ".join(f"{value} = {n}" for value, n in counts.most_common())
        return f"Summary of {field_name}: {body}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``before``/``after``/``data`` are passed through as the agent sent them)."""
        return {
            "label": self.label,
            "ok": self.ok,
            "elapsed": self.elapsed,
            "tally": self.tally(),
            "counts": {s.value: len(names) for s, names in self.by_status().items()},
            "results": {name: r.to_dict() for name, r in self.results.items()},
        }


def _plural(n: int, one: str, many: str) -> str:
    return one if n == 1 else many


def _name_list(names: list[str]) -> str:
    if len(names) <= MAX_NAMES:
        return ", ".join(names)
    return ", ".join(names[:MAX_NAMES]) + f" and {len(names) - MAX_NAMES} more"


def failure_text(run: RunResult) -> str:
    """A failed step's message: the hosts it did not succeed on, then one line per host."""
    bad = [r for r in run.results.values() if not r.ok]
    lines = [f"{run.label} did not succeed on {', '.join(r.host for r in bad)} "
             f"({len(bad)} of {len(run.results)} hosts):"]
    lines += [f"  {r.host}: {r.status}: {r.message}" for r in bad]
    return "\n".join(lines)
