"""package: query and converge one package. Read the state first, then change only what differs
(pyinfra's facts/operations split): a host already at the wanted version costs one dpkg-query
and no package-manager write, so re-running a deploy is cheap and safe."""
from __future__ import annotations

import re
from collections import namedtuple

from ... import protocol_args
from .. import core
from . import rpcutil
from ..core import ActionError, CmdResult, Reply, Request

agent = core.Agent(__name__, "status, install, update, remove a package (dpkg/apt, rpm/dnf)")

APT_ENV = {"DEBIAN_FRONTEND": "noninteractive", "APT_LISTCHANGES_FRONTEND": "none"}
APT_OPTS = ["-y", "-q", "-o", "DPkg::Lock::Timeout=60",
            "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold"]
INSTALL_TIMEOUT = 900.0
# The protocol's argument patterns (protocol_args), matched whole: a trailing newline is no name.
PACKAGE_NAME, VERSION = protocol_args.PACKAGE, protocol_args.VERSION


class PackageState(namedtuple("PackageState", "name version state")):
    """`version` is None when not installed; `state` is installed | absent | config-files |
    half-configured | ..."""
    __slots__ = ()

    @property
    def installed(self) -> bool:
        return self.version is not None and self.state == "installed"


class PackageBackend:
    """One package manager. State-reading methods never write; install/remove/refresh do."""
    label = ""

    def state(self, name: str) -> PackageState: raise NotImplementedError
    def candidate(self, name: str) -> str | None: raise NotImplementedError
    def versions(self, name: str) -> list[str]: raise NotImplementedError
    def compare(self, a: str, b: str) -> int: raise NotImplementedError
    def refresh(self) -> CmdResult: raise NotImplementedError
    def install(self, name: str, version: str | None, current: str | None, downgrade: bool) -> CmdResult: raise NotImplementedError
    def remove(self, name: str, purge: bool = False) -> CmdResult: raise NotImplementedError

    @staticmethod
    def error_line(r: CmdResult) -> str:
        """apt/dnf print warnings before the error that matters: prefer the `E:`/`Error:` line."""
        for ln in (r.stderr + "\n" + r.stdout).splitlines():
            if ln.startswith(("E:", "Error:", "error:")):
                return ln.strip()
        return r.line()


class DpkgApt(PackageBackend):
    label = "dpkg-apt"
    INSTALLED = {"installed", "triggers-pending", "triggers-awaited"}

    def state(self, name: str) -> PackageState:
        r = core.run(["dpkg-query", "-W", "-f=${Status}\t${Version}\n", name])
        if r.rc != 0:
            if "no packages found" in r.stderr or "not installed" in r.stderr or r.rc == 1:
                return PackageState(name, None, "absent")
            raise ActionError(f"dpkg-query {name}: {r.line()}")
        line = next((ln for ln in r.stdout.splitlines() if ln.strip()), "")
        status, _, version = line.partition("\t")
        words = status.split()
        state = words[-1] if words else "unknown"
        if state in self.INSTALLED:
            return PackageState(name, version.strip(), "installed")
        if state in ("not-installed", "config-files"):
            return PackageState(name, None, "absent" if state == "not-installed" else state)
        return PackageState(name, version.strip() or None, state)  # half-configured, unpacked, ...

    def candidate(self, name: str) -> str | None:
        r = core.run(["apt-cache", "policy", name])
        m = re.search(r"^\s*Candidate:\s*(\S+)", r.stdout, re.MULTILINE)
        return m.group(1) if m and m.group(1) != "(none)" else None

    def versions(self, name: str) -> list[str]:
        r = core.run(["apt-cache", "madison", name])
        out: list[str] = []
        for line in r.stdout.splitlines():
            parts = [p.strip() for p in line.split("|")]
            if len(parts) >= 3 and parts[0] == name and "Sources" not in parts[2] and parts[1] not in out:
                out.append(parts[1])
        return out

    def compare(self, a: str, b: str) -> int:
        if a == b:
            return 0
        for op, result in (("lt", -1), ("gt", 1)):
            r = core.run(["dpkg", "--compare-versions", a, op, b])
            if r.rc == 0:
                return result
            if r.rc != 1:
                raise ActionError(f"dpkg --compare-versions {a} {op} {b}: {r.line()}")
        return 0

    def refresh(self) -> CmdResult:
        return core.run(["apt-get", "update", "-q", "-o", "DPkg::Lock::Timeout=60"], env=APT_ENV, timeout=300)

    def install(self, name: str, version: str | None, current: str | None, downgrade: bool) -> CmdResult:
        if "." in name or "+" in name:
            # apt reads a name it does not know exactly as a regex: `zlib1.` installed zlib1g and
            # more. `apt-cache pkgnames PREFIX` matches literally: the name must be one of them.
            known = core.run(["apt-cache", "pkgnames", name])
            if name not in known.stdout.split():
                return CmdResult(100, "", f"E: no package is called exactly {name!r} (apt would read "
                                          "the name as a pattern and install others)")
        argv = ["apt-get", "install", *APT_OPTS] + (["--allow-downgrades"] if downgrade else [])
        argv.append(f"{name}={version}" if version else name)
        return core.run(argv, env=APT_ENV, timeout=INSTALL_TIMEOUT)

    def remove(self, name: str, purge: bool = False) -> CmdResult:
        return core.run(["apt-get", "purge" if purge else "remove", *APT_OPTS, name], env=APT_ENV,
                        timeout=INSTALL_TIMEOUT)


