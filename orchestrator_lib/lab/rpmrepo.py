"""The lab's dnf repository: the same package sources and releases as the apt repository
(aptrepo.py), built as RPMs with rpmbuild and indexed with createrepo_c, so the package agent's
rpm/dnf backend runs the production commands on the lab's RPM-family hosts.

`4.2.6-3.el5` is RPM's Version `4.2.6`, Release `3.el5`. The Debian maintainer scripts become the
%post (run as `configure`) and %preun (`remove` when the package goes, `upgrade` otherwise)
scriptlets. Two repositories, as a distribution publishes a release and a testing pocket:
`lab` (`main/`, enabled) and `lab-proposed` (`proposed/`, `enabled=0`) carrying the broken
release, which only a request for that exact version reaches (the agent enables a disabled
repository for an explicit version it carries, as an operator runs `dnf --enablerepo=`).
`lab-filesystem` registers the host's own userland (/bin/sh for the scriptlets) in the rpm
database, the role the `filesystem` and `bash` packages play on a real host.
"""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..controller.errors import LabError
from .aptrepo import LIB_DIRS, RELEASES, SOURCES, SUITES, Release

#: Packages the RPM hosts get (the notify receiver and nginx stand-in stay Debian-only).
PACKAGES = ("mywebapp", "openssl-lab")
BASE = Release("lab-filesystem", "1-1")
#: The hosts' /etc/yum.repos.d/lab.repo (the repository is mounted read-only on /srv/rpm).
REPO_FILE = """[lab]
name=lab release
baseurl=file:///srv/rpm/main
enabled=1
gpgcheck=0
metadata_expire=0

[lab-proposed]
name=lab proposed updates (not vetted: reached only by an explicit version)
baseurl=file:///srv/rpm/proposed
enabled=0
gpgcheck=0
metadata_expire=0
"""

SPEC = """Name: {name}
Version: {version}
Release: {release}
Summary: lab package {name}
License: MIT
BuildArch: noarch
AutoReqProv: no
{provides}
%global __os_install_post %{{nil}}
%global debug_package %{{nil}}
%global _build_id_links none

%description
{name}, built by the lab from orchestrator_lib/lab/packages/{name}.

%install
mkdir -p %{{buildroot}}
cp -a {root}/. %{{buildroot}}/

%files
{files}
{scriptlets}
"""


def _version_release(version: str) -> tuple[str, str]:
    upstream, _, release = version.rpartition("-")
    return (upstream, release) if upstream else (version, "1")


def _body(script: Path) -> str:
    return "\n".join(line for line in script.read_text().splitlines() if not line.startswith("#!"))


def _scriptlets(src: Path) -> str:
    parts = []
    if (src / "postinst").exists():
        parts.append('%post\nif [ "$1" = 1 ]; then set -- configure; else set -- configure upgrade; fi\n'
                     + _body(src / "postinst"))
    if (src / "prerm").exists():
        parts.append('%preun\nif [ "$1" = 0 ]; then set -- remove; else set -- upgrade; fi\n' + _body(src / "prerm"))
    return "\n\n".join(parts)


def _build_rpm(release: Release, out_dir: Path, topdir: Path) -> None:
    src = SOURCES / release.package
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        if (src / "root").exists():
            shutil.copytree(src / "root", root, symlinks=True)
        else:
            root.mkdir()
        provides = ""
        if release.package == BASE.package:
            provides = "Provides: /bin/sh\nProvides: /usr/bin/python3\nProvides: python3\nProvides: curl"
        else:
            lib = root / "usr" / "lib" / LIB_DIRS.get(release.package, release.package)
            lib.mkdir(parents=True, exist_ok=True)
            (lib / "VERSION").write_text(release.version + "\n")
            if release.broken:
                (lib / "BROKEN").write_text("this release fails its health check on purpose\n")
        files = sorted("/" + p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir())
        version, rel = _version_release(release.version)
        spec = Path(tmp) / f"{release.package}.spec"
        spec.write_text(SPEC.format(name=release.package, version=version, release=rel, provides=provides,
                                    root=root, files="\n".join(files),
                                    scriptlets="" if release.package == BASE.package else _scriptlets(src)))
        done = subprocess.run(["rpmbuild", "-bb", "--quiet", "--define", f"_topdir {topdir}",
                               "--define", f"_rpmdir {out_dir}", "--define", "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm",
                               str(spec)], capture_output=True, text=True)
        if done.returncode != 0:
            raise LabError(f"rpmbuild {release.package} {release.version}: {(done.stderr or done.stdout).strip()[-300:]}")


def _digest() -> str:
    digest = hashlib.sha256(repr((RELEASES, PACKAGES, BASE, SPEC, REPO_FILE)).encode())
    for name in PACKAGES:
        for path in sorted((SOURCES / name).rglob("*")):
            digest.update(str(path.relative_to(SOURCES)).encode())
            if path.is_file():
                digest.update(path.read_bytes())
    return digest.hexdigest()


def build_repository(repo_dir: Path) -> Path:
    """Build (or reuse) `main/` and `proposed/` under repo_dir, each a createrepo_c repository."""
    stamp = repo_dir / ".digest"
    digest = _digest()
    if stamp.exists() and stamp.read_text() == digest:
        return repo_dir
    shutil.rmtree(repo_dir, ignore_errors=True)
    with tempfile.TemporaryDirectory() as topdir:
        for suite in SUITES:
            suite_dir = repo_dir / suite
            suite_dir.mkdir(parents=True)
            releases = [r for r in RELEASES if r.package in PACKAGES and r.suite == suite]
            for release in releases + ([BASE] if suite == "main" else []):
                _build_rpm(release, suite_dir, Path(topdir))
            subprocess.run(["createrepo_c", "-q", str(suite_dir)], check=True, capture_output=True)
    stamp.write_text(digest)
    return repo_dir
