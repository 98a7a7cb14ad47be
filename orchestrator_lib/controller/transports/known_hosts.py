"""known_hosts, indexed: the file is read once into a dict by host name, so checking a host's key
costs one dict lookup. paramiko's HostKeys scans every entry per lookup (building key objects on
the way) and compares each line with all the lines before it while loading: at 1,000 hosts that
was a third of the controller's CPU while connecting.

Same file format and meaning as OpenSSH: plain and hashed (`|1|salt|hash`) names, `[host]:port`,
wildcards (`*`, `?`) and negated patterns (`web1,!10.0.0.1`: a negation matching any name of the
host, its address or its inventory name, takes the line away from it, as OpenSSH refuses it),
several keys per name (any of them matches), `@revoked` keys refused; `@cert-authority` lines are
skipped (no certificates here). Like ssh, the system-wide GLOBAL file is read too (after the
user's, never written)."""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import threading
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

HASHED = "|1|"
GLOBAL = Path("/etc/ssh/ssh_known_hosts")


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
    #: lines with a wildcard or a negation: (patterns, key), each pattern (negated, text)
    _patterned: list[tuple[tuple[tuple[bool, str], ...], KnownKey]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def load(cls, path: Path, global_path: Path | None = GLOBAL) -> "KnownHosts":
        """The user's file (`path`, where trust on first use appends) and the system-wide one."""
        known = cls(path)
        for source in (path, global_path):
            if source is not None and source.is_file():
                for number, line in enumerate(source.read_text(errors="replace").splitlines(), 1):
                    known._parse(line, number if source == path else 0)
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
        if any(c in names for c in "!*?"):
            self._patterned.append((tuple((n.startswith("!"), n.lstrip("!")) for n in names.split(",") if n.lstrip("!")),
                                    key))
            return
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

    def lookup(self, name: str, all_names: tuple[str, ...] | list[str] = ()) -> list[KnownKey]:
        """Every key known for `name` (plain entries by dict, hashed ones by trying each salt,
        wildcard lines by matching). A line with a negated pattern matching `name` or any of
        `all_names` (the host's other names) does not count."""
        keys = list(self._by_name.get(name, ()))
        keys += [key for salt, digest, key in self._hashed if _hashed_match(salt, digest, name)]
        names = (name, *all_names)
        for patterns, key in self._patterned:
            if any(negated and _matches(p, n) for negated, p in patterns for n in names):
                continue
            if any(not negated and _matches(p, name) for negated, p in patterns):
                keys.append(key)
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


def _hashed_match(salt: bytes, digest: bytes, name: str) -> bool:
    return hmac.compare_digest(hmac.digest(salt, name.encode(), "sha1"), digest)


def _matches(pattern: str, name: str) -> bool:
    """One known_hosts pattern: hashed, or a name with OpenSSH's `*` and `?` wildcards (no []).
    Host names compare case-insensitively, as in OpenSSH."""
    if pattern.startswith(HASHED):
        try:
            salt, digest = (base64.b64decode(part) for part in pattern[len(HASHED):].split("|"))
        except (binascii.Error, ValueError):
            return False
        return _hashed_match(salt, digest, name)
    return fnmatchcase(name.lower(), pattern.lower().replace("[", "[[]"))
