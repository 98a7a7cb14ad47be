"""known_hosts, indexed: the file is read once into a dict by host name, so checking a host's key
costs one dict lookup. paramiko's HostKeys scans every entry per lookup (building key objects on
the way) and compares each line with all the lines before it while loading: at 1,000 hosts that
was a third of the controller's CPU while connecting.

Same file format and meaning as OpenSSH: plain and hashed (`|1|salt|hash`) names, `[host]:port`,
several keys per name (any of them matches), `@revoked` keys refused; `@cert-authority` lines are
skipped (no certificates here)."""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import threading
from dataclasses import dataclass, field
from pathlib import Path

HASHED = "|1|"


def fingerprint(key_blob: bytes) -> str:
    """"SHA256:..." as `ssh-keygen -l` prints it."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(key_blob).digest()).decode().rstrip("=")


@dataclass(frozen=True)
class KnownKey:
    key_type: str
    blob: bytes
    line: int  # 0 for a key added in this run


@dataclass
class KnownHosts:
    """One known_hosts file. Thread-safe: the fan-out checks keys from many workers at once."""
    path: Path
    _by_name: dict[str, list[KnownKey]] = field(default_factory=dict)
    _hashed: list[tuple[bytes, bytes, KnownKey]] = field(default_factory=list)  # (salt, digest, key)
    _revoked: set[bytes] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def load(cls, path: Path) -> "KnownHosts":
        known = cls(path)
        if path.exists():
            for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                known._parse(line, number)
        return known

    def _parse(self, line: str, number: int) -> None:
        """One line; a line OpenSSH would not understand is skipped, as OpenSSH does."""
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            return
        marker = fields.pop(0) if fields[0].startswith("@") else ""
        if len(fields) < 3 or marker not in ("", "@revoked"):
            return
        names, key_type, data = fields[:3]
        try:
            blob = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            return
        if marker == "@revoked":
            self._revoked.add(blob)
            return
        key = KnownKey(key_type, blob, number)
        for name in names.split(","):
            if name.startswith(HASHED):
                salt_hash = name[len(HASHED):].split("|")
                try:
                    salt, digest = (base64.b64decode(part) for part in salt_hash)
                except (binascii.Error, ValueError):
                    continue
                self._hashed.append((salt, digest, key))
            else:
                self._by_name.setdefault(name, []).append(key)

    def lookup(self, name: str) -> list[KnownKey]:
        """Every key known for `name` (plain entries by dict, hashed ones by trying each salt)."""
        keys = list(self._by_name.get(name, ()))
        raw = name.encode()
        keys += [key for salt, digest, key in self._hashed
                 if hmac.compare_digest(hmac.digest(salt, raw, "sha1"), digest)]
        return keys

    def is_revoked(self, blob: bytes) -> bool:
        return blob in self._revoked

    def add(self, name: str, key_type: str, blob: bytes) -> None:
        """Trust on first use: remember the key and append it to the file, as ssh does."""
        line = f"{name} {key_type} {base64.b64encode(blob).decode()}\n"
        with self._lock:
            self._by_name.setdefault(name, []).append(KnownKey(key_type, blob, 0))
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("ab+") as f:
                f.seek(0, 2)
                if f.tell():  # a last line without its newline would swallow ours
                    f.seek(-1, 2)
                    if f.read(1) != b"\n":
                        line = "\n" + line
                f.write(line.encode())
