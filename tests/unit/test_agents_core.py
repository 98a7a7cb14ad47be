"""core: the protocol (exit codes, reply shape), argument coercion, dispatch, and rpcutil/notify."""
import io
import json
import pathlib
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from test_agents_fakes import DEBIAN_OS_RELEASE, FakeSystem, call, isolated  # noqa: E402,F401

from orchestrator_lib import protocol  # noqa: E402
from orchestrator_lib.host import core  # noqa: E402
from orchestrator_lib.host.audit import results as audit_results  # noqa: E402

ALL_AGENTS = ["appmgr", "firewall", "haproxy", "health", "lease", "nats", "notify", "package", "rpcutil", "service"]


def run_main(text: str) -> tuple[int, dict]:
    out = io.StringIO()
    rc = core.main(io.StringIO(text), out)
    return rc, json.loads(out.getvalue())


def test_protocol_errors_exit_non_zero(isolated):
    rc, reply = run_main("not json")
    assert rc == 2 and reply["status"] == "failed" and reply["message"].startswith("protocol error: request is not JSON")
    rc, reply = run_main(json.dumps({"agent": "rpcutil"}))
    assert rc == 2 and "'action'" in reply["message"]
    rc, reply = run_main(json.dumps({"agent": "rpcutil", "action": "ping", "args": []}))
    assert rc == 2


def test_failed_action_exits_zero_with_reply_shape(isolated):
    rc, reply = run_main(json.dumps({"agent": "nosuch", "action": "x"}))
    assert rc == 0
    assert set(reply) == {"status", "changed", "message", "data", "before", "after"}
    assert reply["status"] == "failed" and reply["message"].startswith("unknown agent 'nosuch' (this host has: appmgr,")
    rc, reply = run_main(json.dumps({"agent": "rpcutil", "action": "reboot"}))
    assert rc == 0 and reply["message"] == "unknown action rpcutil#reboot (known: agents, facts, ping)"
    for bad in ("core", "audit", "policy", "build", "__main__", "../etc", "Package"):
        assert core.load_agent(bad) is None


def test_ping_through_main_is_audited(isolated):
    rc, reply = run_main(json.dumps({"reqid": "abc", "caller": "rip@ctl", "agent": "rpcutil", "action": "ping"}))
    assert rc == 0 and reply["status"] == "ok" and reply["changed"] is False and reply["data"]["pong"] > 0
    [rec] = audit_results(str(isolated / "audit.jsonl"))
    assert (rec["reqid"], rec["declared_caller"], rec["agent"], rec["action"], rec["status"]) == ("abc", "rip@ctl", "rpcutil", "ping", "ok")


def test_crash_outside_an_action_still_replies(isolated, monkeypatch, capsys):
    from orchestrator_lib.host import policy
    monkeypatch.setattr(policy, "identify", lambda env: 1 / 0)
    rc, reply = run_main(json.dumps({"agent": "rpcutil", "action": "ping"}))
    assert rc == 1 and reply["message"] == "agent error: ZeroDivisionError: division by zero"
    assert "Traceback" in capsys.readouterr().err


def test_agent_crash_becomes_a_failed_reply(isolated, capsys):
    agent = core.Agent("orchestrator_lib.host.agents._crashy")
    def boom(req):
        return 1 / 0
    agent.action(boom)
    try:
        reply = core.dispatch(core.Request("_crashy", "boom"))
    finally:
        del core.REGISTRY["_crashy"]
    assert reply.status == "failed" and reply.message == "_crashy#boom: ZeroDivisionError: division by zero"
    assert "Traceback" in capsys.readouterr().err


def test_argument_coercion():
    req = core.Request("a", "b", {"n": "3", "f": "2.5", "yes": "true", "no": "0", "l": "web1, web2 web3",
                                  "jl": ["x", "y"], "empty": ""})
    assert req.int_arg("n") == 3 and req.float_arg("f") == 2.5
    assert req.bool_arg("yes") is True and req.bool_arg("no") is False and req.bool_arg("absent", True) is True
    assert req.list_arg("l") == ["web1", "web2", "web3"] and req.list_arg("jl") == ["x", "y"]
    assert req.str_arg("empty", "dflt") == "dflt"
    with pytest.raises(core.ActionError, match="a#b: missing argument 'zzz'"):
        req.arg("zzz")
    with pytest.raises(core.ActionError, match="must be a whole number"):
        req.int_arg("f")
    with pytest.raises(core.ActionError, match="true or false"):
        core.Request("a", "b", {"x": "maybe"}).bool_arg("x")


def test_one_line():
    assert core.one_line("a\n  b\tc") == "a b c"
    assert len(core.one_line("x" * 1000)) == 400


