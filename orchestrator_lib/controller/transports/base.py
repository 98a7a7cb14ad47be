"""The seam between the controller and the hosts: how a request reaches hosts and how their
replies come back. SSH implements it today (ssh_agent.SSHTransport); a message broker can later,
publishing a request once for many hosts in its own `call_many`."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable, Sequence

from ...protocol import Request
from ..inventory import Host
from ..orchestration import HostResult, RunOptions, RunResult, run_on_hosts


class Transport(ABC):
    """Connect, call one host, call many, close. Errors reaching a host are that host's result
    (UNREACHABLE), never an exception out of `call_many`."""

    workers = 64  # calls in flight at once in the default call_many

    @abstractmethod
    def connect(self, hosts: Sequence[Host]) -> None:
        """Ready to call these hosts; a problem that would fail every one of them (a missing key
        file) is one error now, before any host is touched."""

    @abstractmethod
    def call(self, host: Host, request: Request, timeout: float | None) -> HostResult:
        """One request on one host, at most once. Raises TransportError when the host cannot be
        reached (the fan-out makes it UNREACHABLE)."""

    def call_many(self, hosts: Sequence[Host], request: Request, options: RunOptions,
                  on_result: Callable[[HostResult], None] | None = None,
                  on_send: Callable[[Host], None] | None = None) -> RunResult:
        """The request on every host, in batches with tries as `options` say; `on_send(host)`
        just before it goes to a host (the audit log's and the journal's "sent" line)."""
        self.connect(hosts)

        def call(host: Host) -> HostResult:
            if on_send is not None:
                on_send(host)
            return self.call(host, request, options.timeout)

        return run_on_hosts(hosts, call, label=request.label, options=options, workers=self.workers,
                            on_result=on_result)

    @abstractmethod
    def close(self) -> None:
        """Release every connection; requests still running end with their outcome unknown."""
