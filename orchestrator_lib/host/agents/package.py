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


class PackageState(namedtuple("PackageState", "name version state others", defaults=((),))):
    """`version` is None when not installed; `state` is installed | absent | config-files |
    half-configured | ... | duplicated (rpm: an interrupted transaction left `others`, further
    versions, in the rpm database next to `version`, the newest)."""
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

    def repair(self, state: PackageState, keep: str) -> CmdResult:
        """Put a half-installed package right at version `keep` (backends that detect one)."""
        raise ActionError(f"{state.name}: {self.label} cannot repair a package in state {state.state}")

    @staticmethod
    def error_line(r: CmdResult) -> str:
        """apt/dnf print warnings before the error that matters. The package manager's own words
        say what failed (`dpkg: error processing package X (--configure):` and its indented
        reason; rpm's `error: %post(X) scriptlet failed`), apt's `E: Sub-process /usr/bin/dpkg
        returned an error code (1)` only that something did: prefer the former."""
        lines = (r.stderr + "\n" + r.stdout).splitlines()
        for i, ln in enumerate(lines):
            if ln.startswith("dpkg: error"):
                reason = lines[i + 1].strip() if i + 1 < len(lines) and lines[i + 1].startswith(" ") else ""
                return f"{ln.strip()} {reason}".strip()
        for prefixes in (("error: ",), ("E:", "Error:", "error:")):
            for ln in lines:
                if ln.startswith(prefixes) and "Sub-process" not in ln:
                    return ln.strip()
        return next((ln.strip() for ln in lines if ln.startswith(("E:", "Error:"))), r.line())


class DpkgApt(PackageBackend):
    label = "dpkg-apt"
    INSTALLED = {"installed", "triggers-pending", "triggers-awaited"}

    #: dpkg's database: one stanza a package instance, and the journal of changes not yet merged
    STATUS, UPDATES = "/var/lib/dpkg/status", "/var/lib/dpkg/updates"

    def state(self, name: str) -> PackageState:
        found = self._read_status(name)
        if found is not None:
            return self._state(name, *found)
        r = core.run(["dpkg-query", "-W", "-f=${Status}\t${Version}\n", name])
        if r.rc != 0:
            if "no packages found" in r.stderr or "not installed" in r.stderr or r.rc == 1:
                return PackageState(name, None, "absent")
            raise ActionError(f"dpkg-query {name}: {r.line()}")
        line = next((ln for ln in r.stdout.splitlines() if ln.strip()), "")
        status, _, version = line.partition("\t")
        return self._state(name, status, version)

    def _read_status(self, name: str) -> tuple[str, str] | None:
        """(Status, Version) of `name` read from dpkg's status file, as dpkg-query reads it but
        without its process (~1 ms instead of ~17 ms a call, and a deploy asks several times a
        host); ("", "") when dpkg does not know it. None, and dpkg-query decides, when dpkg has
        changes not yet merged into the file (an interrupted run's updates/ journal) or the
        package has several instances (multi-arch)."""
        sys_ = core.system()
        pending = sys_.listdir(self.UPDATES)
        if pending is None or any(n != "tmp.i" for n in pending):
            return None
        text = sys_.read_text(self.STATUS)
        if not text:
            return None
        text = "\n" + text
        line = f"\nPackage: {name}\n"
        start = text.find(line)
        if start < 0:
            return "", ""
        if text.find(line, start + len(line)) >= 0:
            return None
        end = text.find("\n\n", start + 1)
        fields = dict(ln.partition(": ")[::2] for ln in text[start + 1:end if end >= 0 else None].splitlines()
                      if ln and not ln[0].isspace())
        return fields.get("Status", "").strip(), fields.get("Version", "").strip()

    def _state(self, name: str, status: str, version: str) -> PackageState:
        if not status:
            return PackageState(name, None, "absent")
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
        """Installed, absent, or `duplicated`: rpm's half-installed package. An upgrade installs
        the new package, then erases the old one; interrupted in between (killed, power loss, a
        failed %preun of the old package) both stay in the rpm database, the newer one's files on
        disk (yum check / `dnf check --duplicates`: "X is a duplicate with Y"). Install-only
        packages (kernels) are several on purpose: `dnf check` does not call those duplicates."""
        r = core.run(["rpm", "-q", "--qf", self.QF, name])
        if r.rc != 0:
            if "is not installed" in r.stdout + r.stderr:
                return PackageState(name, None, "absent")
            raise ActionError(f"rpm -q {name}: {r.line()}")
        versions = [_clean_evr(v) for v in r.stdout.splitlines() if v.strip()]
        best = versions[0]
        for v in versions[1:]:
            if rpm_compare(v, best) > 0:
                best = v
        others = tuple(v for v in versions if v != best) or tuple(versions[1:])
        if len(versions) > 1 and self._duplicated(name):
            return PackageState(name, best, "duplicated", others)
        return PackageState(name, best, "installed")

    @staticmethod
    def _duplicated(name: str) -> bool:
        """dnf's own verdict (only asked when rpm lists several versions): an install-only
        package is no duplicate."""
        r = core.run(["dnf", "-q", "-C", "check", "--duplicates"], timeout=300)
        return any(ln.startswith(f"{name}-") and "is a duplicate with" in ln
                   for ln in (r.stdout + "\n" + r.stderr).splitlines())

    def repair(self, state: PackageState, keep: str) -> CmdResult:
        """Red Hat's procedure for duplicates: drop the other versions' headers from the rpm
        database only (`rpm -e --justdb --nodeps`: no scriptlets of a half-erased package run,
        no file the kept one needs goes), then reinstall the kept version so its files and
        scriptlets are whole again. Only this package is touched (`dnf remove --duplicates`
        would act on every duplicated package on the host, and always keeps the newest)."""
        drop = [v for v in (state.version, *state.others) if v != keep]
        r = core.run(["rpm", "-e", "--justdb", "--nodeps", *(f"{state.name}-{v}" for v in drop)])
        if not r.ok:
            return r
        repo = self.repo_of.get(keep)
        enable = [f"--enablerepo={repo}"] if repo and not repo.startswith("@") else []
        return core.run(["dnf", "-y", "-q", *enable, "reinstall", f"{state.name}-{keep}"], timeout=INSTALL_TIMEOUT)

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
    if cur.state == "duplicated":
        return _repair(backend, cur, version, downgrade=downgrade, dry_run=dry_run)
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


