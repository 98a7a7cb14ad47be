"""Issue 12, host side: unconfigured policy denies, allows name canonical actions, the policy file
is trusted only when root-owned, not a link and strict JSON; the audit log is written before and
after, refuses to act unwritten, names the verified key, and stays strict JSON; the serve loop
bounds lines and splits at \\n only. Each test reproduces a finding on the code before the fix."""
import io
import json
import os
import pathlib
import sys

import pytest
from hypothesis import given, strategies as st

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from fuzzing import FUZZ  # noqa: E402
from test_agents_fakes import isolated  # noqa: E402,F401
from test_agents_policy import FP, auth_file, write_policy  # noqa: E402

from orchestrator_lib.host import audit, core, policy  # noqa: E402


@pytest.fixture
def on_a_host(monkeypatch):
    monkeypatch.setattr(policy, "__file__", "/var/lib/orchestrator/agent-0123456789ab/orchestrator_lib/host/policy.py")


@pytest.fixture
def ran(monkeypatch):
    """Replace health#command (sh -c as root) by a recorder: what reached the action."""
    calls = []
    health = core.load_agent("health")
    monkeypatch.setitem(health.actions, "command", lambda req: calls.append(req.args) or core.Reply.ok("ran"))
    monkeypatch.setitem(health.actions, "runcommand", health.actions["command"])
    return calls


def lines(isolated):
    return [json.loads(x) for x in (isolated / "audit.jsonl").read_text().splitlines()]


def request(action="command", **kw):
    return {"reqid": "q1", "caller": "auditor@ctl", "agent": "health", "action": action,
            "args": {"command": "id"}, **kw}


# ---- the policy ---------------------------------------------------------------------------------
def test_with_no_policy_file_a_host_denies_everything_and_audits_the_refusal(isolated, on_a_host, ran):
    reply = core.handle(request(), env=auth_file(isolated))
    assert reply.status == "failed" and "no policy" in reply.message and ran == []
    assert [(x["event"], x.get("status")) for x in lines(isolated)] == [("result", "failed")]  # nothing ran: one line


def test_the_documented_opt_out_allows_everything(isolated, on_a_host, ran):
    write_policy(isolated, {"default": "allow"})
    assert core.handle(request(), env=auth_file(isolated)).status == "ok" and ran == [{"command": "id"}]


@pytest.mark.parametrize("allow", [["package#u*"], ["health#c*"], ["package#uninstall"], ["rpc?til#*"], ["*#*"]])
def test_an_allow_must_name_a_canonical_action_or_the_policy_denies_everything(isolated, ran, allow):
    write_policy(isolated, {"default": "deny", "rules": [{"key": FP, "allow": allow}]})
    reply = core.handle(request(), env=auth_file(isolated))
    assert reply.status == "failed" and "is invalid" in reply.message and ran == []


def test_an_allow_of_update_does_not_reach_remove_through_an_alias(isolated):
    pol = {"default": "deny", "rules": [{"key": FP, "allow": ["package#update"]}]}
    assert policy.validate(pol)
    me = policy.Identity((FP,))
    for alias in ("remove", "uninstall", "purge"):
        labels = tuple(f"package#{n}" for n in policy.action_names("package", alias))
        assert not policy.decide(pol, labels, me)
    assert policy.decide(pol, ("package#update",), me)


@pytest.mark.parametrize("text", [
    '{"default": "deny", "default": "allow"}',                                    # last-wins duplicate
    '{"default": "allow", "rules": [{"key": "*", "deny": ["health#*\\n"]}]}',      # a newline cancelled the deny
    '{"default": "allow", "rules": [{"key": "*", "allow": ["*"], "deny": ["health#*"], "deny": []}]}',
    '{"default": "allow", "x": NaN}',
    '{"default": "allow", "rules": [{"key": "' + FP + '\\n", "allow": ["*"]}]}',
])
def test_policy_json_is_strict(isolated, ran, text):
    write_policy(isolated, text)
    reply = core.handle(request(), env=auth_file(isolated))
    assert reply.status == "failed" and "is invalid" in reply.message and ran == []


