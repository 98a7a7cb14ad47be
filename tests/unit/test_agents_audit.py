"""audit: one JSON line per request, secrets redacted, never fatal."""
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from test_agents_fakes import FakeSystem, isolated  # noqa: E402,F401

from orchestrator_lib.host import audit, core, policy  # noqa: E402


def test_redaction():
    args = {"name": "mywebapp", "password": "hunter2", "api_key": "k", "Token": "t", "db": {"secret": "s", "user": "u"},
            "keyword": "kept", "ssh_private": "p", "webhook": "https://bot:pa55@hooks.example.com/x?y=1",
            "list": [{"passwd": "x"}, "plain"], "authorization": "Bearer x", "author": "rip"}
    out = audit.redact(args)
    assert out == {"name": "mywebapp", "password": "***", "api_key": "***", "Token": "***",
                   "db": {"secret": "***", "user": "u"}, "keyword": "kept", "ssh_private": "***",
                   "webhook": "https://***@hooks.example.com/***", "list": [{"passwd": "***"}, "plain"],
                   "authorization": "***", "author": "rip"}
    assert args["password"] == "hunter2"  # the request itself is untouched


SECRET_URL = "http://admin:S3cretPW@127.0.0.1:1/health?token=TOK123&field=version"


def test_free_text_redaction_of_urls_query_values_keys_and_webhooks():
    text = audit.redact_text
    assert text(f"{SECRET_URL}: [Errno 111] Connection refused") == \
        "http://***@127.0.0.1:1/health?token=***&field=version: [Errno 111] Connection refused"
    assert text("db pw=hunter3 pwd: x password=\"a b\" upward=1 keyword=k") == \
        "db pw=*** pwd: *** password=\"***\" upward=1 keyword=k"
    assert text('{"api_key": "abc", "user": "u"} Authorization: Bearer eyJ.x') == \
        '{"api_key": "***", "user": "u"} Authorization: ***'
    assert text("posted to https://hooks.example/T0/SECRETPATH.") == "posted to https://hooks.example/***."
    assert text("http://h/x?sig=1&y=2#f (http://a:p@ss@h/x)") == "http://h/x?sig=***&y=2#f (http://***@h/x)"
    assert text("mywebapp updated 4.2.5-1.el5 -> 4.2.6-3.el5; http://10.0.0.1:8080/health answered 200") == \
        "mywebapp updated 4.2.5-1.el5 -> 4.2.6-3.el5; http://10.0.0.1:8080/health answered 200"
    # a webhook argument hides its path whatever the host is called (-D notify_webhook)
    assert audit.redact({"webhook": "http://10.0.0.5:8025/T0/B1/SECRETPATH", "notify_webhook": ["https://x/y"],
                         "url": SECRET_URL}) == {
        "webhook": "http://10.0.0.5:8025/***", "notify_webhook": ["https://x/***"],
        "url": "http://***@127.0.0.1:1/health?token=***&field=version"}


def test_messages_are_redacted_in_the_host_audit_line(isolated):
    req = core.Request("health", "http", {"url": SECRET_URL, "pw": "hunter3"}, reqid="r1", caller="c")
    reply = core.Reply.failed(f"health#http failed: {SECRET_URL}: refused, pw=hunter3, "
                              "webhook https://hooks.example/T0/SECRETPATH answered 500")
    with core.use_system(FakeSystem()):
        audit.record(req, reply, policy.Identity(()))
    line = (isolated / "audit.jsonl").read_text()
    for secret in ("S3cretPW", "TOK123", "hunter3", "SECRETPATH", "admin"):
        assert secret not in line
    assert json.loads(line)["args"] == {"url": "http://***@127.0.0.1:1/health?token=***&field=version", "pw": "***"}


def test_the_central_audit_log_redacts_args_and_messages(tmp_path):
    from orchestrator_lib.controller.orchestration import HostResult, RunResult, Status
    from orchestrator_lib.controller.reporting import AuditLog
    log = AuditLog(tmp_path / "audit.jsonl")
    result = RunResult("health#http", {"web1": HostResult("web1", Status.FAILED, f"{SECRET_URL}: refused pw=hunter3")}, 0.1)
    log.record(core.Request("health", "http", {"url": SECRET_URL, "webhook": "https://hooks.example/T0/SECRETPATH"},
                            reqid="r", caller="c"), result)
    line = (tmp_path / "audit.jsonl").read_text()
    for secret in ("S3cretPW", "TOK123", "hunter3", "SECRETPATH", "admin"):
        assert secret not in line
    entry = json.loads(line)
    assert entry["message"] == "http://***@127.0.0.1:1/health?token=***&field=version: refused pw=***"
    assert entry["args"]["webhook"] == "https://hooks.example/***"


