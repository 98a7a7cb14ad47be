"""audit: one JSON line per request, secrets redacted, never fatal."""
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from test_agents_fakes import FakeSystem, isolated  # noqa: E402,F401

from orchestrator_lib.agents import audit, core, policy  # noqa: E402


def test_redaction():
    args = {"name": "mywebapp", "password": "hunter2", "api_key": "k", "Token": "t", "db": {"secret": "s", "user": "u"},
            "keyword": "kept", "ssh_private": "p", "webhook": "https://bot:pa55@hooks.example.com/x?y=1",
            "list": [{"passwd": "x"}, "plain"], "authorization": "Bearer x", "author": "rip"}
    out = audit.redact(args)
    assert out == {"name": "mywebapp", "password": "***", "api_key": "***", "Token": "***",
                   "db": {"secret": "***", "user": "u"}, "keyword": "kept", "ssh_private": "***",
                   "webhook": "https://***@hooks.example.com/x?y=1", "list": [{"passwd": "***"}, "plain"],
                   "authorization": "***", "author": "rip"}
    assert args["password"] == "hunter2"  # the request itself is untouched


def test_record_appends_json_lines(isolated):
    fake = FakeSystem(wall=0.0, clock=1_700_000_000.0)
    req = core.Request("package", "update", {"name": "mywebapp", "token": "abc"}, reqid="r1", caller="rip@ctl")
    with core.use_system(fake):
        audit.record(req, core.Reply.done(True, "mywebapp updated\n1 -> 2"), policy.Identity(("SHA256:x",)), 0.1234)
        audit.record(req, core.Reply.failed("boom"), policy.Identity(()))
    lines = (isolated / "audit.jsonl").read_text().splitlines()
    first, second = (json.loads(x) for x in lines)
    assert first == {"time": "2023-11-14T22:13:20.000+00:00", "reqid": "r1", "caller": "rip@ctl", "key": "SHA256:x",
                     "agent": "package", "action": "update", "args": {"name": "mywebapp", "token": "***"},
                     "status": "changed", "changed": True, "message": "mywebapp updated 1 -> 2", "duration": 0.123}
    assert (second["status"], second["key"]) == ("failed", "unknown key")


def test_unwritable_log_warns_but_does_not_raise(isolated, capsys):
    (isolated / "file").write_text("")
    req = core.Request("rpcutil", "ping")
    audit.record(req, core.Reply.ok(), policy.Identity(()), path=str(isolated / "file" / "audit.jsonl"))
    assert "warning: cannot write audit log" in capsys.readouterr().err


def test_env_override_for_off_host_runs(isolated, monkeypatch):
    target = isolated / "elsewhere.jsonl"
    audit.record(core.Request("rpcutil", "ping"), core.Reply.ok(), policy.Identity(()),
                 env={audit.AUDIT_ENV: str(target)})
    assert json.loads(target.read_text())["action"] == "ping"


def test_time_is_utc_iso_to_the_millisecond():
    assert audit.utc_iso(1_700_000_000.1239) == "2023-11-14T22:13:20.123+00:00"
    assert audit.utc_iso(0) == "1970-01-01T00:00:00.000+00:00"