def test_a_policy_not_owned_by_root_or_in_a_writable_directory_denies_on_a_host(isolated, on_a_host, ran):
    write_policy(isolated, {"default": "allow"})
    os.chown(isolated / "policy.json", 1234, 1234)
    assert "not root" in core.handle(request(), env=auth_file(isolated)).message
    os.chown(isolated / "policy.json", 0, 0)
    isolated.chmod(0o777)
    try:
        assert "its directory" in core.handle(request(), env=auth_file(isolated)).message
    finally:
        isolated.chmod(0o700)
    assert ran == []


# ---- the audit log ------------------------------------------------------------------------------
def test_a_received_line_is_on_disk_before_an_action_that_may_change_the_host_runs(isolated, monkeypatch):
    write_policy(isolated, {"default": "allow"})
    seen = []
    health = core.load_agent("health")
    monkeypatch.setitem(health.actions, "command", lambda req: seen.append(lines(isolated)) or core.Reply.ok("ran"))
    core.handle({"reqid": "k1", "agent": "health", "action": "command", "args": {"command": "id"}},
                env=auth_file(isolated))
    assert [x["event"] for x in seen[0]] == ["received"] and seen[0][0]["reqid"] == "k1"
    assert [x["event"] for x in lines(isolated)] == ["received", "result"]
    assert lines(isolated)[1]["args"] == {"command": "id"} and lines(isolated)[1]["caller"] == FP


def test_a_read_only_action_leaves_one_line_written_before_its_reply(isolated, monkeypatch):
    write_policy(isolated, {"default": "allow"})
    reply = core.handle({"reqid": "k2", "agent": "rpcutil", "action": "ping"}, env=auth_file(isolated))
    assert reply.status == "ok"
    assert [(x["event"], x["reqid"], x["status"]) for x in lines(isolated)] == [("result", "k2", "ok")]
    dry = core.handle({"reqid": "k3", "agent": "health", "action": "command", "args": {"command": "id"},
                       "dry_run": True}, env=auth_file(isolated))
    assert dry.status != "failed"
    assert [x["event"] for x in lines(isolated)[1:]] == ["received", "result"]  # a dry run relies on the action


def test_a_read_only_reply_whose_line_cannot_be_written_is_refused(isolated, monkeypatch):
    write_policy(isolated, {"default": "allow"})
    monkeypatch.setattr(audit, "AUDIT_PATH", str(isolated / "file" / "audit.jsonl"))
    (isolated / "file").write_text("")  # a file where the log's directory should be
    reply = core.handle({"reqid": "k4", "agent": "rpcutil", "action": "facts"}, env=auth_file(isolated))
    assert reply.status == "failed" and reply.message.startswith("refused: cannot write audit log") and not reply.data


def test_an_unwritable_audit_log_refuses_the_request(isolated, ran, monkeypatch):
    write_policy(isolated, {"default": "allow"})
    monkeypatch.setattr(audit, "AUDIT_PATH", str(isolated / "file" / "audit.jsonl"))
    (isolated / "file").write_text("")  # a file where the log's directory should be
    reply = core.handle(request(), env=auth_file(isolated))
    assert reply.status == "failed" and reply.message.startswith("refused: cannot write audit log") and ran == []
    write_policy(isolated, {"default": "allow", "audit": "best-effort"})  # the configurable opt-out
    assert core.handle(request(), env=auth_file(isolated)).status == "ok" and ran == [{"command": "id"}]


def test_the_caller_is_the_verified_key_and_the_declared_name_is_labelled(isolated):
    write_policy(isolated, {"default": "allow"})
    core.handle({"reqid": "f1", "caller": "root@trusted-controller", "agent": "rpcutil", "action": "ping"},
                env=auth_file(isolated))
    result = lines(isolated)[-1]
    assert (result["caller"], result["declared_caller"]) == (FP, "root@trusted-controller")


def test_non_finite_numbers_never_reach_the_log_and_protocol_errors_are_audited(isolated, monkeypatch):
    write_policy(isolated, {"default": "allow"})
    core.handle({"reqid": "n1", "agent": "rpcutil", "action": "ping", "args": {"x": float("nan"), "y": float("inf")}},
                env=auth_file(isolated))
    reply, rc = core.respond('{"reqid": "n2", "agent": "rpcutil", "action": "ping", "args": {"x": NaN}}',
                             env=auth_file(isolated))
    assert rc == 2 and "NaN" in reply["message"]
    strict = [json.loads(x, parse_constant=lambda c: pytest.fail(f"{c} in the audit log"))
              for x in (isolated / "audit.jsonl").read_text().splitlines()]
    assert strict[-1]["event"] == "rejected" and "NaN" in strict[-1]["message"]
    assert strict[0]["args"] == {"x": "nan", "y": "inf"}


