"""lab/snapshot.py without a lab: the digest of a directory tree and of a /proc changes with any
write, removal or new process, and only then (the fixture resets the hosts whose digest changed)."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from orchestrator_lib.lab import snapshot


def tree(root: Path) -> str:
    digest = hashlib.sha256()
    snapshot._tree(digest, root)
    return digest.hexdigest()


def test_a_tree_digest_changes_with_every_kind_of_write_and_only_then(tmp_path):
    (tmp_path / "etc" / "sv").mkdir(parents=True)
    (tmp_path / "etc" / "sv" / "run").write_text("#!/bin/sh\n")
    (tmp_path / "log").symlink_to("/nonexistent")
    for path in (tmp_path / "etc", tmp_path / "etc" / "sv", tmp_path / "etc" / "sv" / "run"):
        os.utime(path, (1_000_000, 1_000_000))  # written long ago: a rewrite now has a later time
    clean = tree(tmp_path)
    assert tree(tmp_path) == clean
    changes = [lambda: (tmp_path / "etc" / "sv" / "run").write_text("#!/bin/sh\n"),   # same content, rewritten
               lambda: (tmp_path / "etc" / "sv" / "new").touch(),
               lambda: (tmp_path / "etc" / "sv" / "new").unlink(),
               lambda: os.chmod(tmp_path / "etc" / "sv" / "run", 0o755),
               lambda: (tmp_path / "etc" / "sv" / "run").rename(tmp_path / "etc" / "sv" / "run2")]
    for change in changes:
        before = tree(tmp_path)
        os.utime(tmp_path / "etc" / "sv", (1_000_000, 1_000_000))
        change()
        assert tree(tmp_path) != before


def test_a_missing_tree_is_a_state_of_its_own(tmp_path):
    assert tree(tmp_path / "absent") != tree(tmp_path)


def test_the_process_digest_names_each_process_by_pid_start_time_and_command(tmp_path):
    proc = tmp_path / "proc"
    for pid, comm, start in ((1, "runsvdir", 100), (7, "sshd: root (x)", 200)):
        (proc / str(pid)).mkdir(parents=True)
        (proc / str(pid) / "stat").write_text(f"{pid} ({comm}) S 0 1 1 0 -1 4 0 0 0 0 0 0 0 0 20 0 1 0 {start} 0 0\n")
    (proc / "self").mkdir()

    def digest() -> str:
        d = hashlib.sha256()
        snapshot._processes(d, proc)
        return d.hexdigest()
    clean = digest()
    assert digest() == clean
    (proc / "7" / "stat").write_text("7 (sshd: root (x)) S 0 1 1 0 -1 4 0 0 0 0 0 0 0 0 20 0 1 0 201 0 0\n")
    assert digest() != clean                     # the same PID, another process
    (proc / "9").mkdir()                         # exited before its stat was read: skipped
    assert digest() == digest()
