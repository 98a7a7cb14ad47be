"""The lab's apt repository, built from package sources in the repo with Debian's own tools, so
the deployer's package commands on lab hosts are exactly the production ones.

Two flat repositories, as a distribution publishes a release and a pocket of unvetted updates:
`main/` carries the releases being deployed; `proposed/` carries the deliberately broken release,
with `NotAutomatic: yes` in its Release file (Debian's experimental convention: apt gives it pin
priority 1), so `apt-get install mywebapp` picks the newest version of `main/` and only an
explicit `mywebapp=4.2.7-1.el5` reaches the broken one."""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

SOURCES = Path(__file__).parent / "packages"


@dataclass(frozen=True)
class Release:
    package: str
    version: str
    broken: bool = False  # installs fine, but the service fails its health check
    suite: str = "main"   # "proposed": reached only by an explicit version (see the module doc)


# What the repository carries. Web hosts start on the first version of each.
RELEASES: tuple[Release, ...] = (
    Release("mywebapp", "4.2.5-1.el5"),
    Release("mywebapp", "4.2.6-3.el5"),
    Release("mywebapp", "4.2.7-1.el5", broken=True, suite="proposed"),
    Release("openssl-lab", "3.0.11-1"),
    Release("openssl-lab", "3.0.13-1"),
    Release("nginx", "1.22.1-9~lab1"),
    Release("notify-receiver", "1.0-1"),
)
SUITES = ("main", "proposed")
#: What each suite's Release file says beyond apt-ftparchive's checksums.
SUITE_FIELDS = {"main": "Suite: main\n", "proposed": "Suite: proposed\nNotAutomatic: yes\n"}
#: The hosts' sources.list lines (the repository is mounted read-only on /srv/apt).
SOURCES_LIST = "".join(f"deb [trusted=yes] file:/srv/apt/{suite} ./\n" for suite in SUITES)
INITIAL = {"mywebapp": "4.2.5-1.el5", "openssl-lab": "3.0.11-1"}
MAINTAINER_SCRIPTS = ("postinst", "prerm")
# Where a package keeps its VERSION file, when not /usr/lib/<package>.
LIB_DIRS = {"nginx": "nginx-lab"}


def _sources_digest() -> str:
    """Content hash of the package sources and release list, to rebuild only after a change."""
    digest = hashlib.sha256(repr((RELEASES, SUITE_FIELDS)).encode())
    for path in sorted(SOURCES.rglob("*")):
        digest.update(str(path.relative_to(SOURCES)).encode())
        if path.is_symlink():
            digest.update(str(path.readlink()).encode())
        elif path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _build_deb(release: Release, out_dir: Path) -> None:
    src = SOURCES / release.package
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        shutil.copytree(src / "root", root, symlinks=True) if (src / "root").exists() else root.mkdir()
        debian = root / "DEBIAN"
        debian.mkdir()
        (debian / "control").write_text((src / "control").read_text().format(version=release.version))
        for script in MAINTAINER_SCRIPTS:
            if (src / script).exists():
                shutil.copy2(src / script, debian / script)
        lib = root / "usr" / "lib" / LIB_DIRS.get(release.package, release.package)
        lib.mkdir(parents=True, exist_ok=True)
        (lib / "VERSION").write_text(release.version + "\n")
        if release.broken:
            (lib / "BROKEN").write_text("this release fails its health check on purpose\n")
        deb = out_dir / f"{release.package}_{release.version}_all.deb"
        subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(deb)],
                       check=True, capture_output=True)


def build_repository(repo_dir: Path) -> Path:
    """Build (or reuse) the repository in repo_dir: one flat repository per suite (SOURCES_LIST)."""
    stamp = repo_dir / ".digest"
    digest = _sources_digest()
    if stamp.exists() and stamp.read_text() == digest:
        return repo_dir
    if repo_dir.exists():
        shutil.rmtree(repo_dir)
    for suite in SUITES:
        suite_dir = repo_dir / suite
        suite_dir.mkdir(parents=True)
        for release in RELEASES:
            if release.suite == suite:
                _build_deb(release, suite_dir)
        packages = subprocess.run(["dpkg-scanpackages", "--multiversion", ".", "/dev/null"], cwd=suite_dir,
                                  check=True, capture_output=True, text=True).stdout
        (suite_dir / "Packages").write_text(packages)
        checksums = subprocess.run(["apt-ftparchive", "release", "."], cwd=suite_dir, check=True,
                                   capture_output=True, text=True).stdout
        (suite_dir / "Release").write_text(SUITE_FIELDS[suite] + checksums)
    stamp.write_text(digest)
    return repo_dir