def _split_evr(evr: str) -> tuple[int, str, str]:
    epoch, _, rest = evr.rpartition(":") if ":" in evr else ("0", "", evr)
    version, _, release = rest.partition("-")
    return int(epoch or 0), version, release


def _isalpha(c: str) -> bool:
    return "a" <= c <= "z" or "A" <= c <= "Z"


def _isdigit(c: str) -> bool:
    return "0" <= c <= "9"


def rpmvercmp(a: str, b: str) -> int:
    """rpm's segment comparison, a line-by-line port of lib/rpmvercmp.c: digits beat letters,
    `~` sorts before everything, `^` after the base version."""
    if a == b:
        return 0
    i = j = 0
    na, nb = len(a), len(b)
    while i < na or j < nb:
        while i < na and not (_isalpha(a[i]) or _isdigit(a[i])) and a[i] not in "~^":
            i += 1
        while j < nb and not (_isalpha(b[j]) or _isdigit(b[j])) and b[j] not in "~^":
            j += 1
        ca, cb = a[i] if i < na else "", b[j] if j < nb else ""
        if ca == "~" or cb == "~":
            if ca != "~":
                return 1
            if cb != "~":
                return -1
            i, j = i + 1, j + 1
            continue
        if ca == "^" or cb == "^":
            if not ca:
                return -1
            if not cb:
                return 1
            if ca != "^":
                return 1
            if cb != "^":
                return -1
            i, j = i + 1, j + 1
            continue
        if not (ca and cb):
            break
        isnum = _isdigit(ca)
        same = _isdigit if isnum else _isalpha
        ei, ej = i, j
        while ei < na and same(a[ei]):
            ei += 1
        while ej < nb and same(b[ej]):
            ej += 1
        if ej == j:
            return 1 if isnum else -1
        sa, sb = a[i:ei], b[j:ej]
        if isnum:
            sa, sb = sa.lstrip("0"), sb.lstrip("0")
            if len(sa) != len(sb):
                return 1 if len(sa) > len(sb) else -1
        if sa != sb:
            return 1 if sa > sb else -1
        i, j = ei, ej
    if i >= na and j >= nb:
        return 0
    return -1 if i >= na else 1


def rpm_compare(a: str, b: str) -> int:
    ea, va, ra = _split_evr(a)
    eb, vb, rb = _split_evr(b)
    if ea != eb:
        return 1 if ea > eb else -1
    return rpmvercmp(va, vb) or (rpmvercmp(ra, rb) if ra and rb else 0)


def _clean_evr(evr: str) -> str:
    evr = evr.strip()
    for prefix in ("(none):", "0:"):
        if evr.startswith(prefix):
            return evr[len(prefix):]
    return evr


