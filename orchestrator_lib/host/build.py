"""Pack the host agent into one zipapp (controller side; never shipped itself).

The bytes are deterministic (sorted entries, fixed timestamps and modes), so the content hash
names the agent: hosts keep it unpacked and compiled as `agent-<sha12>/` (rpc.INSTALL_SCRIPT),
and an unchanged agent is never re-uploaded.
"""
from __future__ import annotations

import functools
import hashlib
import io
import sys
import zipfile
from pathlib import Path

HOST_DIR = Path(__file__).resolve().parent
LIBRARY_DIR = HOST_DIR.parent
#: Controller-only modules that must not be shipped.
EXCLUDE = frozenset({"build.py"})
#: Modules only the NATS service runs (its bundle adds them): left out of the SSH agent, whose
#: first contact compiles every module it ships.
NATS_ONLY = ("host/nats_service.py", "host/signing.py")
FIXED_TIME = (1980, 1, 1, 0, 0, 0)
ROOT_MAIN = b'''"""Host agent entry point: one JSON request on stdin, one JSON reply on stdout."""
import sys

from orchestrator_lib.host.core import main

sys.exit(main())
'''
# The real orchestrator_lib/__init__.py stays home: the host needs the protocol and host/ only.
PACKAGE_INIT = b'"""orchestrator_lib, host side: only the protocol and the host package are shipped."""\n'


def sources(library_dir: Path = LIBRARY_DIR, *, nats: bool = False) -> dict[str, bytes]:
    """Archive path -> bytes, for every file the zipapp holds: protocol.py and host/ (recursively),
    without the NATS service's own modules unless `nats`."""
    files = {"__main__.py": ROOT_MAIN, "orchestrator_lib/__init__.py": PACKAGE_INIT}
    shipped = [library_dir / "protocol.py", library_dir / "protocol_args.py", *sorted((library_dir / "host").rglob("*.py"))]
    for path in shipped:
        rel = path.relative_to(library_dir).as_posix()
        if path.exists() and path.name not in EXCLUDE and "__pycache__" not in path.parts and (nats or rel not in NATS_ONLY):
            files["orchestrator_lib/" + rel] = path.read_bytes()
    return files


def build(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3                    # unix, whatever the builder runs on
            info.external_attr = 0o100644 << 16
            zf.writestr(info, files[name], compresslevel=9)
    return buf.getvalue()


def sha12(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


@functools.lru_cache(maxsize=1)
def agent_archive() -> tuple[bytes, str]:
    """(zipapp bytes, first 12 hex digits of their sha256); built once per process."""
    data = build(sources())
    return data, sha12(data)


# --------------------------------------------------------------------------- the NATS service bundle

NATS_MAIN = b'''"""The agent's NATS service (orchestrator_lib/host/nats_service.py): run by the host's python3
with -I (no user site, no PYTHON* variables); this directory comes first on sys.path."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from orchestrator_lib.controller.discovery.filters import Filter  # noqa: E402
from orchestrator_lib.host.nats_service import main  # noqa: E402

_PARSED = {}


def match(flt, host):
    """The controller's own filter language, evaluated against this host's live facts and classes."""
    key = repr(sorted(flt.items()))
    if key not in _PARSED:
        _PARSED[key] = Filter.from_wire(flt)
    return _PARSED[key].matches(host)


sys.exit(main(match))
'''
#: Controller modules the NATS service ships so agents evaluate discovery filters exactly as the
#: controller does (stdlib only; their inventory imports are for annotations only).
DISCOVERY_FILES = ("controller/errors.py", "controller/discovery/filters.py",
                   "controller/discovery/compound.py", "controller/discovery/terms.py")
CONTROLLER_INIT = b'"""Only the discovery matchers of the controller, shipped with the NATS agent."""\n'
DISCOVERY_INIT = b'"""Discovery filters, matched by the NATS agent against its own facts."""\n'


def nats_sources(library_dir: Path = LIBRARY_DIR) -> dict[str, bytes]:
    """The NATS service bundle: the agent (protocol.py, host/), discovery's matchers, and nats-py,
    which is pure Python and no Debian package: shipped from the controller's own install, so a host
    needs neither PyPI access nor pip, and the bytes a host runs are the ones the hash names."""
    import nats
    files = sources(library_dir, nats=True)
    files["__main__.py"] = NATS_MAIN
    files["orchestrator_lib/controller/__init__.py"] = CONTROLLER_INIT
    files["orchestrator_lib/controller/discovery/__init__.py"] = DISCOVERY_INIT
    for rel in DISCOVERY_FILES:
        path = library_dir / rel
        if path.exists():
            files["orchestrator_lib/" + rel] = path.read_bytes()
    nats_dir = Path(nats.__file__).resolve().parent
    for path in sorted(nats_dir.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix in (".py", ".typed"):
            files["nats/" + path.relative_to(nats_dir).as_posix()] = path.read_bytes()
    return files


@functools.lru_cache(maxsize=1)
def nats_archive() -> tuple[bytes, str]:
    """(NATS service bundle bytes, sha12), built once per process."""
    data = build(nats_sources())
    return data, sha12(data)


def main(argv: list[str] | None = None) -> int:
    """`python -m orchestrator_lib.host.build [OUT.pyz]`: print the hash, optionally write."""
    argv = sys.argv[1:] if argv is None else argv
    data, digest = agent_archive()
    if argv:
        Path(argv[0]).write_bytes(data)
    print(f"agent-{digest}.pyz {len(data)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
