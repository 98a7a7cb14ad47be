"""The lab's orchestrator-gate (the auditor key's forced command): it lets through exactly the agent
invocations rpc sends and refuses everything else. Checked with `--check`, which never runs anything,
against rpc's own command strings, so a change of rpc's command line fails here first."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess

import pytest

from orchestrator_lib.controller.transports import ssh_agent as rpc
from orchestrator_lib.host.build import agent_archive
from orchestrator_lib.lab import estate

GATE = estate.FILES / "orchestrator-gate"
SHA = agent_archive()[1]
SH = shutil.which("sh") or "/bin/sh"


def gate(command: str | None, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin"}
    if command is not None:
        env["SSH_ORIGINAL_COMMAND"] = command
    return subprocess.run([SH, str(GATE), *args], env=env, capture_output=True, text=True, timeout=30)


def test_rpcs_agent_invocations_pass():
    assert gate(rpc.agent_command(SHA), "--check").stdout == "one-shot\n"
    assert gate(rpc.serve_command(SHA), "--check").stdout == "serve\n"
    assert gate(rpc.agent_command("0123456789ab"), "--check").returncode == 0
    assert gate(rpc.agent_command(SHA, "sudo"), "--check").stdout == "one-shot sudo\n"
    assert gate(rpc.serve_command(SHA, "sudo"), "--check").stdout == "serve sudo\n"


def test_the_sudo_installer_is_refused_like_any_install():
    from orchestrator_lib.controller.transports import sudo
    for command in (sudo.install_command(SHA), sudo.install_and_serve_command(SHA, 81533)):
        done = gate(command, "--check")
        assert done.returncode == 99 and "refused installing the agent" in done.stderr


def test_a_missing_agent_exits_111_as_the_original_command_would():
    sha = "0" * 12
    assert not os.path.exists(f"{rpc.agent_path(sha)}/__main__.py")
    for command in (rpc.agent_command(sha), rpc.serve_command(sha)):
        done = gate(command)
        assert done.returncode == rpc.MISSING_RC == 111 and done.stdout == done.stderr == ""


INSTALL = rpc.install_command(SHA)
REFUSED = [
    (None, "an interactive shell"),
    ("", "an empty command"),
    ("internal-sftp", "sftp"),
    ("/usr/lib/openssh/sftp-server", "sftp"),
    ("sh", "this command"),
    ("id", "this command"),
    (f"mkdir -p {rpc.AGENT_DIR}", "installing the agent"),          # the install steps: the deployer's job
    (INSTALL, "installing the agent"),
    (rpc.install_command(SHA, serve=True), "installing the agent"),
    (f"{rpc.PYTHON} {rpc.PYTHON_FLAGS} - /var/lib/orchestrator/agent-{SHA}.tmp-1.pyz /x /y", "installing the agent"),
    (f"mkdir -p {rpc.AGENT_DIR}; id", "this command"),
    (rpc.agent_command(SHA) + "; id", "this command"),
    (rpc.agent_command(SHA) + " --serve; id", "this command"),
    (rpc.agent_command(SHA) + " --serve --serve", "this command"),
    (rpc.agent_command(SHA) + " ", "this command"),
    (rpc.agent_command(SHA) + "\nid", "this command"),
    (rpc.agent_command(SHA) + " $(id)", "this command"),
    (rpc.agent_command(SHA).replace(" -S -E", ""), "this command"),
    (rpc.agent_command(SHA).replace("-S -E", "-S -E -c 'import os'"), "this command"),
    (rpc.agent_command(SHA.upper() if SHA.upper() != SHA else "ABCDEF012345"), "this command"),
    (rpc.agent_command(SHA[:11]), "this command"),
    (rpc.agent_command(SHA + "0"), "this command"),
    (rpc.agent_command("../../../tmp"), "this command"),
    (rpc.agent_command(SHA).replace(f"agent-{SHA}/__main__.py", "agent-ffffffffffff/__main__.py", 1), "this command"),
    (rpc.agent_command(SHA).replace("/usr/bin/python3", "/tmp/python3"), "this command"),
]


@pytest.mark.parametrize("command, what", REFUSED)
def test_anything_else_is_refused_in_one_line(command, what):
    for args in ((), ("--check",)):
        done = gate(command, *args)
        assert done.returncode == estate.GATE_REFUSED == 99, (command, done)
        assert done.stdout == ""
        assert done.stderr.count("\n") == 1 and done.stderr.startswith(f"orchestrator-gate: refused {what}")


def test_the_gate_is_posix_sh():
    dash = shutil.which("dash")
    if not dash:
        pytest.skip("no dash")
    done = subprocess.run([dash, "-n", str(GATE)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    done = subprocess.run([dash, str(GATE), "--check"], env={"SSH_ORIGINAL_COMMAND": rpc.serve_command(SHA)},
                          capture_output=True, text=True)
    assert done.stdout == "serve\n"


def test_the_auditor_key_is_restricted_to_the_gate_and_may_read_status_only(tmp_path):
    from orchestrator_lib.host import policy
    from orchestrator_lib.controller.inventory import load_inventory
    env = tmp_path / "e.yaml"
    env.write_text("name: t\nknown_hosts: s/known_hosts\ndefaults: {key: s/id}\nlab: {}\n"
                   "hosts:\n  a: {address: 10.231.0.11, lab: {role: web}}\n")
    lab = estate.Lab.__new__(estate.Lab)
    inv = load_inventory(env)
    lab.inventory, lab.state_dir, lab.client_key = inv, tmp_path / "s", tmp_path / "s" / "id"
    deployer = estate._write_ssh_key(lab.client_key, "deployer@t")
    auditor = estate._write_ssh_key(lab.auditor_key, "auditor@t")
    lines = lab._authorized_keys().read_text().splitlines()
    assert lines == [f"{deployer} deployer@t", f'restrict,command="{estate.GATE}" {auditor} auditor@t']
    rules = {r["key"]: r for r in __import__("json").loads(lab._policy().read_text())["rules"]}
    audit_rule = rules[policy.fingerprint(auditor.split()[1])]
    policy.validate({"rules": list(rules.values())})
    me = policy.Identity((audit_rule["key"],))
    pol = {"default": "deny", "rules": list(rules.values())}
    for label in ("rpcutil#ping", "rpcutil#facts", "package#status", "service#status", "firewall#status",
                  "haproxy#status", "health#load"):
        assert policy.decide(pol, label, me), label
    for agent, action in (("health", "command"), ("health", "runcommand"), ("health", "http"),
                          ("package", "update"), ("package", "purge"), ("appmgr", "upgrade"),
                          ("notify", "sendmsg"), ("firewall", "block"), ("service", "restart"),
                          ("haproxy", "disable")):
        labels = tuple(f"{agent}#{n}" for n in policy.action_names(agent, action))
        assert not policy.decide(pol, labels, me), (agent, action)


# ---- issue 12: only the agent root installed last runs; an install removes the older ones ----------
def pinned_gate(tmp_path, pin: str | None, shas=("aaaaaaaaaaaa", "bbbbbbbbbbbb")):
    """The gate with its directory moved to tmp_path (a copy: the real one names /var/lib)."""
    home = tmp_path / "lib"
    for sha in shas:
        (home / f"agent-{sha}").mkdir(parents=True)
        (home / f"agent-{sha}" / "__main__.py").write_text(f"print('ran {sha}')\n")
    if pin is not None:
        (home / "current").write_text(pin + "\n")
    script = tmp_path / "gate"
    script.write_text(GATE.read_text().replace("DIR=/var/lib/orchestrator", f"DIR={home}"))

    def run(sha: str) -> subprocess.CompletedProcess:
        command = rpc.agent_command(sha).replace(rpc.AGENT_DIR, str(home))
        return subprocess.run([SH, str(script)], env={"PATH": "/usr/bin:/bin", "SSH_ORIGINAL_COMMAND": command},
                              capture_output=True, text=True, timeout=30)
    return home, run


def test_the_gate_runs_only_the_pinned_agent(tmp_path):
    home, run = pinned_gate(tmp_path, "bbbbbbbbbbbb")
    assert run("bbbbbbbbbbbb").stdout == "ran bbbbbbbbbbbb\n"
    older = run("aaaaaaaaaaaa")  # still on disk (as before the fix: it would run)
    assert older.returncode == 99
    assert "installed agent-bbbbbbbbbbbb last" in older.stderr and older.stdout == ""


def test_without_a_pin_or_with_a_linked_pin_nothing_runs(tmp_path):
    home, run = pinned_gate(tmp_path, None)
    assert run("bbbbbbbbbbbb").returncode == rpc.MISSING_RC and run("bbbbbbbbbbbb").stdout == ""
    (home / "elsewhere").write_text("bbbbbbbbbbbb\n")
    (home / "current").symlink_to(home / "elsewhere")
    assert run("bbbbbbbbbbbb").returncode == rpc.MISSING_RC


def test_an_install_pins_the_new_agent_and_removes_the_older_ones(tmp_path):
    import io
    import zipfile
    home = tmp_path / "lib"
    for old in ("aaaaaaaaaaaa", "cccccccccccc"):
        (home / f"agent-{old}").mkdir(parents=True)
    (home / "agent-dddddddddddd.tmp-1234").mkdir()  # another caller's install in progress: kept
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("__main__.py", "print('new')\n")
    new = hashlib.sha256(buf.getvalue()).hexdigest()[:12]
    subprocess.run(["python3", "-S", "-E", "-c", rpc.INSTALL_SCRIPT, str(home), new],
                   input=rpc.install_input(buf.getvalue()), check=True, timeout=60)
    assert (home / "current").read_text() == new + "\n"
    assert {p.name for p in home.iterdir()} == {f"agent-{new}", "agent-dddddddddddd.tmp-1234", "current"}


@pytest.mark.parametrize("entry, message", [
    ("{role: web, service_manager: upstart}", "hosts.a.lab.service_manager: expected one of runit, systemd"),
    ("{role: rpm, service_manager: systemd}", "hosts.a.lab.service_manager: systemd hosts are web hosts"),
])
def test_a_host_s_service_manager_is_checked_before_the_lab_starts(tmp_path, entry, message):
    from orchestrator_lib.controller.errors import LabError
    from orchestrator_lib.controller.inventory import load_inventory
    env = tmp_path / "e.yaml"
    env.write_text("name: t\nknown_hosts: s/known_hosts\ndefaults: {key: s/id}\nlab: {state_dir: s}\n"
                   f"hosts:\n  a: {{address: 10.231.0.11, lab: {entry}}}\n")
    with pytest.raises(LabError) as raised:
        estate.Lab(load_inventory(env))
    assert message in str(raised.value) and str(env) in str(raised.value)
