"""A lab host's state as seen from the machine, cheaply, to tell whether anything changed it since
it was (re)started: its files (the overlay's upper directory, which takes every write below /etc,
/var, /usr, ..., and its tmpfs /run, /tmp, /dev/shm), its processes, its mounts, its firewall
ruleset and, on a load balancer, HAProxy's view of its servers.

Why: the tests start from a freshly reset estate, and a reset boots every host again (about 5 s
for the default estate's 12 hosts on 2 cores). Most tests touch a few hosts; the others are
exactly as their reset left them, and booting them again proves nothing. Anything a test does to
a host leaves a trace here: an SSH login is logged (svlogd) and every agent request is audited
(/var/log/orchestrator), a command started or killed changes the process list, a firewall rule
the ruleset, an HAProxy runtime command the servers' state. A host whose snapshot differs in any
way, even harmlessly, is reset again."""
from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

#: tmpfs mounts of a host (hostinit.sh): outside the overlay's upper directory
TMPFS = ("run", "tmp", "dev/shm")


def _tree(digest: "hashlib._Hash", root: Path) -> None:
    """Every entry below `root` with its type, size, change and modification times (not following
    symbolic links; a directory's times change when an entry is added, removed or renamed)."""
    stack = [str(root)]
    while stack:
        path = stack.pop()
        try:
            entries = sorted(os.scandir(path), key=lambda e: e.name)
        except OSError as e:  # gone meanwhile, or not a directory: itself a difference
            digest.update(f"{path}: {e.errno}\n".encode())
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                digest.update(f"{entry.path}: gone\n".encode())
                continue
            digest.update(f"{entry.path} {st.st_mode:o} {st.st_size} {st.st_mtime_ns} {st.st_ctime_ns}\n".encode())
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)


def _processes(digest: "hashlib._Hash", proc: Path) -> None:
    """The host's own /proc (its PID namespace): each process by PID, start time and command."""
    pids = sorted(int(p) for p in os.listdir(proc) if p.isdigit())
    for pid in pids:
        try:
            stat = (proc / str(pid) / "stat").read_text()
        except OSError:
            continue  # exited while we looked: the next snapshot says whether it is gone
        comm, fields = stat.split(" (", 1)[1].rsplit(") ", 1)
        digest.update(f"{pid} {comm} {fields.split()[19]}\n".encode())


def host_state(upper: Path, init_pid: int, haproxy_backend: str | None = None) -> str:
    """A digest of everything above about the host whose PID 1 is `init_pid` (a machine PID).
    `haproxy_backend`: the host is a load balancer; its servers' state in that backend counts too."""
    digest = hashlib.sha256()
    _tree(digest, upper)
    root = Path(f"/proc/{init_pid}/root")
    for mount in TMPFS:
        _tree(digest, root / mount)
    _processes(digest, root / "proc")
    digest.update(Path(f"/proc/{init_pid}/mountinfo").read_bytes())
    enter = ["nsenter", "-t", str(init_pid), "-n"]
    firewall = subprocess.run([*enter, "nft", "list", "ruleset"], capture_output=True, timeout=30)
    digest.update(firewall.stdout + firewall.stderr + bytes([firewall.returncode & 0xff]))
    if haproxy_backend is not None:
        # ids, names, address, operational and administrative state, weights: not the timers
        command = f"echo 'show servers state {haproxy_backend}' | socat stdio /run/haproxy/admin.sock"
        shown = subprocess.run([*enter, "-m", "-p", "sh", "-c", command], capture_output=True, text=True,
                               timeout=30)
        for line in shown.stdout.splitlines()[2:]:
            digest.update((" ".join(line.split()[:9]) + "\n").encode())
        digest.update(f"rc {shown.returncode}\n".encode())
    return digest.hexdigest()