def _repair(backend: PackageBackend, cur: PackageState, version: str | None, *,
            downgrade: bool, dry_run: bool) -> Outcome:
    """A half-installed rpm package (`duplicated`) when the deploy names what it wants: the deploy
    says which version must remain, so converge to it, as an operator does by hand (Red Hat's
    duplicate procedure) instead of failing every later run on the same host. The kept version is
    the wanted one when it is among the duplicates (nothing to download: a reinstall), else the
    newest, then the usual update or (only with downgrade=true) downgrade to the wanted one."""
    name, versions = cur.name, (cur.version, *cur.others)
    keep = version if version in versions else cur.version
    if version is not None and version not in versions:
        known = backend.versions(name)
        if version not in known:
            raise ActionError(f"{name} {version} is not available from the package sources "
                              f"(available: {', '.join(known[:8]) or 'none'}); {name} is {_shown(cur)}")
        _plan(backend, cur._replace(state="installed", others=()), version, version, downgrade)  # refuses before any change
    else:
        if keep != cur.version and not downgrade:  # the newer one's files are on disk: going back is a downgrade
            raise ActionError(f"refusing to downgrade {name} from {_shown(cur)} to {keep} (pass downgrade=true to allow it)")
        backend.versions(name)  # learns which repository offers `keep` (it may be a disabled one)
    gone = ", ".join(v for v in versions if v != keep)
    if dry_run:
        return Outcome(True, _shown(cur), version or keep,
                       f"{name} would be repaired ({_shown(cur)}: {gone} dropped, {keep} reinstalled)")
    r = backend.repair(cur, keep)
    after = backend.state(name)
    if not r.ok or not after.installed or after.version != keep:
        raise ActionError(f"repairing {name} ({_shown(cur)}) failed: "
                          f"{backend.error_line(r) if not r.ok else 'the host reports ' + _shown(after)}")
    repaired = f"{name} repaired: {gone} dropped from the rpm database, {keep} reinstalled"
    if version == keep:
        return Outcome(True, _shown(cur), keep, repaired)
    out = ensure(backend, name, version, downgrade=downgrade)  # version None: the newest, as asked
    return Outcome(True, _shown(cur), out.after, f"{repaired}; {out.message}")


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
    """`3.0.13-1`, `3.0.13-1 (half-configured)`, `absent`, or for an rpm package left twice in
    the database `4.2.6-3.el5 + 4.2.5-1.el5 (half-installed: duplicated)`."""
    if st.version is None:
        return "absent" if st.state == "absent" else st.state
    if st.state == "duplicated":
        return f"{' + '.join((st.version, *st.others))} (half-installed: duplicated)"
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
    text = f"{name} {version}" if version else f"{name} {_shown(st) if st.state == 'duplicated' else st.state}"
    data = {"name": name, "version": version, "state": st.state, "backend": backend.label}
    if st.others:
        data["versions"] = [st.version, *st.others]
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
