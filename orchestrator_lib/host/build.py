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
FIXED_TIME = (1980, 1, 1, 0, 0, 0)
ROOT_MAIN = b'''"""Host agent entry point: one JSON request on stdin, one JSON reply on stdout."""
import sys

from orchestrator_lib.host.core import main

sys.exit(main())
'''
# The real orchestrator_lib/__init__.py stays home: the host needs the protocol and host/ only.
PACKAGE_INIT = b'"""orchestrator_lib, host side: only the protocol and the host package are shipped."""\n'


def sources(library_dir: Path = LIBRARY_DIR) -> dict[str, bytes]:
    """Archive path -> bytes, for every file the zipapp holds: protocol.py and host/ (recursively)."""
    files = {"__main__.py": ROOT_MAIN, "orchestrator_lib/__init__.py": PACKAGE_INIT}
    shipped = [library_dir / "protocol.py", library_dir / "protocol_args.py", *sorted((library_dir / "host").rglob("*.py"))]
    for path in shipped:
        if path.exists() and path.name not in EXCLUDE and "__pycache__" not in path.parts:
            files["orchestrator_lib/" + path.relative_to(library_dir).as_posix()] = path.read_bytes()
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
