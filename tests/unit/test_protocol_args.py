"""Issue 12: every argument is validated (type, finite, bounded, fullmatch) in one place
(protocol_args), by the host before any side effect and by the controller before any host is
contacted. Each case below was accepted, or acted on, by the code before the fix."""
from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

sys.path.insert(0, str(Path(__file__).parent))
from fuzzing import FUZZ  # noqa: E402
from test_agents_fakes import FakeSystem, isolated  # noqa: E402,F401

from orchestrator_lib import cli, protocol_args  # noqa: E402
from orchestrator_lib.controller import session as session_module  # noqa: E402
from orchestrator_lib.controller.errors import ArgumentError  # noqa: E402
from orchestrator_lib.controller.orchestration import HostResult, Status  # noqa: E402
from orchestrator_lib.controller.session import Session  # noqa: E402
from orchestrator_lib.host import core  # noqa: E402

BAD = [
    ("appmgr", "deploy", {"app": "mywebapp", "revision": "4.2.6-3.el5", "deadline": "nan"}),
    ("appmgr", "deploy", {"app": "mywebapp", "revision": "4.2.6-3.el5", "interval": 0}),
    ("service", "start", {"name": "mywebapp", "wait": "inf"}),
    ("service", "start", {"name": "mywebapp", "wait": 2e5}),
    ("health", "load", {"interval": 0}),
    ("health", "http", {"url": "http://127.0.0.1/", "deadline": 1e308}),
    ("firewall", "block", {"source": "0.0.0.0/0"}),
    ("firewall", "block", {"source": "::/0"}),
    ("firewall", "block", {"source": "10.0.0.1", "chain": "-F"}),
    ("firewall", "block", {"source": "10.0.0.1", "chain": "INPUT\n"}),
    ("haproxy", "status", {"backend": "app", "socket": "/root/other.sock"}),
    ("haproxy", "status", {"backend": "app", "socket": "/run/haproxy/../../tmp/x.sock"}),
    ("haproxy", "disable", {"backend": "app;shutdown", "servers": ["web1"]}),
    ("package", "status", {"name": "mywebapp;id"}),
    ("package", "status", {"name": "mywebapp\n"}),
    ("package", "install", {"name": "-oDebug::x=1"}),
    ("package", "update", {"name": "mywebapp", "version": "1.0 -y"}),
    ("package", "uninstall", {"name": "mywebapp", "purge": "maybe"}),
    ("package", "status", {"name": "mywebapp", "nmae": "x"}),       # an argument the action does not take
    ("notify", "send", {"recipient": "ops", "message": "hi", "webhook": "file:///etc/shadow"}),
    ("service", "status", {}),
]


@pytest.mark.parametrize("agent, action, args", BAD)
def test_the_schema_refuses_in_one_line(agent, action, args):
    with pytest.raises(protocol_args.ArgError) as exc:
        protocol_args.check(agent, action, args)
    assert "\n" not in str(exc.value) and str(exc.value).startswith(f"{agent}#{action}")


@pytest.mark.parametrize("agent, action, args", [
    ("package", "update", {"name": "libstdc++6", "version": "1:12.2.0-14"}), ("package", "status", {"name": "python3.11"}),
    ("service", "restart", {"name": "mywebapp", "wait": "5"}), ("firewall", "block", {"source": "10.0.0.0/8"}),
    ("haproxy", "drain", {"backend": "app", "servers": "web1,web2", "deadline": 0}),
    ("health", "http", {"url": "http://127.0.0.1:8080/health", "field": "version", "expect": "4.2", "deadline": 5,
                        "interval": 1}),
    ("appmgr", "deploy", {"app": "mywebapp", "revision": "4.2.6-3.el5"}), ("rpcutil", "ping", {})])
def test_the_schema_accepts_what_the_deploys_send(agent, action, args):
    protocol_args.check(agent, action, args)


@pytest.mark.parametrize("agent, action, args", BAD)
def test_the_host_refuses_before_any_side_effect(isolated, agent, action, args):
    fake = FakeSystem()  # raises on any command: none may run
    (isolated / "policy.json").write_text(json.dumps({"default": "allow"}))
    with core.use_system(fake):
        reply = core.handle({"reqid": "a1", "agent": agent, "action": action, "args": args})
    assert reply.status == "failed" and reply.message.startswith("refused:") and fake.calls == []
    result = [json.loads(x) for x in (isolated / "audit.jsonl").read_text().splitlines()][-1]
    assert result["status"] == "failed" and result["message"] == reply.message


