"""firewall: block / unblock / status of inbound traffic from one address, e.g. the load balancer
while a host is upgraded. Our rules carry a comment tag, so we find, and remove, only our own.

A block rejects rather than drops, so the LB learns at once that the host is gone: its connects
and health checks fail immediately (and HAProxy can redispatch the request to another server)
instead of hanging until `timeout connect` / the check timeout. It is a pair of rules, both tagged:
TCP is answered with a reset, everything else with ICMP port-unreachable. A lone `-j REJECT` (ICMP
for TCP as well) is not enough: Linux rate-limits the ICMP errors it sends to one address (a burst
of 6, then one a second: net.ipv4.icmp_ratelimit), so a busy LB would still see most connects hang,
and an ICMP error that arrives while the connecting socket is still locked in connect() only
becomes a soft error (on the lab's veths every HAProxy check then timed out, as with DROP). A reset
is neither rate-limited nor lost that way.

Upgrades: older agent versions blocked with one tagged DROP rule. status and block count such a
rule as a block in effect (block leaves it alone: "already blocked"); unblock removes it too. Only
block ever adds rules, and only the REJECT pair. Half a pair (an interrupted block, a rule removed
by hand) is "partly blocked": block replaces it with a whole pair, unblock removes it."""
from __future__ import annotations

import ipaddress
import re

from ... import protocol_args
from .. import core
from ...protocol import BLOCKED, PARTLY_BLOCKED, UNBLOCKED
from ..core import ActionError, CmdResult, Reply, Request

agent = core.Agent(__name__, "block, unblock, status of traffic from a source address")

TAG, CHAIN = protocol_args.TAG, protocol_args.CHAIN  # matched whole; a chain never starts with -
ABSENT = "Bad rule"          # iptables -C: "Bad rule (does a matching rule exist in that chain?)"

#: The rules a block consists of, in insertion order: each is inserted at the top of the chain,
#: so the TCP reset ends up above the catch-all REJECT (which would otherwise answer TCP too).
BLOCK = ("reject", "tcp-reset")
#: What older agent versions inserted: recognized and removed, never added.
LEGACY = ("drop",)
KINDS = BLOCK + LEGACY


class FirewallBackend:
    """Our rules for (source, tag, chain), by kind (KINDS)."""
    label = ""

    def found(self, source: str, tag: str, chain: str) -> set[str]: raise NotImplementedError
    def insert(self, kind: str, source: str, tag: str, chain: str) -> CmdResult: raise NotImplementedError
    def delete(self, kind: str, source: str, tag: str, chain: str) -> CmdResult: raise NotImplementedError


class Iptables(FirewallBackend):
    label = "iptables"
    TARGETS = {"reject": ["-j", "REJECT"],          # default --reject-with icmp(6)-port-unreachable
               "tcp-reset": ["-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset"],
               "drop": ["-j", "DROP"]}

    def _tool(self, source: str) -> str:
        return "ip6tables" if ipaddress.ip_network(source, strict=False).version == 6 else "iptables"

    def _rule(self, op: str, kind: str, source: str, tag: str, chain: str) -> list[str]:
        return [self._tool(source), "-w", "10", op, chain, "-s", source,
                "-m", "comment", "--comment", tag, *self.TARGETS[kind]]

    def _present(self, kind: str, source: str, tag: str, chain: str) -> bool:
        r = core.run(self._rule("-C", kind, source, tag, chain))
        if r.rc == 0:
            return True
        if r.rc == 1 and ABSENT in r.stderr:
            return False
        raise ActionError(f"{self._tool(source)} -C {chain}: {r.line()}")

    def found(self, source: str, tag: str, chain: str) -> set[str]:
        return {kind for kind in KINDS if self._present(kind, source, tag, chain)}

    def insert(self, kind: str, source: str, tag: str, chain: str) -> CmdResult:
        return core.run(self._rule("-I", kind, source, tag, chain))

    def delete(self, kind: str, source: str, tag: str, chain: str) -> CmdResult:
        """Deletes one copy."""
        return core.run(self._rule("-D", kind, source, tag, chain))


