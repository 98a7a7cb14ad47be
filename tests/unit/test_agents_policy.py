"""policy: caller = the SSH key sshd accepted (ExposeAuthInfo); allow-lists per key; denials audited."""
import io
import json
import pathlib
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from test_agents_fakes import isolated  # noqa: E402,F401

from orchestrator_lib.host import core, policy  # noqa: E402
from orchestrator_lib.host.audit import results as audit_results  # noqa: E402

# A throwaway key generated for this test with `ssh-keygen -t ed25519`; `ssh-keygen -lf` says:
PUB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIw9H8Qhl/5JwaUOhTWToGSa8Oc5x+uCBK/8cfv52Y3/ test"
FP = "SHA256:BQr00Dj4EuEXOv5kUqRH3zcWM11liLd+Blbvfpntg9g"


def test_fingerprint_matches_ssh_keygen():
    assert policy.fingerprint(PUB.split()[1]) == FP


def test_builtin_sha256_is_sha256():
    import hashlib
    for data in (b"", b"abc", bytes(range(256)) * 100):
        assert policy.sha256(data) == hashlib.sha256(data).digest()


@pytest.mark.skipif(not shutil.which("ssh-keygen"), reason="no ssh-keygen")
def test_fingerprint_of_a_fresh_key(tmp_path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
    blob = (tmp_path / "k.pub").read_text().split()[1]
    out = subprocess.run(["ssh-keygen", "-lf", str(tmp_path / "k.pub")], capture_output=True, text=True, check=True)
    assert policy.fingerprint(blob) == out.stdout.split()[1]


def test_parse_auth_info():
    text = f"publickey {PUB.split()[0]} {PUB.split()[1]}\nkeyboard-interactive\npublickey ssh-ed25519 !!notbase64\n"
    assert policy.parse_auth_info(text) == (FP,)
    assert policy.parse_auth_info("") == ()


OTHER = "SHA256:" + "o" * 43  # another key's fingerprint (shape only)
RULES = {"default": "deny", "rules": [
    {"key": FP, "allow": ["rpcutil#*", "package#status"]},
    {"key": "*", "allow": ["rpcutil#ping"]},
    {"key": OTHER, "allow": ["*"], "deny": ["firewall#*"]},
]}


def test_decide():
    me, other, nobody = policy.Identity((FP,)), policy.Identity((OTHER,)), policy.Identity(())
    assert policy.decide(RULES, "rpcutil#facts", me)
    assert policy.decide(RULES, "package#status", me)
    assert not policy.decide(RULES, "package#update", me)
    assert policy.decide(RULES, "rpcutil#ping", nobody) and not policy.decide(RULES, "rpcutil#facts", nobody)
    assert policy.decide(RULES, "package#update", other) and not policy.decide(RULES, "firewall#block", other)
    assert policy.decide({"default": "allow", "rules": []}, "x#y", nobody)


def write_policy(tmp, obj):
    (tmp / "policy.json").write_text(obj if isinstance(obj, str) else json.dumps(obj))


def auth_file(tmp):
    f = tmp / "auth"
    f.write_text(f"publickey {PUB.split()[0]} {PUB.split()[1]}\n")
    return {"SSH_USER_AUTH": str(f)}


def test_no_policy_file_allows_all(isolated):
    assert policy.check("package", "update", policy.Identity(())) is None


def test_denied_request_fails_and_is_audited(isolated):
    write_policy(isolated, RULES)
    env = auth_file(isolated)
    reply = core.handle({"reqid": "r9", "caller": "rip@ctl", "agent": "package", "action": "update",
                         "args": {"name": "mywebapp"}}, env=env)
    assert reply.status == "failed"
    assert reply.message == f"denied by policy: package#update for {FP}"
    [line] = map(json.dumps, audit_results(str(isolated / "audit.jsonl")))
    rec = json.loads(line)
    assert (rec["reqid"], rec["caller"], rec["status"], rec["message"]) == ("r9", FP, "failed", reply.message)


def test_allowed_request_runs(isolated):
    write_policy(isolated, RULES)
    reply = core.handle({"agent": "rpcutil", "action": "ping"}, env=auth_file(isolated))
    assert reply.status == "ok" and "pong" in reply.data


def test_unknown_key_and_broken_policy_are_denied(isolated):
    write_policy(isolated, RULES)
    reply = core.handle({"agent": "rpcutil", "action": "facts"}, env={})
    assert reply.message == "denied by policy: rpcutil#facts for unknown key"
    write_policy(isolated, "{not json")
    reply = core.handle({"agent": "rpcutil", "action": "ping"}, env=auth_file(isolated))
    assert reply.status == "failed" and reply.message.startswith("denied by policy:") and "is invalid" in reply.message


def test_denial_through_main_still_exits_zero(isolated, monkeypatch):
    write_policy(isolated, RULES)
    monkeypatch.setenv("SSH_USER_AUTH", auth_file(isolated)["SSH_USER_AUTH"])
    out = io.StringIO()
    rc = core.main(io.StringIO(json.dumps({"agent": "package", "action": "remove", "args": {"name": "x"}})), out)
    assert rc == 0 and json.loads(out.getvalue())["message"].startswith("denied by policy: package#remove")


# ---- aliases: the policy decides on the action, not on the name it was asked by ----------------
ALIASES = [("health", "command", "runcommand"), ("package", "remove", "purge"),
           ("package", "remove", "uninstall"), ("appmgr", "deploy", "upgrade"), ("notify", "send", "sendmsg")]


@pytest.mark.parametrize("agent, canonical, alias", ALIASES)
def test_a_deny_on_an_action_also_denies_its_aliases(isolated, agent, canonical, alias):
    write_policy(isolated, {"default": "allow", "rules": [{"key": "*", "deny": [f"{agent}#{canonical}"]}]})
    reply = core.handle({"agent": agent, "action": alias, "args": {}}, env=auth_file(isolated))
    assert reply.status == "failed"
    assert reply.message == f"denied by policy: {agent}#{alias} (alias of {agent}#{canonical}) for {FP}"
    rec = audit_results(str(isolated / "audit.jsonl"))[-1]
    assert (rec["action"], rec["status"]) == (alias, "failed") and rec["message"] == reply.message


@pytest.mark.parametrize("agent, canonical, alias", ALIASES)
def test_a_deny_on_an_alias_also_denies_the_action(isolated, agent, canonical, alias):
    write_policy(isolated, {"default": "allow", "rules": [{"key": "*", "deny": [f"{agent}#{alias}"]}]})
    reply = core.handle({"agent": agent, "action": canonical, "args": {}}, env=auth_file(isolated))
    assert reply.status == "failed" and reply.message == f"denied by policy: {agent}#{canonical} for {FP}"


def test_an_allow_list_without_the_action_denies_its_aliases(isolated):
    write_policy(isolated, {"default": "deny", "rules": [{"key": FP, "allow": ["health#load", "package#status"]}]})
    for agent, action in (("health", "runcommand"), ("health", "command"), ("package", "purge")):
        reply = core.handle({"agent": agent, "action": action, "args": {"command": "id", "name": "x"}},
                            env=auth_file(isolated))
        assert reply.status == "failed" and reply.message.startswith(f"denied by policy: {agent}#{action}")


def test_action_names_resolve_aliases():
    assert policy.action_names("health", "runcommand") == ("command", "runcommand")
    assert policy.action_names("package", "purge") == ("remove", "uninstall", "purge")
    assert policy.action_names("package", "status") == ("status",)
    assert policy.action_names("package", "nosuch") == ("nosuch",)
    assert policy.action_names("nosuch", "x") == ("x",)
    assert policy.action_names("../core", "x") == ("x",)


# ---- fail closed: only a missing policy means "no policy" --------------------------------------
def denied_everything(isolated, why):
    for agent, action in (("rpcutil", "ping"), ("package", "update")):
        reply = core.handle({"agent": agent, "action": action, "args": {"name": "x"}}, env=auth_file(isolated))
        assert reply.status == "failed", reply.message
        assert reply.message.startswith(f"denied by policy: {isolated / 'policy.json'} is invalid"), reply.message
        assert why in reply.message, reply.message


def test_a_directory_as_policy_denies_everything(isolated):
    (isolated / "policy.json").mkdir()
    denied_everything(isolated, "it is a directory")


def test_an_unreadable_policy_denies_everything(isolated, monkeypatch):
    write_policy(isolated, {"default": "allow"})
    real_open = policy.os.open

    def no_permission(path, *a, **kw):  # what a non-root agent meets on a 0600 root policy
        if str(path) == str(isolated / "policy.json"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *a, **kw)

    monkeypatch.setattr(policy.os, "open", no_permission)
    denied_everything(isolated, "Permission denied")


@pytest.mark.skipif(not hasattr(__import__("os"), "geteuid") or __import__("os").geteuid() != 0, reason="needs root")
def test_a_root_only_policy_read_by_a_non_root_agent_denies_everything(tmp_path):
    """The real thing: a 0600 policy owned by root, an agent running as nobody."""
    import os
    pol = tmp_path / "policy.json"
    pol.write_text(json.dumps({"default": "allow"}))
    pol.chmod(0o600)
    tmp_path.chmod(0o755)
    root = str(pathlib.Path(policy.__file__).resolve().parents[2])
    probe = ("import io, json, sys; sys.path.insert(0, sys.argv[1]); "
             "from orchestrator_lib.host import policy; "
             "print(policy.check('rpcutil', 'ping', policy.Identity(()), path=sys.argv[2]))")
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    try:
        p = subprocess.run([python, "-S", "-E", "-c", probe, root, str(pol)], capture_output=True, text=True,
                           timeout=60, user=65534, group=65534, env={"PATH": "/usr/bin:/bin"})
    except PermissionError:
        pytest.skip(f"{python} cannot be run by nobody")
    if p.returncode != 0 and "No module named 'orchestrator_lib'" in p.stderr:
        pytest.skip(f"the checkout cannot be read by nobody: {p.stderr.strip().splitlines()[-1:]}")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(f"denied by policy: {pol} is invalid") and "Permission denied" in p.stdout
    assert os.stat(pol).st_mode & 0o777 == 0o600


def test_a_policy_writable_by_others_denies_everything(isolated):
    write_policy(isolated, {"default": "allow"})
    (isolated / "policy.json").chmod(0o666)
    denied_everything(isolated, "writable by group or others")


def test_a_symlink_as_policy_denies_everything_wherever_it_points(isolated):
    """Issue 12: symlinks were followed (a dangling one was 'no policy', i.e. allow all)."""
    (isolated / "policy.json").symlink_to(isolated / "nowhere.json")
    denied_everything(isolated, "symbolic link")
    (isolated / "policy.json").unlink()
    (isolated / "real.json").write_text(json.dumps({"default": "allow"}))
    (isolated / "policy.json").symlink_to(isolated / "real.json")
    denied_everything(isolated, "symbolic link")


MALFORMED = [
    ({"default": "deny", "rules": [{"key": FP, "allow": "rpcutil#*"}]}, "rules[0].allow: expected a list"),
    ({"default": "deny", "rules": [{"key": FP, "allow": ["rpcutil#*"], "deny": "firewall#*"}]},
     "rules[0].deny: expected a list"),
    ({"default": "deny", "rules": {"key": FP, "allow": ["*"]}}, "'rules' must be a list"),
    ({"default": "deny", "rules": ["*"]}, "rules[0]: expected an object"),
    ({"default": "deny", "rules": [{"allow": ["*"]}]}, "rules[0].key"),
    ({"default": "deny", "rules": [{"key": ["*"], "allow": ["*"]}]}, "rules[0].key"),
    ({"default": "deny", "rules": [{"key": "SHA256:short", "allow": ["*"]}]}, "rules[0].key"),
    ({"default": "deny", "rules": [{"key": FP, "allow": [["rpcutil#*"]]}]}, "is not an \"agent#action\" pattern"),
    ({"default": "deny", "rules": [{"key": FP, "allow": ["rpcutil"]}]}, "is not an \"agent#action\" pattern"),
    ({"default": "deny", "rules": [{"key": FP, "allow": [""]}]}, "is not an \"agent#action\" pattern"),
    ({"default": "deny", "rules": [{"key": FP, "alow": ["*"]}]}, "unknown field 'alow'"),
    ({"default": "Allow", "rules": []}, "'default' must be"),
    ({"default": True, "rules": []}, "'default' must be"),
    ({"defualt": "allow", "rules": []}, "unknown field 'defualt'"),
    (["rpcutil#*"], "expected a JSON object"),
    ("null", "expected a JSON object"),
    ("{not json", "not JSON"),
]


@pytest.mark.parametrize("text, why", MALFORMED)
def test_a_malformed_policy_denies_everything(isolated, text, why):
    write_policy(isolated, text)
    denied_everything(isolated, why)


def test_a_string_allow_is_never_iterated_per_character():
    """`"allow": "rpcutil#*"` holds the character "*", which as a pattern matches everything."""
    with pytest.raises(policy.PolicyError):
        policy.validate({"rules": [{"key": FP, "allow": "rpcutil#*"}]})


def test_a_valid_policy_passes_validation():
    assert policy.validate(RULES) is RULES
    assert policy.validate({"default": "allow", "rules": [], "comment": "x"})
    assert policy.validate({"rules": [{"key": "*", "allow": ["*", "health#load", "rpcutil#*"], "deny": ["rpc?til#[a-z]*"]}]})


# ---- the environment of a run on a host --------------------------------------------------------
@pytest.fixture
def on_a_host(monkeypatch):
    """As if this were the agent rpc installed under /var/lib/orchestrator on a host."""
    monkeypatch.setattr(policy, "__file__", "/var/lib/orchestrator/agent-0123456789ab/orchestrator_lib/host/policy.py")
    assert policy.host_run()


def test_only_the_installed_agent_is_a_host_run():
    assert not policy.host_run()  # this checkout


def test_a_host_run_ignores_the_audit_log_override(isolated, on_a_host):
    write_policy(isolated, {"default": "allow"})
    elsewhere = isolated / "elsewhere.jsonl"
    env = {**auth_file(isolated), "ORCHESTRATOR_AUDIT_LOG": str(elsewhere)}
    assert core.handle({"reqid": "h1", "agent": "rpcutil", "action": "ping"}, env=env).status == "ok"
    assert not elsewhere.exists()
    assert audit_results(str(isolated / "audit.jsonl"))[0]["reqid"] == "h1"   # audit.AUDIT_PATH


def test_an_off_host_run_honours_the_audit_log_override(isolated):
    elsewhere = isolated / "elsewhere.jsonl"
    core.handle({"reqid": "o1", "agent": "rpcutil", "action": "ping"}, env={"ORCHESTRATOR_AUDIT_LOG": str(elsewhere)})
    assert audit_results(str(elsewhere))[0]["reqid"] == "o1"


def test_root_can_enable_the_overrides_on_a_host_with_a_root_owned_file(isolated, on_a_host, monkeypatch):
    import os
    flag = isolated / "allow-env-overrides"
    monkeypatch.setattr(policy, "ENV_OVERRIDES_FLAG", str(flag))
    env = {"ORCHESTRATOR_AUDIT_LOG": "/x/audit.jsonl"}
    assert "ORCHESTRATOR_AUDIT_LOG" not in policy.trusted_env(env)
    flag.write_text("")
    flag.chmod(0o644)
    if os.geteuid() == 0:
        assert policy.trusted_env(env)["ORCHESTRATOR_AUDIT_LOG"] == "/x/audit.jsonl"
    flag.chmod(0o666)  # writable by others: not root's word
    assert "ORCHESTRATOR_AUDIT_LOG" not in policy.trusted_env(env)
    flag.unlink()
    flag.symlink_to(isolated / "policy.json")
    assert "ORCHESTRATOR_AUDIT_LOG" not in policy.trusted_env(env)


def test_on_a_host_only_an_auth_file_like_sshds_identifies_the_caller(isolated, on_a_host):
    env = auth_file(isolated)
    auth = pathlib.Path(env["SSH_USER_AUTH"])
    auth.chmod(0o600)
    assert policy.identify(env).fingerprints == (FP,)
    auth.chmod(0o666)  # anyone could have written it
    assert policy.identify(env).fingerprints == ()
    auth.chmod(0o600)
    link = isolated / "link"
    link.symlink_to(auth)
    assert policy.identify({"SSH_USER_AUTH": str(link)}).fingerprints == ()
    assert policy.identify({"SSH_USER_AUTH": str(isolated / "missing")}).fingerprints == ()
    assert policy.identify({}).fingerprints == ()


def test_under_sudo_the_login_user_is_the_sudo_caller(monkeypatch):
    """sudo sets SUDO_USER/SUDO_UID itself; the agent, running as root, records that user."""
    monkeypatch.setattr(policy.os, "geteuid", lambda: 0)
    assert policy.login_user({"SUDO_UID": "1001", "SUDO_USER": "deploy"}) == ("deploy", 1001)
    assert policy.identify({"SUDO_UID": "1001", "SUDO_USER": "deploy"}).user == "deploy"
    monkeypatch.setattr(policy.os, "geteuid", lambda: 1001)   # not root: SUDO_* are only words
    assert policy.login_user({"SUDO_UID": "0", "SUDO_USER": "root"})[1] == 1001