def test_a_package_name_apt_would_read_as_a_pattern_installs_nothing(isolated):
    fake = FakeSystem(tools={"dpkg-query", "apt-get"})
    fake.on(r"^dpkg-query", (1, "", "dpkg-query: no packages found matching zlib1."))
    fake.on(r"^apt-cache policy", (0, "zlib1.:\n  Installed: (none)\n  Candidate: 1:1.2.13\n", ""))  # apt's regex
    fake.on(r"^apt-cache pkgnames", (0, "zlib1g\nzlib1g-dev\n", ""))
    with core.use_system(fake):
        reply = core.dispatch(core.Request("package", "install", {"name": "zlib1."}))
    assert reply.status == "failed" and "exactly" in reply.message
    assert not any(c.startswith("apt-get install") for c in fake.calls)


ESTATE = """\
hosts:
  web1: {address: 127.0.0.1, port: 1}
  web2: {address: 127.0.0.1, port: 2}
"""


@pytest.fixture
def contacted(tmp_path, monkeypatch):
    """A real Session (real argument checks) whose hosts are never reached: rpc.call records."""
    calls: list[str] = []
    monkeypatch.setattr(session_module.rpc.SSHTransport, "call",
                        lambda transport, host, *a, **kw: calls.append(host.name) or HostResult(host.name, Status.OK, "x"))
    (tmp_path / "environments").mkdir()
    (tmp_path / "environments" / "e.yaml").write_text(ESTATE)
    return calls


def test_orch_refuses_bad_arguments_locally_exit_2_one_line_no_host(capsys, tmp_path, contacted):
    env = str(tmp_path / "environments" / "e.yaml")
    assert cli.main(["package", "mywebapp;id", "status", "--env", env, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "package#status" in err and contacted == []
    assert cli.main(["rpc", "service", "start", "name=mywebapp", "wait=inf", "--env", env, "--no-progress"]) == 2
    assert contacted == []
    assert cli.main(["package", "mywebapp", "status", "--env", env, "--no-progress"]) == 0
    assert contacted == ["web1", "web2"]


def test_a_session_call_with_bad_arguments_contacts_no_host(tmp_path, contacted):
    with Session(tmp_path / "environments" / "e.yaml", audit_path=None) as s:
        with pytest.raises(ArgumentError):
            s.call(list(s.inventory.hosts.values()), "firewall", "block", {"source": "0.0.0.0/0"})
    assert contacted == []


_values = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(), st.text(max_size=12),
                    st.sampled_from(["nan", "inf", "-1", "1e308", "0.0.0.0/0", "mywebapp;id", "-x", "a\n", "zlib1.",
                                     "/run/haproxy/admin.sock", "/tmp/x.sock", "http://h/", "file:///x"]),
                    st.lists(st.text(max_size=5), max_size=3))
_agents = [(a, act) for a, acts in protocol_args.SCHEMAS.items() for act in acts]


@FUZZ
@given(st.sampled_from(_agents), st.dictionaries(st.sampled_from(
    ["name", "version", "wait", "deadline", "interval", "tries", "source", "chain", "comment", "socket", "backend",
     "servers", "url", "timeout", "threshold", "app", "revision", "recipient", "message", "webhook", "purge", "x"]),
    _values, max_size=4))
def test_fuzz_no_wrong_accept_from_the_known_classes(target, args):
    agent, action = target
    try:
        protocol_args.check(agent, action, args)
    except protocol_args.ArgError as e:
        assert "\n" not in str(e)
        return
    for name, value in args.items():
        if value is None:
            continue
        text = str(value)
        assert "\n" not in text or name in ("message", "expect", "body", "command")
        if name in ("wait", "deadline", "interval", "tries", "timeout", "threshold"):
            assert float(value) == float(value) and abs(float(value)) <= 100000  # finite, bounded
        if name == "interval":
            assert float(value) > 0
        if name == "source":
            assert not text.endswith("/0")
        if name in ("name", "app", "chain", "backend", "version", "revision"):
            assert not text.startswith("-") and ";" not in text and " " not in text
        if name == "socket":
            assert text.startswith("/run/haproxy/") and ".." not in text


def test_every_action_of_the_protocol_has_an_argument_schema():
    """A new agent or action cannot ship without saying what its arguments may be."""
    from orchestrator_lib.protocol import ACTIONS
    assert {(a, act) for a, acts in ACTIONS.items() for act in acts} == \
        {(a, act) for a, acts in protocol_args.SCHEMAS.items() for act in acts}