def test_the_log_is_hash_chained_so_an_edit_is_found(isolated):
    write_policy(isolated, {"default": "allow"})
    for n in range(3):
        core.handle({"reqid": f"c{n}", "agent": "rpcutil", "action": "ping"}, env=auth_file(isolated))
    path = isolated / "audit.jsonl"
    assert audit.verify(str(path)) is None
    text = path.read_text().splitlines()
    assert len(text) == 3  # rpcutil#ping is read-only: one line each
    text[1] = text[1].replace('"c1"', '"c9"')
    path.write_text("\n".join(text) + "\n")
    assert audit.verify(str(path)) == 3


# ---- the serve loop -----------------------------------------------------------------------------
def serve(text):
    out = io.StringIO()
    assert core.serve(io.StringIO(text, newline="\n"), out) == 0
    return [json.loads(x) for x in out.getvalue().splitlines()]


def test_an_over_long_line_is_refused_whole_and_the_next_request_still_served(isolated):
    write_policy(isolated, {"default": "allow"})
    huge = json.dumps({"agent": "rpcutil", "action": "ping", "args": {"x": "a" * (10 << 20)}})
    replies = serve(huge + "\n" + json.dumps({"agent": "rpcutil", "action": "ping"}) + "\n")
    assert [r["status"] for r in replies] == ["failed", "ok"]
    assert "longer than" in replies[0]["message"]


def test_a_bare_cr_does_not_split_a_request_in_two(isolated):
    write_policy(isolated, {"default": "allow"})
    ping = json.dumps({"agent": "rpcutil", "action": "ping"})
    assert len(serve(ping + "\r" + ping + "\n")) == 1


@FUZZ
@given(st.lists(st.one_of(
    st.sampled_from(['{"agent": "rpcutil", "action": "ping"}', '{"agent": "health", "action": "load"}', "{", "}",
                     "[", "NaN", '"x"', "null", '{"agent": 1}', '{"agent": "rpcutil", "action": "ping", "args": []}',
                     '{"agent": "rpcutil", "action": "ping", "time": "x"}', "\r", "\n", "\x00", "\u2028", "é",
                     '{"probe": "serve mode?"}', '{"agent": "nosuch", "action": "x"}']),
    st.text(max_size=20)), max_size=12))
def test_fuzz_serve_loop_answers_each_line_with_one_json_reply(tmp_path_factory, monkeypatch, parts):
    tmp = tmp_path_factory.mktemp("serve")
    monkeypatch.setattr(audit, "AUDIT_PATH", str(tmp / "audit.jsonl"))
    monkeypatch.setattr(policy, "POLICY_PATH", str(tmp / "policy.json"))
    monkeypatch.delenv(audit.AUDIT_ENV, raising=False)
    text = "".join(parts)
    expected = sum(1 for line in text.split("\n") if line.strip())
    replies = serve(text)
    assert len(replies) == expected
    assert all(r["status"] in ("ok", "failed") for r in replies)


@FUZZ
@given(st.recursive(st.one_of(st.none(), st.booleans(), st.floats(), st.integers(), st.text(max_size=10)),
                    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner,
                                                                                         max_size=3)), max_leaves=10),
       st.sampled_from(["agent", "action", "args", "facts", "reqid", "caller", "dry_run", "time", "ttl"]))
def test_fuzz_request_parser_refuses_or_answers_never_crashes(tmp_path_factory, monkeypatch, value, field):
    tmp = tmp_path_factory.mktemp("req")
    monkeypatch.setattr(audit, "AUDIT_PATH", str(tmp / "audit.jsonl"))
    monkeypatch.setattr(policy, "POLICY_PATH", str(tmp / "policy.json"))
    monkeypatch.delenv(audit.AUDIT_ENV, raising=False)
    obj = {"agent": "rpcutil", "action": "ping", field: value}
    reply, rc = core.respond(json.dumps(obj))
    assert rc in (0, 2), reply
    for line in (tmp / "audit.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=lambda c: pytest.fail(c))
