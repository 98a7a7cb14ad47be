"""firewall: block / unblock / status of inbound traffic from one address, e.g. the load balancer
while a host is upgraded. Our rule carries a comment tag, so we find, and remove, only our own."""
from __future__ import annotations

import ipaddress
import re

from . import core
from .core import ActionError, CmdResult, Reply, Request

agent = core.Agent(__name__, "block, unblock, status of traffic from a source address")

TAG = re.compile(r"^[A-Za-z0-9_.:/@-]{1,200}$")
CHAIN = re.compile(r"^[A-Za-z0-9_-]{1,28}$")
ABSENT = "Bad rule"          # iptables -C: "Bad rule (does a matching rule exist in that chain?)"


class FirewallBackend:
    label = ""

    def present(self, source: str, tag: str, chain: str) -> bool: raise NotImplementedError
    def add(self, source: str, tag: str, chain: str) -> CmdResult: raise NotImplementedError
    def delete(self, source: str, tag: str, chain: str) -> CmdResult: raise NotImplementedError


class Iptables(FirewallBackend):
    label = "iptables"

    def _tool(self, source: str) -> str:
        return "ip6tables" if ipaddress.ip_network(source, strict=False).version == 6 else "iptables"

    def _rule(self, op: str, source: str, tag: str, chain: str) -> list[str]:
        return [self._tool(source), "-w", "10", op, chain, "-s", source,
                "-m", "comment", "--comment", tag, "-j", "DROP"]

    def present(self, source: str, tag: str, chain: str) -> bool:
        r = core.run(self._rule("-C", source, tag, chain))
        if r.rc == 0:
            return True
        if r.rc == 1 and ABSENT in r.stderr:
            return False
        raise ActionError(f"{self._tool(source)} -C {chain}: {r.line()}")

    def add(self, source: str, tag: str, chain: str) -> CmdResult:
        return core.run(self._rule("-I", source, tag, chain))

    def delete(self, source: str, tag: str, chain: str) -> CmdResult:
        return core.run(self._rule("-D", source, tag, chain))


class Nft(FirewallBackend):
    """Our own table, `inet deployer`: a drop in any base chain drops, so nobody else's ruleset
    is edited, and `nft list` output for it is ours to parse."""
    label = "nft"
    TABLE = ("inet", "deployer")

    def _chain(self, chain: str) -> str:
        return chain.lower()

    def _ensure_chain(self, chain: str) -> CmdResult:
        family, table = self.TABLE
        r = core.run(["nft", "add", "table", family, table])
        if not r.ok:
            return r
        return core.run(["nft", "add", "chain", family, table, self._chain(chain),
                         "{ type filter hook input priority -10 ; policy accept ; }"])

    def _handles(self, source: str, tag: str, chain: str) -> list[str]:
        family, table = self.TABLE
        r = core.run(["nft", "-a", "list", "chain", family, table, self._chain(chain)])
        if not r.ok:
            if "No such file or directory" in r.stderr:
                return []
            raise ActionError(f"nft list chain: {r.line()}")
        return self.parse_handles(r.stdout, source, tag)

    @staticmethod
    def parse_handles(listing: str, source: str, tag: str) -> list[str]:
        """Handles of `ip saddr SOURCE drop comment "TAG"` rules in an `nft -a list` listing."""
        handles = []
        for line in listing.splitlines():
            m = re.search(r'saddr (\S+) .*\bdrop\b.*comment "([^"]*)".*# handle (\d+)', line)
            if m and m.group(2) == tag and _same(m.group(1), source):
                handles.append(m.group(3))
        return handles

    def present(self, source: str, tag: str, chain: str) -> bool:
        return bool(self._handles(source, tag, chain))

    def add(self, source: str, tag: str, chain: str) -> CmdResult:
        r = self._ensure_chain(chain)
        if not r.ok:
            return r
        family, table = self.TABLE
        ip = "ip6" if ipaddress.ip_network(source, strict=False).version == 6 else "ip"
        return core.run(["nft", "insert", "rule", family, table, self._chain(chain), ip, "saddr", source,
                         "drop", "comment", f'"{tag}"'])

    def delete(self, source: str, tag: str, chain: str) -> CmdResult:
        family, table = self.TABLE
        for handle in self._handles(source, tag, chain):
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
    if not TAG.match(tag) or not CHAIN.match(chain):
        raise ActionError(f"{req.label}: invalid comment or chain")
    return source, tag, chain, choose_backend(req)


def _data(source: str, tag: str, chain: str, backend: FirewallBackend, blocked: bool) -> dict:
    return {"source": source, "comment": tag, "chain": chain, "backend": backend.label, "blocked": blocked}


def _word(blocked: bool) -> str:
    return "blocked" if blocked else "unblocked"


@agent.action
def status(req: Request) -> Reply:
    source, tag, chain, backend = _args(req)
    blocked = backend.present(source, tag, chain)
    return Reply.ok(f"{source} {_word(blocked)}", before=_word(blocked), after=_word(blocked),
                    data=_data(source, tag, chain, backend, blocked))


@agent.action
def block(req: Request) -> Reply:
    source, tag, chain, backend = _args(req)
    if backend.present(source, tag, chain):
        return Reply.ok(f"{source} already blocked", before="blocked", after="blocked",
                        data=_data(source, tag, chain, backend, True))
    r = backend.add(source, tag, chain)
    if not r.ok or not backend.present(source, tag, chain):
        raise ActionError(f"blocking {source} failed: {r.line()}")
    return Reply.done(True, f"{source} blocked ({tag})", before="unblocked", after="blocked",
                      data=_data(source, tag, chain, backend, True))


@agent.action
def unblock(req: Request) -> Reply:
    """Removes every copy of our rule (a rule inserted twice by hand would otherwise linger)."""
    source, tag, chain, backend = _args(req)
    if not backend.present(source, tag, chain):
        return Reply.ok(f"{source} already unblocked", before="unblocked", after="unblocked",
                        data=_data(source, tag, chain, backend, False))
    for _ in range(100):
        r = backend.delete(source, tag, chain)
        if not r.ok:
            raise ActionError(f"unblocking {source} failed: {r.line()}")
        if not backend.present(source, tag, chain):
            return Reply.done(True, f"{source} unblocked", before="blocked", after="unblocked",
                              data=_data(source, tag, chain, backend, False))
    raise ActionError(f"unblocking {source}: rule still present after 100 deletions")
