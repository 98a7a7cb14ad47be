"""The facade behave steps and the CLI call: one environment, its transport (SSH connections
opened once and shared by every step of a run), the caller's identity and the central audit log."""
from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from .. import protocol_args
from .transports import ssh_agent as rpc
from .discovery import CountContract, Filter, select, unknown_facts, unknown_identities, unknown_words
from .discovery.livefacts import FactsCache, Merged, merge
from .errors import ArgumentError, DiscoveryError, FilterError, OrchestratorError
from .inventory import Host, Inventory, _did_you_mean, load_inventory
from ..protocol import Request
from .orchestration.batches import BatchSize
from .orchestration import HostResult, RunOptions, RunResult, Status, plan_batches, run_on_hosts
from .reporting import AuditLog
from .reporting.journal import Journal
from .transports.base import Transport
from .transports.ssh import SSHPool

TRANSPORTS = ("ssh", "nats")


DEFAULT_AUDIT = Path("<default>")


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a request, after it was audited. `result` has a HostResult per host: what
    finished, the hosts still running as failed (outcome unknown), the rest as not attempted."""

    def __init__(self, result: RunResult, running: list[str]) -> None:
        super().__init__(f"{result.label} interrupted")
        self.result = result
        self.running = running


def interrupted_result(label: str, hosts: list[Host], finished: Mapping[str, HostResult],
                       batch_size: BatchSize, elapsed: float) -> tuple[RunResult, list[str]]:
    """The request as it stood at Ctrl-C, and the hosts that were still running: those of the
    batch under way that had not finished (later batches had not started)."""
    batches = plan_batches([h.name for h in hosts], batch_size)
    current = next((b for b in batches if any(n not in finished for n in b)), [])
    running = [n for n in current if n not in finished]
    results = {}
    for host in hosts:
        if host.name in finished:
            results[host.name] = finished[host.name]
        elif host.name in running:
            results[host.name] = HostResult(host.name, Status.FAILED, "interrupted while running: outcome unknown")
        else:
            results[host.name] = HostResult(host.name, Status.NOT_ATTEMPTED, "interrupted")
    return RunResult(label, results, elapsed), running


class Session:
    """Everything one run shares. Use as a context manager, or call close()."""

    def __init__(self, env: str | Path | Inventory = "local", *, trust_on_first_use: bool = False,
                 caller: str | None = None, audit_path: Path | None = DEFAULT_AUDIT,
                 connect_timeout: float = 5.0, workers: int = 64,
                 preflight: Callable[[Inventory], None] | None = None, transport: str | None = None,
                 facts_cache: Path | None = None, warn: Callable[[str], None] | None = None) -> None:
        """`preflight(inventory)` runs before every request and may refuse it (the lab's
        `refuse_if_down`: never send to a lab whose network is down). `transport`: ssh or nats
        (default: the estate's `transport:`). `env`: an estate's name or file, or one already loaded."""
        self.inventory: Inventory = env if isinstance(env, Inventory) else load_inventory(env)
        self.transport_name = transport or self.inventory.transport
        if self.transport_name not in TRANSPORTS:
            raise OrchestratorError(f"unknown transport {self.transport_name!r} (known: {', '.join(TRANSPORTS)})")
        self.pool = SSHPool(self.inventory, trust_on_first_use=trust_on_first_use,
                            connect_timeout=connect_timeout)
        self.caller = caller or rpc.default_caller()
        self.transport: Transport = rpc.SSHTransport(self.pool)
        if self.transport_name == "nats":
            from .transports.nats import NatsTransport
            self.transport = NatsTransport.for_inventory(self.inventory, self.caller)
        self.transport.workers = self.workers = workers
        #: the deploy spec step the requests are sent for (the behave hooks set it per step), so both
        #: audit logs say which feature, scenario and step asked; None outside a deploy
        self.spec: dict[str, Any] | None = None
        if audit_path == DEFAULT_AUDIT:  # beside the environments/ folder, like reports/
            audit_path = self.inventory.path.resolve().parent.parent / "reports" / "audit.jsonl"
        self.audit = AuditLog(audit_path)
        self.preflight = preflight
        #: requests beside the run's own (the deploy lock's renewals): one-shot, on SSH channels of
        #: their own, never queued behind a request running on a host's resident agent
        self.side_transport: Transport = rpc.SSHTransport(self.pool, resident=False)
        if self.transport_name == "nats":  # a NATS agent runs requests side by side: nothing queues
            self.side_transport = self.transport
        #: the run's journal (reporting.journal.Journal), when it keeps one: every request's
        #: "sent" and result lines go there too
        self.journal: Journal | None = None
        #: `facts: cached`: the hosts' replies, next to the reports.
        self.facts_cache = facts_cache or self.reports_dir / f"facts-{self.inventory.name}.json"
        #: `facts: live|cached`: each host as discovery sees it (read once per Session).
        self.facts_report: dict[str, Merged] = {}
        self._discovered: Inventory | None = None
        self.warn = warn or (lambda line: print(f"warning: {line}", file=sys.stderr))

    @property
    def reports_dir(self) -> Path:
        """The controller's reports directory: where the audit log (and the journals) live."""
        return self.audit.path.parent if self.audit.path is not None else \
            self.inventory.path.resolve().parent.parent / "reports"

    # ---- discovery ----------------------------------------------------------------------------
    def discovery_inventory(self) -> Inventory:
        """The estate as discovery sees it: the file's facts and classes (`facts: inventory`), or
        those merged with what the hosts report (`live`: asked once per Session; `cached`: through
        the cache file). A host that cannot report its facts (unreachable, a malformed facts
        file) is an error naming it: it is never silently left out of discovery."""
        if self.inventory.facts_source == "inventory":
            return self.inventory
        if self._discovered is None:
            self._discovered = self._read_facts()
        return self._discovered

    def _read_facts(self) -> Inventory:
        hosts = list(self.inventory.hosts.values())
        cache = FactsCache(self.facts_cache, self.inventory.facts_ttl) \
            if self.inventory.facts_source == "cached" else None
        replies: dict[str, Any] = {}
        if cache is not None:
            replies = {h.name: r for h in hosts if (r := cache.fresh(h.name)) is not None}
        ask = [h for h in hosts if h.name not in replies]
        if ask:
            result = self.call(ask, "rpcutil", "facts")
            silent = result.unreachable + result.failed
            if silent:
                reasons = "; ".join(m if m.startswith(f"{n}:") else f"{n}: {m}"
                                    for n in silent for m in [result.results[n].message])
                raise DiscoveryError(f"{len(silent)} of {len(hosts)} hosts of {self.inventory.path.name} could not "
                                     f"report their facts (facts: {self.inventory.facts_source}): {reasons}")
            read = {n: r.data for n, r in result.results.items()}
            if cache is not None:
                cache.store(read)
            replies.update(read)
        self.facts_report = {h.name: merge(h, replies[h.name]) for h in hosts}
        for name, merged in self.facts_report.items():
            for contradiction in merged.contradictions:
                self.warn(f"{name}: {contradiction}")
        return replace(self.inventory, hosts={n: m.host for n, m in self.facts_report.items()})

    def select(self, flt: Filter) -> list[Host]:
        """Hosts of the estate matching `flt`. A fact, -I name or bare -S word the estate does not
        have is a typo, not a smaller (or, under `not`, a larger) set of hosts."""
        inventory = self.discovery_inventory()
        self._refuse_unknown_names(flt, inventory)
        return select(inventory, flt)

    def _refuse_unknown_names(self, flt: Filter, inventory: Inventory) -> None:
        where = f" in filter {flt.describe()}"
        hosts = list(inventory.hosts)
        if unknown := unknown_facts(inventory, flt):
            raise self.unknown_facts_error(unknown, [n for h in inventory.hosts.values() for n in h.facts], where)
        if unknown := unknown_identities(inventory, flt):
            raise FilterError(f"unknown host {self._hinted(unknown, hosts)}{where}: "
                              f"no host of {inventory.path.name} is called that")
        if unknown := unknown_words(inventory, flt):
            classes = [c for h in inventory.hosts.values() for c in h.classes]
            raise FilterError(f"unknown name {self._hinted(unknown, hosts + classes)}{where}: "
                              f"neither a host nor a class of {inventory.path.name}")

    def unknown_facts_error(self, unknown: Sequence[str], known: Iterable[str], where: str = "") -> FilterError:
        """The one error for facts no host has, whether a filter or `orch facts NAME` asked."""
        return FilterError(f"unknown fact {', '.join(unknown)}{where}: no host of {self.inventory.path.name} "
                           f"has it (known facts: {', '.join(sorted(set(known)))})")

    @staticmethod
    def _hinted(names: Sequence[str], choices: Sequence[str]) -> str:
        return ", ".join(f"'{name}'{_did_you_mean(name, choices)}" for name in names)

    def discover(self, flt: Filter, contract: CountContract | None = None, *, live: bool = True) -> list[Host]:
        """Select, check the expected count, then (when live) ping: a selected host that does not
        answer is a failure, never a silent skip."""
        hosts = self.select(flt)
        if not hosts:
            raise DiscoveryError(f"no host matches {flt.describe()} in {self.inventory.path.name}")
        if contract is not None:
            contract.check(len(hosts), [h.name for h in hosts])
        if live:
            pinged = self.broadcast_ping(flt, hosts) if self.transport_name == "nats" else self.call(hosts, "rpcutil", "ping")
            self.require_answers(pinged, hosts)
        return hosts

    def broadcast_ping(self, flt: Filter, expected: list[Host]) -> RunResult:
        """Discovery by broadcast (NATS): rpcutil#ping to every agent with the filter inside; each
        agent matches it against its own facts and classes. Replies are collected until the estate's
        discovery timeout (or every expected host answered): an expected host that stays silent is
        UNREACHABLE, named; one that answered but was not expected is said on stderr. Audited."""
        from .transports.nats import reply_result
        settings = self.inventory.nats
        assert settings is not None and self.transport_name == "nats"
        if self.preflight is not None:
            self.preflight(self.inventory)
        request = Request("rpcutil", "ping", {}, reqid=rpc.new_reqid(), caller=self.caller)
        started = time.monotonic()
        self.transport.connect(expected)
        sending = self._sending(request)
        for host in expected:
            sending(host)
        replies = self.transport.broadcast(request, flt=flt.to_wire(), timeout=settings.discovery_timeout,
                                           expect=[h.name for h in expected])
        results = {}
        for host in expected:
            if host.name in replies:
                results[host.name] = reply_result(host.name, request.label, replies[host.name])
            else:
                results[host.name] = HostResult(host.name, Status.UNREACHABLE,
                                                f"{host.name}: did not answer the broadcast within "
                                                f"{settings.discovery_timeout:g} s (not connected to the broker, "
                                                f"or its live facts do not match {flt.describe()})")
            results[host.name].tries = 1
        extra = sorted(set(replies) - set(results))
        if extra:
            import sys
            print(f"note: {', '.join(extra)} answered {flt.describe()} over NATS but the inventory does not "
                  f"select {'them' if len(extra) > 1 else 'it'}", file=sys.stderr)
        result = RunResult(request.label, results, time.monotonic() - started)
        self.audit.record(request, result)
        return result

    @staticmethod
    def require_answers(pinged: RunResult, hosts: list[Host]) -> None:
        """Live discovery's rule: every discovered host answered `pinged` (which may hold others)."""
        names = {h.name for h in hosts}
        silent = [n for n in pinged.unreachable + pinged.failed if n in names]
        if silent:
            reasons = "; ".join(pinged.results[n].message for n in silent)
            raise DiscoveryError(f"{len(silent)} of {len(hosts)} discovered hosts did not answer: {reasons}")

    # ---- actions --------------------------------------------------------------------------
    def call(self, hosts: Iterable[Host], agent: str, action: str, args: Mapping[str, Any] | None = None,
             options: RunOptions = RunOptions(), *, dry_run: bool = False,
             on_result: Callable[[HostResult], None] | None = None, side: bool = False) -> RunResult:
        """Run agent#action on every host (one reqid for the whole request, as MCollective does);
        `dry_run`: each host says what the action would change and changes nothing. Each host's
        request is written to the audit log (and the run's journal) as "sent" before it goes out.
        `side`: by the side transport (one-shot exec on a channel of its own). Arguments that fail
        the protocol's schema (protocol_args) are an ArgumentError before any host is contacted."""
        try:
            protocol_args.check(agent, action, dict(args or {}))
        except protocol_args.ArgError as e:
            raise ArgumentError(str(e)) from None
        request = Request(agent, action, dict(args or {}), reqid=rpc.new_reqid(), caller=self.caller, dry_run=dry_run,
                          spec=self.spec)
        hosts = list(hosts)
        transport = self.side_transport if side else self.transport
        return self._run(hosts, request, options,
                         lambda done: transport.call_many(hosts, request, options, done, on_send=self._sending(request)),
                         on_result)

    def _sending(self, request: Request) -> Callable[[Host], None]:
        audit_sent = self.audit.sender(request)

        def sending(host: Host) -> None:
            audit_sent(host.name)
            if self.journal is not None:
                self.journal.sent(request.reqid, request.label, host.name)
        return sending

    def shell(self, hosts: Iterable[Host], command: str, options: RunOptions = RunOptions(timeout=60.0),
              on_result: Callable[[HostResult], None] | None = None) -> RunResult:
        """Run a plain command (MCollective's shell agent): no agent, one exec per host. Exit 0 is
        ok; anything else fails the host. Not idempotent by nature: use agents for changes."""
        request = Request("shell", "run", {"command": command}, reqid=rpc.new_reqid(), caller=self.caller,
                          spec=self.spec)
        hosts = list(hosts)

        def task(host: Host) -> HostResult:
            done = self.pool.exec(host, command, timeout=options.timeout or 60.0)
            status = Status.OK if done.rc == 0 else Status.FAILED
            message = "" if done.rc == 0 else f"exit {done.rc}: {(done.stderr or done.stdout).strip()[:200]}"
            return HostResult(host=host.name, status=status, message=message, rc=done.rc,
                              stdout=done.stdout, stderr=done.stderr, duration=done.duration)

        def fan_out(done: Callable[[HostResult], None]) -> RunResult:
            self.pool.check_keys(hosts)  # over SSH whatever the estate's transport: one error for a bad key file
            return run_on_hosts(hosts, task, label=request.label, options=options, workers=self.workers,
                                on_result=done)

        return self._run(hosts, request, options, fan_out, on_result)

    def _run(self, hosts: list[Host], request: Request, options: RunOptions,
             fan_out: Callable[[Callable[[HostResult], None]], RunResult],
             on_result: Callable[[HostResult], None] | None) -> RunResult:
        """Fan out, then audit. Ctrl-C is audited too (what finished, the rest interrupted) before
        it goes on up as Interrupted: the log never misses a request that ran."""
        if self.preflight is not None:
            self.preflight(self.inventory)
        self.audit.check_writable()  # an unwritable log: refused before any host is contacted
        finished: dict[str, HostResult] = {}

        def done(result: HostResult) -> None:
            finished[result.host] = result
            if self.journal is not None:
                self.journal.result(request.reqid, request.label, result)
            if on_result is not None:
                on_result(result)

        started = time.monotonic()
        try:
            result = fan_out(done)
        except KeyboardInterrupt:
            result, running = interrupted_result(request.label, hosts, finished, options.batch_size,
                                                 time.monotonic() - started)
            self.audit.record(request, result)
            raise Interrupted(result, running) from None
        self.audit.record(request, result)
        return result

    def host(self, name: str) -> Host:
        return self.inventory.host(name)

    def close(self) -> None:
        self.transport.close()
        if self.transport_name != "ssh":  # shell runs over SSH whatever the transport
            self.pool.close()
        self.audit.close()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
