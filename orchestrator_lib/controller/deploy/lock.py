"""The deploy lock: a lease (host agent `lease`) on every host a run changes, taken before its
first change, renewed while it runs, given back at the end, on failure and on Ctrl-C. A second
run that targets any leased host stops before changing anything, with one line naming the holder.

Two runs started together over the same hosts must not each win half of them: the lease of the
first host (by name) is asked for alone, and only its holder goes on to ask for the rest, so
exactly one run proceeds. A run that loses a host later gives back what it took in that round."""
from __future__ import annotations

import threading
from typing import Callable, Iterable

from ..inventory import Host
from ..orchestration import HostResult, RunOptions, RunResult, Status
from ..session import Session
from .run import DeployError

#: seconds a lease lasts unless renewed; the run renews it every third of that
DEFAULT_TTL = 60.0
#: the lock's requests wait at most this long for a host
SIDE = RunOptions(timeout=10.0)


class LockHeld(DeployError):
    """Another run holds the lease on a targeted host: nothing was changed."""


class DeployLock:
    def __init__(self, session: Session, run: str, *, ttl: float = DEFAULT_TTL,
                 feature: Callable[[], str] = lambda: "", say: Callable[[str], None] = print) -> None:
        self.session, self.run, self.ttl = session, run, ttl
        self.feature, self.say = feature, say
        self.held: dict[str, Host] = {}
        self.lost: dict[str, str] = {}           # host -> why (a renewal found another holder)
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._lock = threading.Lock()

    def _args(self) -> dict:
        return {"run": self.run, "ttl": self.ttl, "feature": self.feature()}

    def acquire(self, hosts: Iterable[Host], may_miss: int = 0) -> list[Host]:
        """Lease every host not yet held: the first that answers alone, then the rest together.
        Raises LockHeld naming the holder; takeovers of expired leases are said. Up to `may_miss`
        hosts that do not answer (the scenario's failure budget can take them) are returned, not
        leased; more than that is a refusal naming them, before anything is changed."""
        if self.lost:
            raise LockHeld(f"the deploy lock was lost on {', '.join(self.lost)}: {'; '.join(self.lost.values())}; "
                           f"stopping before the next change")
        todo = sorted((h for h in hosts if h.name not in self.held), key=lambda h: h.name)
        taken: list[Host] = []
        missing: list[Host] = []
        while todo:
            # two runs started together meet on the first host that answers: exactly one gets it
            group = todo[:1] if not taken else todo
            todo = todo[len(group):]
            run = self.session.call(group, "lease", "acquire", self._args(), SIDE)
            won = [h for h in group if run.results[h.name].ok]
            gone = [h for h in group if run.results[h.name].status is Status.UNREACHABLE]
            taken += won
            missing += gone
            with self._lock:
                self.held.update((h.name, h) for h in won)
            self._say_takeovers(run)
            if len(won) + len(gone) < len(group) or len(missing) > may_miss:
                self._give_back(taken)
                raise LockHeld(self._refusal(run) if len(won) + len(gone) < len(group) else
                               f"cannot take the deploy lock: {', '.join(h.name for h in missing)} did not answer "
                               f"({run.results[missing[-1].name].message}); the failure budget allows {may_miss}; "
                               f"nothing was changed")
        if taken:
            self._start_renewing()
        return missing

    def _say_takeovers(self, run: RunResult) -> None:
        taken = {h: r.data["took_over"].get("text", "") for h, r in run.results.items()
                 if r.ok and isinstance(r.data.get("took_over"), dict)}
        if taken:
            whose = sorted(set(taken.values()))
            self.say(f"deploy lock: took over the expired lease on {', '.join(taken)} "
                     f"(held by {'; '.join(whose)}: that run died or stalled)")

    def _refusal(self, run: RunResult) -> str:
        bad = sorted((r for r in run.results.values() if not r.ok), key=lambda r: r.status is Status.UNREACHABLE)
        first = bad[0]  # a holder or a refusal says more than a host that did not answer
        holder = first.data.get("holder") if isinstance(first.data.get("holder"), dict) else None
        others = f" (and {len(bad) - 1} more host{'s' if len(bad) > 2 else ''})" if len(bad) > 1 else ""
        if holder:
            return (f"another deploy holds the lock on {first.host}{others}: {holder.get('text')}; "
                    f"nothing was changed")
        return f"cannot take the deploy lock on {first.host}{others}: {first.status}: {first.message}; nothing was changed"

    def _give_back(self, hosts: list[Host]) -> None:
        if hosts:
            self.session.call(hosts, "lease", "release", {"run": self.run}, SIDE)
            with self._lock:
                for h in hosts:
                    self.held.pop(h.name, None)

    # ---- renewal ------------------------------------------------------------------------------------
    def _start_renewing(self) -> None:
        if self._renewer is None:
            self._renewer = threading.Thread(target=self._renew_loop, name="lease-renewer", daemon=True)
            self._renewer.start()

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            with self._lock:
                hosts = list(self.held.values())
            if not hosts:
                continue
            try:
                run = self.session.call(hosts, "lease", "renew", {"run": self.run, "ttl": self.ttl}, SIDE,
                                        side=True)
            except Exception:  # the session is closing: the run is ending anyway
                return
            for name, result in run.results.items():
                if self._lost(result):
                    self.lost[name] = result.message

    @staticmethod
    def _lost(result: HostResult) -> bool:
        """Only a host that answered that another run holds the lease lost it (an unreachable
        host keeps its lease until it expires; the next renewal tries again)."""
        return not result.ok and "holder" in result.data

    # ---- the end ------------------------------------------------------------------------------------
    def release(self, resident: bool = True) -> RunResult | None:
        """Give back every lease (at the end of the run, on failure, on Ctrl-C: then
        `resident=False`, as requests may still be running on the hosts' resident agents)."""
        self._stop.set()
        with self._lock:
            hosts = list(self.held.values())
        if not hosts:
            return None
        run = self.session.call(hosts, "lease", "release", {"run": self.run}, SIDE, side=not resident)
        with self._lock:
            for name, result in run.results.items():
                if result.ok:
                    self.held.pop(name, None)
        return run