class RpmDnf(PackageBackend):
    label = "rpm-dnf"
    QF = "%{EPOCH}:%{VERSION}-%{RELEASE}\n"

    def state(self, name: str) -> PackageState:
        r = core.run(["rpm", "-q", "--qf", self.QF, name])
        if r.rc != 0:
            if "is not installed" in r.stdout + r.stderr:
                return PackageState(name, None, "absent")
            raise ActionError(f"rpm -q {name}: {r.line()}")
        versions = [_clean_evr(v) for v in r.stdout.splitlines() if v.strip()]
        best = versions[0]
        for v in versions[1:]:  # several installed (kernel-style): report the newest
            if rpm_compare(v, best) > 0:
                best = v
        return PackageState(name, best, "installed")

    QUERY = ["dnf", "-q", "repoquery", "--qf", "%{epoch}:%{version}-%{release} %{repoid}\n"]
    #: An explicit version may sit in a repository that is disabled by default (a testing or
    #: proposed pocket): look there too, as an operator would with `dnf --enablerepo=`.
    EVERYWHERE = ["--enablerepo=*", "--setopt=*.skip_if_unavailable=True"]

    def __init__(self) -> None:
        self.repo_of: dict[str, str] = {}  # version -> the repository that offers it

    def _query(self, name: str, everywhere: bool) -> list[tuple[str, str]]:
        r = core.run(self.QUERY + (self.EVERYWHERE if everywhere else []) + [name], timeout=300)
        if r.rc != 0:
            raise ActionError(f"dnf repoquery {name}: {self.error_line(r)}")
        found = []
        for line in r.stdout.splitlines():
            evr, _, repo = line.strip().partition(" ")
            if evr:
                found.append((_clean_evr(evr), repo))
        return found

    def versions(self, name: str) -> list[str]:
        """Every version any configured repository offers, enabled or not (apt's madison lists a
        NotAutomatic suite too): a version asked for by name is reachable; the newest is not."""
        out: list[str] = []
        for version, repo in self._query(name, everywhere=True):
            self.repo_of.setdefault(version, repo)
            if version not in out:
                out.append(version)
        return out

    def candidate(self, name: str) -> str | None:
        """The newest version of the enabled repositories: what `dnf upgrade NAME` installs."""
        best: str | None = None
        for version, _repo in self._query(name, everywhere=False):
            if best is None or rpm_compare(version, best) > 0:
                best = version
        return best

    def compare(self, a: str, b: str) -> int:
        return rpm_compare(a, b)

    def refresh(self) -> CmdResult:
        return core.run(["dnf", "-q", "makecache", "--refresh"], timeout=300)

    def install(self, name: str, version: str | None, current: str | None, downgrade: bool) -> CmdResult:
        if current is None:
            verb = "install"
        elif version is None:
            verb = "upgrade"
        else:
            verb = "downgrade" if downgrade else "install"
        spec = f"{name}-{version}" if version else name
        repo = self.repo_of.get(version) if version else None
        enable = [f"--enablerepo={repo}"] if repo and not repo.startswith("@") else []
        return core.run(["dnf", "-y", "-q", *enable, verb, spec], timeout=INSTALL_TIMEOUT)

    def remove(self, name: str, purge: bool = False) -> CmdResult:
        return core.run(["dnf", "-y", "-q", "remove", name], timeout=INSTALL_TIMEOUT)


BACKENDS = {b.label: b for b in (DpkgApt, RpmDnf)}


def choose_backend() -> PackageBackend:
    """By what the OS says it is (os-release ID/ID_LIKE), else by which tool is installed."""
    rel = rpcutil.os_release()
    ids = {rel.get("ID", "")} | set(rel.get("ID_LIKE", "").split())
    if ids & {"debian", "ubuntu"}:
        return DpkgApt()
    if ids & {"rhel", "fedora", "centos", "rocky", "almalinux", "amzn", "ol"}:
        return RpmDnf()
    sys_ = core.system()
    if sys_.which("dpkg-query") and sys_.which("apt-get"):
        return DpkgApt()
    if sys_.which("rpm") and sys_.which("dnf"):
        return RpmDnf()
    raise ActionError("no supported package manager (dpkg/apt or rpm/dnf) on this host")


class Outcome(namedtuple("Outcome", "changed before after message")):
    """What `ensure` did: changed or not, the version before and after (None: absent), and why."""
    __slots__ = ()


def ensure(backend: PackageBackend, name: str, version: str | None = None, *,
           downgrade: bool = False, refresh: bool = False, dry_run: bool = False) -> Outcome:
    """Bring `name` to `version` (None: newest available). Raises ActionError when it cannot.
    `dry_run`: the same decisions on the index as it is (never refreshed), nothing installed."""
    cur = backend.state(name)
    if version is not None and cur.installed and cur.version == version and not refresh:
        return Outcome(False, cur.version, cur.version, f"{name} already at {version}")
    refreshed = dry_run  # a dry run reads the index as it is: refreshing writes it
    if refresh and not dry_run:
        _refresh(backend)
        refreshed = True
    if version is None:
        target = backend.candidate(name)
        if target is None and not refreshed:
            _refresh(backend)
            target = backend.candidate(name)
        if target is None:
            raise ActionError(f"{name}: no installable candidate in the package sources")
    else:
        target = version
        known = backend.versions(name)
        if version not in known and not refreshed:
            _refresh(backend)  # only now: the wanted version may be newer than our index
            known = backend.versions(name)
        if version not in known:
            have = ", ".join(known[:8]) or "none"
            stale = f"; a dry run reads the index as it is: if {version} was published since, refresh it first" \
                if dry_run else ""
            raise ActionError(f"{name} {version} is not available from the package sources (available: {have}{stale})")
    is_downgrade, converged = _plan(backend, cur, target, version, downgrade)
    if converged:
        return Outcome(False, cur.version, cur.version, converged)
    verb = "downgraded" if is_downgrade else ("updated" if cur.version else "installed")
    if dry_run:
        return Outcome(True, cur.version, target, f"{name} would be {verb} {_shown(cur)} -> {target}")
    r = backend.install(name, target, cur.version, is_downgrade)
    after = backend.state(name)
    if not r.ok:
        raise ActionError(f"installing {name} {target} failed: {backend.error_line(r)} ({name} now {_shown(after)})")
    if not after.installed or backend.compare(after.version, target) != 0:
        raise ActionError(f"after installing {name} {target} the host reports {_shown(after)}")
    return Outcome(True, cur.version, after.version, f"{name} {verb} {_shown(cur)} -> {after.version}")


