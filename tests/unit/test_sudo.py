"""become: sudo without a host: the rule sudo needs, the installer it allows, the refusals."""
import shutil
import subprocess

import pytest

from orchestrator_lib.controller.transports import sudo


def test_the_installer_has_nothing_sudoers_would_glob_or_comment():
    assert not set("*?[]\\#\n\"") & set(sudo.INSTALLER)


@pytest.mark.skipif(shutil.which("visudo") is None, reason="needs visudo")
def test_the_rule_file_parses(tmp_path):
    path = tmp_path / "orchestrator"
    path.write_text(sudo.sudoers_rule("deploy"))
    done = subprocess.run(["visudo", "-c", "-q", "-f", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_the_installer_installs_only_bytes_of_the_named_hash(tmp_path):
    """Run as this user against a temporary agent directory: a wrong hash installs nothing."""
    import hashlib
    import io
    import sys
    import zipfile
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("__main__.py", "print('hi')\n")
    data = buf.getvalue()
    sha = hashlib.sha256(data).hexdigest()[:12]
    code = sudo.INSTALLER.replace(sudo.AGENT_DIR, str(tmp_path))
    bad = subprocess.run([sys.executable, "-S", "-E", "-c", code, "0" * 12], input=data, capture_output=True)
    assert bad.returncode != 0 and b"does not have hash" in bad.stderr and not list(tmp_path.iterdir())
    good = subprocess.run([sys.executable, "-S", "-E", "-c", code, sha], input=data, capture_output=True)
    assert good.returncode == 0, good.stderr
    assert (tmp_path / f"agent-{sha}" / "__main__.py").read_text() == "print('hi')\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"agent-{sha}", "current"]
    assert (tmp_path / "current").read_text() == sha + "\n"        # the gate runs only this agent


def test_the_installer_pins_the_new_agent_and_removes_older_ones(tmp_path):
    import hashlib
    import io
    import sys
    import zipfile
    (tmp_path / "agent-0123456789ab").mkdir()          # an older agent, with older rules
    (tmp_path / "notes").write_text("kept")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("__main__.py", "print('new')\n")
    data = buf.getvalue()
    sha = hashlib.sha256(data).hexdigest()[:12]
    code = sudo.INSTALLER.replace(sudo.AGENT_DIR, str(tmp_path))
    done = subprocess.run([sys.executable, "-S", "-E", "-c", code, sha], input=data, capture_output=True)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"agent-{sha}", "current", "notes"]
    assert (tmp_path / "current").read_text() == sha + "\n"


@pytest.mark.parametrize("stderr, reason", [
    ("sudo: a password is required\n", "a password is required"),
    ("sudo: unable to resolve host web2: Temporary failure\nsudo: a password is required\n", "a password is required"),
    ("sh: 1: exec: sudo: not found\n", "sudo is not installed"),
])
def test_refusals_are_one_line_naming_host_user_and_rule(stderr, reason):
    message = sudo.refusal("web2", "deploy", 1, "", stderr)
    assert message.startswith(f"web2: sudo -n will not run the agent as root for deploy ({reason})")
    assert "deploy ALL=(root) NOPASSWD: ORCHESTRATOR_AGENT" in message and "\n" not in message


def test_an_agent_that_ran_is_no_refusal():
    assert sudo.refusal("web2", "deploy", 0, "", "sudo: a password is required") is None
    assert sudo.refusal("web2", "deploy", 1, '{"status": "failed"}', "sudo: x") is None
    assert sudo.refusal("web2", "deploy", 1, "", "Traceback ...\nValueError: x") is None


def test_first_contact_installs_from_the_first_bytes_and_serves_the_rest(tmp_path):
    """install_and_serve_command under a stand-in sudo (runs its command as this user): the
    installer gets exactly the zipapp, the agent it installed gets every line after it."""
    import hashlib
    import io
    import os
    import zipfile
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("__main__.py", "import sys\nfor line in sys.stdin: print('served', sys.argv[1:], line.strip())\n")
    data = buf.getvalue()
    sha = hashlib.sha256(data).hexdigest()[:12]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sudo").write_text('#!/bin/sh\n[ "$1" = -n ] && shift\nexec "$@"\n')
    (bin_dir / "sudo").chmod(0o755)
    agents = tmp_path / "agents"
    command = sudo.install_and_serve_command(sha, len(data)).replace(sudo.AGENT_DIR, str(agents))
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    done = subprocess.run(["sh", "-c", command], input=data + b"one\ntwo\n", capture_output=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().splitlines() == ["served ['--serve'] one", "served ['--serve'] two"]
    assert (agents / "current").read_text() == sha + "\n"


def test_first_contact_with_bytes_of_another_hash_installs_nothing_and_serves_nothing(tmp_path):
    import os
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sudo").write_text('#!/bin/sh\n[ "$1" = -n ] && shift\nexec "$@"\n')
    (bin_dir / "sudo").chmod(0o755)
    agents = tmp_path / "agents"
    data = b"PK not the agent"
    command = sudo.install_and_serve_command("0" * 12, len(data)).replace(sudo.AGENT_DIR, str(agents))
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    done = subprocess.run(["sh", "-c", command], input=data + b"one\n", capture_output=True, env=env)
    assert done.returncode != 0 and b"does not have hash" in done.stderr and done.stdout == b""
    assert not agents.exists() or not any(agents.glob("agent-*"))