def test_real_system_run_never_raises():
    r = core.System().run(["/nonexistent/tool"])
    assert r.rc == 127 and "not found" in r.stderr
    r = core.System().run("echo out; echo err >&2; exit 3")
    assert (r.rc, r.stdout, r.stderr, r.line()) == (3, "out\n", "err\n", "err")
    r = core.System().run(["sleep", "5"], timeout=0.2)
    assert r.rc == 124 and "timed out" in r.stderr


# --------------------------------------------------------------------------- rpcutil

def test_static_agent_list_is_the_modules_that_define_an_agent():
    package_dir = pathlib.Path(core.__file__).parent / "agents"
    defining = sorted(p.stem for p in package_dir.glob("*.py")
                      if re.search(r"^agent = core\.Agent\(__name__", p.read_text(), re.MULTILINE))
    assert list(core.AGENTS) == defining == ALL_AGENTS


def test_rpcutil_agents_lists_every_module():
    r = call(FakeSystem(), "rpcutil", "agents")
    assert r.data["agents"] == ALL_AGENTS
    assert r.data["actions"]["package"] == ["install", "purge", "remove", "status", "uninstall", "update"]


def test_rpcutil_facts_are_the_hosts_own_with_their_sources():
    """The controller merges with the inventory (livefacts.merge); the host reports only itself."""
    fake = FakeSystem(files={"/etc/os-release": DEBIAN_OS_RELEASE}, load=(0.5, 0.25, 0.125))
    with core.use_system(fake):
        r = core.dispatch(core.Request("rpcutil", "facts", facts={"cluster": "alfa", "hagroup": "a", "os": "wrong"}))
    facts = r.data["facts"]
    assert "cluster" not in facts and facts["os"] == "debian" and facts["release"] == "12"
    assert facts["os_family"] == "Debian" and facts["codename"] == "bookworm" and facts["load1"] == "0.50"
    assert facts["hostname"] and int(facts["processorcount"]) >= 1 and r.data["sources"]["os"] == "builtin"


def test_os_release_parsing():
    from orchestrator_lib.host.agents.rpcutil import os_release
    assert os_release('ID=debian\nPRETTY_NAME="Debian 12"\n# c\nX=\'q\'\n') == {"ID": "debian", "PRETTY_NAME": "Debian 12", "X": "q"}


# --------------------------------------------------------------------------- notify

@pytest.fixture
def receiver():
    got = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            got.append(body)
            code = 500 if body["message"] == "fail" else 202
            self.send_response(code)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *a):
            pass
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/notify", got
    server.shutdown()
    server.server_close()


def test_notify_posts_json_to_webhook(receiver):
    url, got = receiver
    r = call(FakeSystem(), "notify", "send", recipient="boxcar://rip@devco.net", message="updated 4 nodes", webhook=url)
    assert (r.status, r.data["status"]) == ("changed", 202)
    assert got == [{"recipient": "boxcar://rip@devco.net", "message": "updated 4 nodes", "sender": "t@c"}]
    r = call(FakeSystem(), "notify", "sendmsg", recipient="x", message="fail", webhook=url)
    assert r.status == "failed" and "webhook answered 500" in r.message


def test_notify_without_webhook_only_logs():
    r = call(FakeSystem(), "notify", "send", recipient="ops", message="hello")
    assert (r.status, r.changed, r.data["delivered"]) == ("ok", False, False)
    r = call(FakeSystem(), "notify", "send", recipient="ops", message="hello", webhook="http://127.0.0.1:9/notify")
    assert r.status == "failed" and "cannot reach webhook" in r.message


def test_every_alias_names_its_action_canonical_first():
    """The policy decides on these names (policy.check): an alias is never a way around a deny.
    The host answers exactly the protocol's actions, each under every one of its names."""
    assert protocol.action_names("rpcutil", "nosuch") == ("nosuch",)
    for name, action, names in [("health", "runcommand", ("command", "runcommand")),
                                ("package", "uninstall", ("remove", "uninstall", "purge")),
                                ("appmgr", "upgrade", ("deploy", "upgrade")), ("notify", "sendmsg", ("send", "sendmsg"))]:
        assert protocol.action_names(name, action) == names
        assert {core.load_agent(name).actions[n] for n in names} == {core.load_agent(name).actions[names[0]]}
    for name, actions in protocol.ACTIONS.items():
        assert set(core.load_agent(name).actions) == {n for a in actions for n in protocol.action_names(name, a)}


def test_every_reply_message_leaves_the_host_redacted(isolated, monkeypatch):
    """Any action's message, not only health's and notify's: the controller shows and logs it."""
    leak = "curl http://admin:S3cret@repo.example/x?token=T0KEN failed: password=hunter2"
    monkeypatch.setitem(core.load_agent("package").actions, "status", lambda req: core.Reply.failed(leak))
    reply = core.handle({"reqid": "r1", "caller": "t@c", "agent": "package", "action": "status",
                         "args": {"name": "x"}})
    assert "S3cret" not in reply.message and "T0KEN" not in reply.message and "hunter2" not in reply.message
    assert "http://***@repo.example/x?token=***" in reply.message