class Nft(FirewallBackend):
    """Our own table, `inet deployer`: a reject or drop in any base chain is final for the packet,
    so nobody else's ruleset is edited, and `nft list` output for it is ours to parse."""
    label = "nft"
    TABLE = ("inet", "deployer")
    VERDICTS = {"reject": ["reject"], "tcp-reset": ["meta", "l4proto", "tcp", "reject", "with", "tcp", "reset"],
                "drop": ["drop"]}
    #: how `nft -a list` shows each kind: `reject with icmp port-unreachable` (icmpv6 for ip6)
    LISTED = re.compile(r'saddr (?P<source>\S+) (?:(?P<tcp>meta l4proto (?:tcp|6) reject with tcp reset)|'
                        r'(?P<reject>reject)(?: with icmp(?:v6|x)? port-unreachable)?|(?P<drop>drop)) '
                        r'comment "(?P<tag>[^"]*)".*# handle (?P<handle>\d+)')

    def _chain(self, chain: str) -> str:
        return chain.lower()

    def _ensure_chain(self, chain: str) -> CmdResult:
        family, table = self.TABLE
        r = core.run(["nft", "add", "table", family, table])
        if not r.ok:
            return r
        return core.run(["nft", "add", "chain", family, table, self._chain(chain),
                         "{ type filter hook input priority -10 ; policy accept ; }"])

    def _handles(self, source: str, tag: str, chain: str) -> dict[str, list[str]]:
        family, table = self.TABLE
        r = core.run(["nft", "-a", "list", "chain", family, table, self._chain(chain)])
        if not r.ok:
            if "No such file or directory" in r.stderr:
                return {}
            raise ActionError(f"nft list chain: {r.line()}")
        return self.parse_handles(r.stdout, source, tag)

    @classmethod
    def parse_handles(cls, listing: str, source: str, tag: str) -> dict[str, list[str]]:
        """{kind: [handle, ...]} of our rules (`ip saddr SOURCE <verdict> comment "TAG"`) in an
        `nft -a list` listing; kinds without a rule are left out."""
        handles: dict[str, list[str]] = {}
        for line in listing.splitlines():
            m = cls.LISTED.search(line)
            if m and m["tag"] == tag and _same(m["source"], source):
                kind = "tcp-reset" if m["tcp"] else "reject" if m["reject"] else "drop"
                handles.setdefault(kind, []).append(m["handle"])
        return handles

    def found(self, source: str, tag: str, chain: str) -> set[str]:
        return set(self._handles(source, tag, chain))

    def insert(self, kind: str, source: str, tag: str, chain: str) -> CmdResult:
        r = self._ensure_chain(chain)
        if not r.ok:
            return r
        family, table = self.TABLE
        ip = "ip6" if ipaddress.ip_network(source, strict=False).version == 6 else "ip"
        return core.run(["nft", "insert", "rule", family, table, self._chain(chain), ip, "saddr", source,
                         *self.VERDICTS[kind], "comment", f'"{tag}"'])

    def delete(self, kind: str, source: str, tag: str, chain: str) -> CmdResult:
        """Deletes every copy."""
        family, table = self.TABLE
        for handle in self._handles(source, tag, chain).get(kind, []):
            r = core.run(["nft", "delete", "rule", family, table, self._chain(chain), "handle", handle])
            if not r.ok:
                return r
        return core.CmdResult(0, "", "")