def _plan(backend: PackageBackend, cur: PackageState, target: str, version: str | None,
          downgrade: bool) -> tuple[bool, str]:
    """(is the install of `target` a downgrade, why nothing needs doing or ""). A package left
    half-configured (or unpacked) still has the version dpkg downgrades from, so it is compared
    too; only an installed one counts as converged."""
    if cur.version is None:
        return False, ""
    order = backend.compare(cur.version, target)
    if order == 0:
        return False, f"{cur.name} already at {target}" if cur.installed else ""
    if order < 0:
        return False, ""
    if cur.installed and version is None:
        return False, f"{cur.name} {cur.version} is newer than the newest available {target}; left alone"
    if not downgrade:
        raise ActionError(f"refusing to downgrade {cur.name} from {_shown(cur)} to {target} "
                          f"(pass downgrade=true to allow it)")
    return True, ""


def _shown(st: PackageState) -> str:
    """`3.0.13-1`, `3.0.13-1 (half-configured)` or `absent`: what a message says the host has."""
    if st.version is None:
        return "absent" if st.state == "absent" else st.state
    return st.version if st.installed else f"{st.version} ({st.state})"


def _refresh(backend: PackageBackend) -> None:
    r = backend.refresh()
    if not r.ok:
        raise ActionError(f"refreshing the package index failed: {backend.error_line(r)}")


def _name(req: Request) -> str:
    name = req.str_arg("name")
    if not PACKAGE_NAME.fullmatch(name):
        raise ActionError(f"{req.label}: invalid package name {name!r}")
    return name


def _version(req: Request) -> str | None:
    version = req.str_arg("version", None)
    if version is not None and not VERSION.fullmatch(version):
        raise ActionError(f"{req.label}: invalid version {version!r}")
    return version


def _reply(req: Request, name: str, backend: PackageBackend, out: Outcome) -> Reply:
    return Reply.done(out.changed, out.message, dry_run=req.dry_run, before=out.before, after=out.after,
                      data={"name": name, "version": out.after, "previous": out.before,
                            "backend": backend.label})


@agent.action
def status(req: Request) -> Reply:
    name, backend = _name(req), choose_backend()
    st = backend.state(name)
    version = st.version if st.installed else None
    text = f"{name} {version}" if version else f"{name} {st.state}"
    data = {"name": name, "version": version, "state": st.state, "backend": backend.label}
    # read-only: the versions the host's index offers (the deploy's pre-flight). With `version`,
    # a host that already has it is not asked (the index lookup is the pre-flight's slowest part)
    wanted = req.str_arg("version", "")
    if req.bool_arg("available") and not (wanted and version == wanted):
        data["available"] = backend.versions(name)
    return Reply.ok(text, before=version, after=version, data=data)


@agent.action
def install(req: Request) -> Reply:
    """Present at all (any version), or at `version` when one is given."""
    name, version, backend = _name(req), _version(req), choose_backend()
    if version is None:
        st = backend.state(name)
        if st.installed:
            return _reply(req, name, backend, Outcome(False, st.version, st.version, f"{name} {st.version} already installed"))
    return _reply(req, name, backend, ensure(backend, name, version, downgrade=req.bool_arg("downgrade"),
                                             refresh=req.bool_arg("refresh"), dry_run=req.dry_run))


@agent.action
def update(req: Request) -> Reply:
    """To `version`, or to the newest available; a downgrade only with downgrade=true."""
    name, version, backend = _name(req), _version(req), choose_backend()
    return _reply(req, name, backend, ensure(backend, name, version, downgrade=req.bool_arg("downgrade"),
                                             refresh=req.bool_arg("refresh"), dry_run=req.dry_run))


@agent.action
def remove(req: Request) -> Reply:
    name, backend = _name(req), choose_backend()
    purge = req.bool_arg("purge") or req.action == "purge"
    st = backend.state(name)
    if st.version is None and (st.state == "absent" or not purge):
        return _reply(req, name, backend, Outcome(False, None, None, f"{name} already absent"))
    if req.dry_run:
        return _reply(req, name, backend, Outcome(True, st.version, None, f"{name} would be removed"))
    r = backend.remove(name, purge=purge)
    after = backend.state(name)
    if not r.ok or after.version is not None:
        raise ActionError(f"removing {name} failed: {backend.error_line(r)}")
    return _reply(req, name, backend, Outcome(True, st.version, None, f"{name} removed (was {st.version or st.state})"))