def test_record_appends_json_lines(isolated):
    fake = FakeSystem(wall=0.0, clock=1_700_000_000.0)
    req = core.Request("package", "update", {"name": "mywebapp", "token": "abc"}, reqid="r1", caller="rip@ctl")
    with core.use_system(fake):
        audit.record(req, core.Reply.done(True, "mywebapp updated\n1 -> 2"), policy.Identity(("SHA256:x",), "deploy"), 0.1234)
        audit.record(req, core.Reply.failed("boom"), policy.Identity(()))
    lines = (isolated / "audit.jsonl").read_text().splitlines()
    first, second = (json.loads(x) for x in lines)
    # the caller is the verified key; the request's own name for its sender is labelled as declared
    assert first == {"time": "2023-11-14T22:13:20.000+00:00", "event": "result", "reqid": "r1", "caller": "SHA256:x",
                     "declared_caller": "rip@ctl", "agent": "package", "action": "update",
                     "args": {"name": "mywebapp", "token": "***"}, "status": "changed", "dry_run": False,
                     "changed": True, "message": "mywebapp updated 1 -> 2", "duration": 0.123, "user": "deploy", "prev": ""}
    assert (second["status"], second["caller"], second["user"]) == ("failed", "unknown key", None)
    assert audit.verify(str(isolated / "audit.jsonl")) is None


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


def test_notify_replies_never_show_the_webhook_or_secrets_in_answers():
    from test_agents_fakes import call
    hook = "http://127.0.0.1:9/T0/B1/SECRETPATH"  # nothing listens: the error names no path
    r = call(FakeSystem(), "notify", "send", recipient="ops", message="done, token=TOK123", webhook=hook)
    shown = json.dumps(r.to_obj())
    assert r.status == "failed" and "cannot reach webhook" in r.message
    assert "SECRETPATH" not in shown and "TOK123" not in shown
    r = call(FakeSystem(), "notify", "send", recipient="ops", message="done, pw=hunter3")
    assert r.status == "ok" and "hunter3" not in json.dumps(r.to_obj()) and r.message.endswith("done, pw=***")


def test_words_that_merely_contain_key_are_not_secrets():
    assert audit.redact_text("monkey=3 hockey: 2 keyword=x") == "monkey=3 hockey: 2 keyword=x"
    assert audit.redact_text("key=v api_key=a apikey=b ssh-key: c") == "key=*** api_key=*** apikey=*** ssh-key: ***"
    assert audit.redact({"monkey": 1, "private_key": 2}) == {"monkey": 1, "private_key": "***"}


def test_the_central_log_follows_a_rotation_between_requests(tmp_path):
    """The log stays open between requests; a log moved away (logrotate) gets no more lines:
    the next request writes to a new file at the path."""
    from orchestrator_lib.controller.orchestration import HostResult, RunResult, Status
    from orchestrator_lib.controller.reporting import AuditLog
    path = tmp_path / "logs" / "audit.jsonl"
    log = AuditLog(path)

    def request(reqid):
        req = core.Request("rpcutil", "ping", {}, reqid=reqid, caller="c")
        log.check_writable()
        log.sender(req)("web1")
        log.record(req, RunResult("rpcutil#ping", {"web1": HostResult("web1", Status.OK, "pong")}, 0.1))

    request("one")
    path.rename(tmp_path / "logs" / "audit.jsonl.1")
    request("two")
    log.close()
    old = [json.loads(x) for x in (tmp_path / "logs" / "audit.jsonl.1").read_text().splitlines()]
    new = [json.loads(x) for x in path.read_text().splitlines()]
    assert [(e["reqid"], e["host"], e["status"]) for e in old] == [("one", "web1", "sent"), ("one", "web1", "ok")]
    assert [(e["reqid"], e["host"], e["status"]) for e in new] == [("two", "web1", "sent"), ("two", "web1", "ok")]