def _same(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_network(a, strict=False) == ipaddress.ip_network(b, strict=False)
    except ValueError:
        return a == b


BACKENDS = {b.label: b for b in (Iptables, Nft)}


def choose_backend(req: Request) -> FirewallBackend:
    wanted = req.str_arg("backend", None)
    if wanted:
        if wanted not in BACKENDS:
            raise ActionError(f"{req.label}: unknown firewall backend {wanted!r} (known: {', '.join(BACKENDS)})")
        return BACKENDS[wanted]()
    if core.system().which("iptables"):
        return Iptables()
    if core.system().which("nft"):
        return Nft()
    raise ActionError("neither iptables nor nft is installed on this host")


def _args(req: Request) -> tuple[str, str, str, FirewallBackend]:
    source = req.str_arg("source")
    try:
        net = ipaddress.ip_network(source, strict=False)
    except ValueError:
        raise ActionError(f"{req.label}: source must be an IP address or network, got {source!r}") from None
    source = str(net.network_address) if net.num_addresses == 1 else str(net)
    tag = req.str_arg("comment", f"deployer-block-{source}")
    chain = req.str_arg("chain", "INPUT")
    if not TAG.fullmatch(tag) or not CHAIN.fullmatch(chain):
        raise ActionError(f"{req.label}: invalid comment or chain")
    return source, tag, chain, choose_backend(req)


def _blocked(found: set[str]) -> bool:
    """A block is in effect: our whole REJECT pair, or an older agent's DROP."""
    return set(BLOCK) <= found or bool(found & set(LEGACY))


def _data(source: str, tag: str, chain: str, backend: FirewallBackend, blocked: bool) -> dict:
    return {"source": source, "comment": tag, "chain": chain, "backend": backend.label, "blocked": blocked}


def _word(found: set[str]) -> str:
    return BLOCKED if _blocked(found) else PARTLY_BLOCKED if found else UNBLOCKED


@agent.action
def status(req: Request) -> Reply:
    source, tag, chain, backend = _args(req)
    found = backend.found(source, tag, chain)
    return Reply.ok(f"{source} {_word(found)}", before=_word(found), after=_word(found),
                    data=_data(source, tag, chain, backend, _blocked(found)))


@agent.action
def block(req: Request) -> Reply:
    """Inserts the REJECT pair; half a pair left over is removed first, so the TCP reset is on top."""
    source, tag, chain, backend = _args(req)
    found = backend.found(source, tag, chain)
    if _blocked(found):
        return Reply.ok(f"{source} already blocked", before=BLOCKED, after=BLOCKED,
                        data=_data(source, tag, chain, backend, True))
    if req.dry_run:
        return Reply.done(True, f"{source} would be blocked ({tag})", dry_run=True, before=_word(found),
                          after=BLOCKED, data=_data(source, tag, chain, backend, True))
    _delete_all(backend, found, source, tag, chain, "blocking")
    for kind in BLOCK:
        r = backend.insert(kind, source, tag, chain)
        if not r.ok:
            raise ActionError(f"blocking {source} failed: {r.line()}")
    if not _blocked(backend.found(source, tag, chain)):
        raise ActionError(f"blocking {source} failed: the rules are not in place after inserting them")
    return Reply.done(True, f"{source} blocked ({tag})", before=_word(found), after=BLOCKED,
                      data=_data(source, tag, chain, backend, True))


@agent.action
def unblock(req: Request) -> Reply:
    """Removes every copy of every rule of ours, the legacy DROP included (a rule inserted twice
    by hand would otherwise linger)."""
    source, tag, chain, backend = _args(req)
    found = backend.found(source, tag, chain)
    if not found:
        return Reply.ok(f"{source} already unblocked", before=UNBLOCKED, after=UNBLOCKED,
                        data=_data(source, tag, chain, backend, False))
    if req.dry_run:
        return Reply.done(True, f"{source} would be unblocked", dry_run=True, before=_word(found),
                          after=UNBLOCKED, data=_data(source, tag, chain, backend, False))
    if _delete_all(backend, found, source, tag, chain, "unblocking"):
        raise ActionError(f"unblocking {source}: rule still present after 100 deletions")
    return Reply.done(True, f"{source} unblocked", before=_word(found), after=UNBLOCKED,
                      data=_data(source, tag, chain, backend, False))


def _delete_all(backend: FirewallBackend, found: set[str], source: str, tag: str, chain: str,
                doing: str) -> set[str]:
    """Deletes our rules of the kinds in `found` until none is left; returns what is left after
    100 rounds (nothing, unless something keeps adding them)."""
    for _ in range(100):
        if not found:
            break
        for kind in sorted(found):
            r = backend.delete(kind, source, tag, chain)
            if not r.ok:
                raise ActionError(f"{doing} {source} failed: {r.line()}")
        found = backend.found(source, tag, chain)
    return found
