"""Issue 12: numeric options and -D settings are bounded, and no argv makes `orch` print a
traceback or contact a host with bad input; fuzzed."""
from __future__ import annotations

import math
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

sys.path.insert(0, str(Path(__file__).parent))
from fuzzing import FUZZ  # noqa: E402
from test_cli import ESTATE, FakeSession  # noqa: E402
from test_deploy import UserData  # noqa: E402

from orchestrator_lib import cli  # noqa: E402
from orchestrator_lib.controller.deploy.settings import Settings, SettingsError  # noqa: E402


@pytest.fixture
def estate(tmp_path):
    path = tmp_path / "estate.yaml"
    path.write_text(textwrap.dedent(ESTATE))
    return str(path)


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setattr(FakeSession, "calls", [])
    monkeypatch.setattr(FakeSession, "replies", {})
    monkeypatch.setattr(cli, "Session", FakeSession)
    return FakeSession


@pytest.mark.parametrize("argv", [["ping", "--timeout", "1e308"], ["ping", "--timeout", "inf"],
                                  ["ping", "--timeout", "nan"], ["ping", "--tries", "99999999999999999999"],
                                  ["ping", "--timeout", "-1"]])
def test_numeric_options_out_of_bounds_are_usage_errors_before_any_host(capsys, fake, estate, argv):
    assert cli.main(argv + ["--env", estate]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert fake.calls == []


def test_a_deeply_nested_rpc_value_is_a_string_not_a_traceback():
    assert cli.rpc_arg_type("x=" + "[" * 100000) == ("x", "[" * 100000)


@pytest.mark.parametrize("data", [{"backend": "app;shutdown"}, {"backend": "app\nshow"},
                                  {"notify_webhook": "file:///{name}"}, {"notify_webhook": "gopher://{address}/x"},
                                  {"notify_webhook": "http:///{name}"}, {"lb_wait": "1e308"}, {"lb_wait": "7200"},
                                  {"lb_wait": "nan"}, {"service_wait": "0"}, {"service_wait": "1e308"}, {"health_path": "/x y"}, {"health_path": "/x\x00"},
                                  {"notify_group": "a b"}])
def test_bad_deploy_settings_are_refused_in_one_line(data):
    with pytest.raises(SettingsError) as exc:
        Settings.from_userdata(UserData(data))
    assert "\n" not in str(exc.value)


def test_good_deploy_settings_still_pass():
    s = Settings.from_userdata(UserData(backend="www", notify_webhook="https://{name}.example:8443/hook",
                                        lb_wait="0", health_path="/health?full=1"))
    assert (s.backend, s.lb_wait) == ("www", 0.0)


_word = st.sampled_from(["ping", "find", "facts", "package", "service", "lb", "rpc", "status", "install", "remove",
                         "mywebapp", "mywebapp;id", "zlib1.", "-I", "web1", "/(a|aa)+$/", "-W", "hagroup=c", "-S",
                         "not web1", "--timeout", "1e308", "nan", "0", "--tries", "--batch", "50%", "--expect", "3+",
                         "--version", "1.0", "--json", "health", "http", "url=http://x", "interval=0",
                         "deadline=nan", "wait=inf", "name=-x", "--", "-", "\n", "\x00", "é", "9" * 30, "rpcutil",
                         "--lb", "--backend", "a;b", "--downgrade", "-A", "-C", "/[/"])


@FUZZ
@given(st.lists(_word, max_size=8))
def test_fuzz_orch_argv_never_crashes_nor_sends_bad_arguments(capsys, estate, monkeypatch, argv):
    """The real Session (its argument check included); only the transport is replaced, recording
    what would have reached a host."""
    from orchestrator_lib.controller import session as session_module
    from orchestrator_lib.controller.orchestration import HostResult, Status
    sent = []
    monkeypatch.setattr(session_module.rpc.SSHTransport, "call",
                        lambda transport, host, request, *a, **kw: sent.append(request) or HostResult(host.name, Status.OK))
    code = cli.main(argv + ["--env", estate, "--no-progress"])
    out, err = capsys.readouterr()
    assert code in (0, 1, 2), err
    assert "Traceback" not in err and "internal error" not in err
    if code == 2 and err:
        assert len(err.strip().splitlines()) == 1 or "usage" in err.lower()
    for request in sent:  # the known classes of bad input never reach a host
        for value in request.args.values():
            assert not (isinstance(value, str) and (";" in value or "\n" in value or value in ("nan", "inf"))), request
            assert not (isinstance(value, float) and (value != value or value in (float("inf"), 0.0))), request


_value = st.one_of(st.text(max_size=30), st.sampled_from(["1e308", "nan", "-inf", "app;x", "file:///x",
                                                           "http://{address}:1/x", "{0}", "{address.x}", "/"]))


@FUZZ
@given(st.dictionaries(st.sampled_from(Settings.names() + ("paln",)), _value, max_size=4))
def test_fuzz_deploy_settings_are_valid_or_refused_in_one_line(tmp_path_factory, monkeypatch, data):
    monkeypatch.chdir(tmp_path_factory.getbasetemp())
    try:
        s = Settings.from_userdata(UserData(data))
    except SettingsError as e:
        assert "\n" not in str(e)
    else:
        assert math.isfinite(s.lb_wait) and 0 <= s.lb_wait <= 3600
        assert 1 <= s.service_wait <= 600
        assert s.notify_webhook.startswith(("http://", "https://"))
        assert not s.backend or ";" not in s.backend
