"""The `orch` command line without a lab: parsing, one-line errors, and how results are shown.

Commands that reach hosts run against a fake Session here; tests/integration/test_cli.py runs
them against the lab."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from orchestrator_lib import cli
from orchestrator_lib.controller.discovery import CountContract, Filter
from orchestrator_lib.controller.orchestration import HostResult, RunOptions, RunResult, Status
from orchestrator_lib.controller.session import Interrupted, Session, interrupted_result

ESTATE = """\
    hosts:
      lb1: {address: 10.0.0.2, classes: [haproxy], facts: {role: lb}}
      web1: {address: 10.0.0.11, classes: [roles::web], facts: {hagroup: a, cluster: alfa}}
      web2: {address: 10.0.0.12, classes: [roles::web], facts: {hagroup: b, cluster: alfa}}
      web3: {address: 10.0.0.13, classes: [roles::web], facts: {hagroup: c, cluster: bravo}, agents: [rpcutil]}
    loadbalancer: {backend: www}
"""


@pytest.fixture
def env(tmp_path: Path) -> str:
    """An estate with no lab bridge: Session opens no connection until asked to call."""
    path = tmp_path / "estate.yaml"
    path.write_text(textwrap.dedent(ESTATE))
    return str(path)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def usage_error(capsys, *argv: str) -> str:
    """Run, expect exit 2 and exactly one `orch: error:` line on stderr; return that line."""
    code, out, err = run(capsys, *argv)
    assert code == 2, (code, out, err)
    assert out == ""
    assert err.startswith("orch: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


# --- usage errors need no estate ---------------------------------------------------------------

@pytest.mark.parametrize("argv, expected", [
    ([], "required: COMMAND"),
    (["frob"], "invalid choice: 'frob'"),
    (["package", "mywebapp", "frob"], "argument ACTION: invalid choice: 'frob'"),
    (["service", "nginx"], "required: ACTION"),
    (["lb", "flush"], "invalid choice: 'flush'"),
    (["ping", "--batch", "0"], "argument --batch: batch_size '0': expected a positive count"),
    (["ping", "--batch", "1,x"], "batch_size '1,x'"),
    (["ping", "--tries", "0"], "argument --tries: '0': expected a whole number from 1 to 100"),
    (["ping", "--timeout", "soon"], "argument --timeout: 'soon': expected a number of seconds above 0"),
    (["find", "--expect", "3..1"], "argument --expect: '3..1': expected a host count"),
    (["rpc", "package", "status", "mywebapp"], "'mywebapp': expected KEY=VALUE"),
    (["rpc", "nosuch", "status"], "unknown agent 'nosuch' (agents: appmgr,"),
    (["rpc", "package", "frob"], "unknown action package#frob (actions: install,"),
    (["package", "mywebapp", "status", "--version", "1.0"], "--version and --downgrade apply to install"),
    (["lb", "disable"], "lb disable needs a filter selecting the servers"),
    (["find", "-W", "cluster"], "fact filter 'cluster': expected FACT=VALUE"),
    (["find", "-I", "/web[/"], "identity filter '/web[/': bad regex"),
    (["find", "-S", "cluster=alfa and ("], "-S \"cluster=alfa and (\""),
    (["find", "--env", "nosuch"], "unknown environment 'nosuch'"),
    (["lab", "bogus"], "argument command: invalid choice: 'bogus'"),
    (["lab", "stop"], "required: host (see 'orch lab stop --help')"),
    (["rpc", "package", "status", "-I", "web1", "name"], "'name': expected KEY=VALUE"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, argv, expected):
    assert expected in usage_error(capsys, *argv)


def test_bad_input_is_reported_before_the_estate_is_looked_at(capsys):
    """A typo in the agent name is the error, not the environment file that does not exist."""
    assert "unknown agent 'pakage'" in usage_error(capsys, "rpc", "pakage", "status", "--env", "/nonexistent.yaml")


def test_help_exits_0(capsys):
    code, out, _ = run(capsys, "package", "--help")
    assert code == 0 and "usage: orch package" in out and "--batch SIZE" in out


@pytest.mark.parametrize("text, expected", [
    ("name=mywebapp", ("name", "mywebapp")),
    ("wait=5", ("wait", 5)),
    ("downgrade=true", ("downgrade", True)),
    ("servers=[\"web1\", \"web2\"]", ("servers", ["web1", "web2"])),
    ("version=4.2.6-3.el5", ("version", "4.2.6-3.el5")),
    ("message=a=b", ("message", "a=b")),
    ("empty=", ("empty", "")),
])
def test_rpc_values_are_json_when_they_parse(text, expected):
    assert cli.rpc_arg_type(text) == expected


@pytest.mark.parametrize("text, contract", [
    ("9", CountContract.exactly(9)), ("3+", CountContract.at_least(3)),
    ("2..5", CountContract.between(2, 5)), ("..5", CountContract.at_most(5)),
])
def test_expect_counts(text, contract):
    assert cli.expect_type(text) == contract


def test_filter_options_map_onto_the_core_filter_and_add_the_commands_agent():
    args = cli.build_parser().parse_args(
        ["package", "mywebapp", "status", "-I", "web1", "-I", "/web[23]/", "-W", "cluster=alfa",
         "-C", "roles::web", "-S", "hagroup=a", "-S", "not web2"])
    assert cli.check_arguments(args) == Filter(
        ("web1", "/web[23]/"), ("cluster=alfa",), ("roles::web",), ("package",), ("hagroup=a", "not web2"))


# --- errors the estate reveals -------------------------------------------------------------------

def test_find_lists_hosts_in_inventory_order_without_ssh(capsys, env):
    assert run(capsys, "find", "-C", "roles::web", "--env", env) == (0, "web1\nweb2\nweb3\n", "")
    code, out, _ = run(capsys, "find", "-S", "cluster=alfa or hagroup=c", "--json", "--env", env)
    assert code == 0 and json.loads(out) == {"discovered": ["web1", "web2", "web3"]}


def test_unknown_fact_no_match_and_count_contract_are_errors(capsys, env):
    assert "unknown fact hagrup" in usage_error(capsys, "find", "-W", "hagrup=c", "--env", env)
    assert "no host matches -W cluster=zulu" in usage_error(capsys, "find", "-W", "cluster=zulu", "--env", env)
    assert "expected exactly 2 hosts, discovered 3: web1, web2, web3" in usage_error(
        capsys, "find", "-C", "roles::web", "--expect", "2", "--env", env)


def test_a_host_name_or_bare_word_the_estate_lacks_is_an_error_not_a_different_set(capsys, env):
    assert "unknown host 'wbe2' (did you mean 'web2'?) in filter -I web1 -I wbe2" in usage_error(
        capsys, "find", "-I", "web1", "-I", "wbe2", "--env", env)
    assert "unknown name 'wbe3' (did you mean 'web3'?)" in usage_error(
        capsys, "find", "-S", "cluster=alfa and not wbe3", "--env", env)


def test_each_select_expression_is_parsed_on_its_own(capsys, env):
    assert usage_error(capsys, "find", "-S", "hagroup=a) or (cluster=bravo", "-S", "cluster=alfa", "--env", env) == (
        "orch: error: -S \"hagroup=a) or (cluster=bravo\": expected 'and', 'or' or the end at column 10, found ')'\n")
    assert run(capsys, "find", "-S", "cluster=alfa or hagroup=c", "-S", "not web2", "--env", env) == (
        0, "web1\nweb3\n", "")


def test_a_command_targets_only_hosts_offering_its_agent(capsys, env):
    assert "no host matches -I web3 -A package" in usage_error(
        capsys, "package", "mywebapp", "status", "-I", "web3", "--env", env)


def test_a_lab_that_is_down_is_refused(capsys, tmp_path):
    path = tmp_path / "lab.yaml"
    path.write_text("lab: {bridge: nosuchbr9}\nhosts:\n  web1: {address: 10.0.0.11}\n")
    assert "is not up (no bridge nosuchbr9)" in usage_error(capsys, "ping", "--env", str(path))


# --- results, with a fake Session ----------------------------------------------------------------

class FakeSession:
    """The real Session's discovery (no SSH), canned replies for call()."""
    replies: dict[str, HostResult] = {}
    calls: list[dict] = []
    opened: list[dict] = []

    def __init__(self, env, **kw) -> None:
        self._real = Session(env, **kw)
        self.inventory = self._real.inventory
        FakeSession.opened.append(kw)

    def discover(self, *a, **kw):
        return self._real.discover(*a, **kw)

    def unknown_facts_error(self, *a, **kw):
        return self._real.unknown_facts_error(*a, **kw)

    def call(self, hosts, agent, action, args=None, options=None, *, dry_run=False, on_result=None):
        FakeSession.calls.append({"hosts": [h.name for h in hosts], "agent": agent, "action": action,
                                  "args": args, "options": options})
        results = {h.name: self.replies.get(h.name, HostResult(h.name, Status.OK, "fine")) for h in hosts}
        return RunResult(f"{agent}#{action}", results, 0.25)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._real.close()


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setattr(FakeSession, "replies", {})
    monkeypatch.setattr(FakeSession, "calls", [])
    monkeypatch.setattr(FakeSession, "opened", [])
    monkeypatch.setattr(cli, "Session", FakeSession)
    return FakeSession


def versions(*pairs: tuple[str, Status, str | None]) -> dict[str, HostResult]:
    return {h: HostResult(h, st, f"mywebapp {v}" if v else "boom", data={"version": v} if v else {})
            for h, st, v in pairs}


def test_only_out_of_the_ordinary_hosts_then_summary_and_tally(capsys, env, fake):
    fake.replies = versions(("web1", Status.CHANGED, "4.2.6-3.el5"), ("web2", Status.FAILED, None),
                            ("lb1", Status.OK, "4.2.6-3.el5"))
    code, out, err = run(capsys, "package", "mywebapp", "update", "--version", "4.2.6-3.el5", "--env", env,
                         "-I", "lb1", "-I", "web1", "-I", "web2", "--batch", "1,50%", "--tries", "2",
                         "--timeout", "30")
    assert code == 1 and err == ""
    lines = out.splitlines()
    assert lines[0].split() == ["web2", "failed", "boom"]
    assert lines[1] == "Summary of version: 4.2.6-3.el5 = 2"
    assert lines[2].startswith("package#update: ok on 2 of 3 hosts (1 changed), failed on 1 (web2)")
    assert len(lines) == 3
    assert fake.calls == [{"hosts": ["lb1", "web1", "web2"], "agent": "package", "action": "update",
                           "args": {"name": "mywebapp", "version": "4.2.6-3.el5"},
                           "options": RunOptions(batch_size=[1, "50%"], tries=2, timeout=30.0)}]
    assert fake.opened == [{"trust_on_first_use": False, "preflight": cli.refuse_if_down, "transport": None}]


def test_changed_and_verbose_show_more_hosts(capsys, env, fake):
    fake.replies = versions(("web1", Status.CHANGED, "2"), ("web2", Status.OK, "1"))
    _, out, _ = run(capsys, "package", "x", "update", "-C", "roles::web", "-A", "package", "--changed",
                    "--env", env)
    assert [ln.split()[:2] for ln in out.splitlines()[:-2]] == [["web1", "changed"]]
    _, out, _ = run(capsys, "package", "x", "update", "-C", "roles::web", "-A", "package", "-v", "--env", env)
    assert [ln.split()[:2] for ln in out.splitlines()[:-2]] == [["web1", "changed"], ["web2", "ok"]]


def test_unreachable_and_not_attempted_fail_the_run(capsys, env, fake):
    fake.replies = {"web1": HostResult("web1", Status.UNREACHABLE, "web1: connection refused"),
                    "web2": HostResult("web2", Status.NOT_ATTEMPTED, "stopped after a failed batch")}
    code, out, _ = run(capsys, "service", "nginx", "restart", "-C", "roles::web", "--tofu", "--env", env)
    assert code == 1
    assert "web1  unreachable" in out and "web2  not attempted" in out
    assert fake.opened == [{"trust_on_first_use": True, "preflight": cli.refuse_if_down, "transport": None}]


def test_json_is_the_run_result_plus_the_discovered_hosts(capsys, env, fake):
    code, out, _ = run(capsys, "rpc", "rpcutil", "ping", "-W", "cluster=alfa", "--json", "--env", env)
    doc = json.loads(out)
    assert code == 0 and doc["discovered"] == ["web1", "web2"] and doc["ok"] is True
    assert doc["label"] == "rpcutil#ping" and set(doc["results"]) == {"web1", "web2"}
    assert doc["counts"]["ok"] == 2


def test_rpc_passes_parsed_arguments(capsys, env, fake):
    run(capsys, "rpc", "service", "restart", "name=nginx", "wait=5", "-I", "web1", "--env", env)
    assert fake.calls[0]["args"] == {"name": "nginx", "wait": 5}


def test_words_and_options_come_in_any_order(capsys, env, fake):
    """As with mco: `rpc package status -I web1 name=mywebapp`, KEY=VALUE after a filter."""
    assert run(capsys, "rpc", "package", "status", "-I", "web1", "name=mywebapp", "--env", env)[0] == 0
    assert run(capsys, "rpc", "-I", "web2", "package", "--env", env, "status", "name=x", "-v")[0] == 0
    assert run(capsys, "package", "-C", "roles::web", "mywebapp", "-I", "web1", "status", "--env", env)[0] == 0
    assert [(c["hosts"], c["agent"], c["action"], c["args"]) for c in fake.calls] == [
        (["web1"], "package", "status", {"name": "mywebapp"}),
        (["web2"], "package", "status", {"name": "x"}),
        (["web1"], "package", "status", {"name": "mywebapp"}),
    ]


def test_facts_summary_of_one_fact(capsys, env, fake):
    fake.replies = {h: HostResult(h, Status.OK, "12 facts", data={"facts": {"os": os}})
                    for h, os in (("web1", "debian"), ("web2", "debian"), ("web3", "ubuntu"))}
    code, out, _ = run(capsys, "facts", "os", "-C", "roles::web", "--env", env)
    assert code == 0 and out.splitlines()[0] == "Summary of os: debian = 2, ubuntu = 1"


def test_facts_of_a_fact_no_host_has_is_the_filters_one_line_error(capsys, env, fake):
    fake.replies = {h: HostResult(h, Status.OK, "2 facts", data={"facts": {"os": "debian", "country": "de"}})
                    for h in ("web1", "web2", "web3")}
    assert usage_error(capsys, "facts", "countri", "-C", "roles::web", "--env", env) == (
        "orch: error: unknown fact countri: no host of estate.yaml has it (known facts: cluster, country, hagroup, os)\n")
    fake.replies = {h: HostResult(h, Status.UNREACHABLE, f"{h}: connection refused") for h in ("web1", "web2", "web3")}
    code, out, _ = run(capsys, "facts", "countri", "-C", "roles::web", "--env", env)
    assert code == 1 and "web1  unreachable" in out  # no answer says nothing about the fact


def test_lb_targets_the_haproxy_host_with_the_filtered_servers(capsys, env, fake):
    servers = {n: {"address": "10.0.0.x", "op": "UP", "admin": "maint"} for n in ("web1", "web2")}
    fake.replies = {"lb1": HostResult("lb1", Status.CHANGED, "www: web1, web2 set to maint",
                                      data={"backend": "www", "servers": servers})}
    code, out, _ = run(capsys, "lb", "disable", "-W", "cluster=alfa", "--env", env)
    assert code == 0
    assert fake.calls[0]["hosts"] == ["lb1"]
    assert fake.calls[0]["args"] == {"backend": "www", "servers": ["web1", "web2"]}
    assert out.splitlines()[0].split() == ["lb1/web1", "10.0.0.x", "UP", "maint"]
    assert "Summary of admin: maint = 2" in out
    run(capsys, "lb", "status", "--lb", "lb1", "--backend", "api", "--env", env)
    assert fake.calls[1]["args"] == {"backend": "api"}


@pytest.fixture
def ctrl_c(fake, monkeypatch):
    """call() interrupted with web1 done, web2 running and the second batch (web3, lb1) not started."""
    def interrupted(self, hosts, agent, action, args=None, options=None, **kw):
        done = {"web1": HostResult("web1", Status.OK, "pong")}
        raise Interrupted(*interrupted_result(f"{agent}#{action}", list(hosts), done, options.batch_size, 1.5))
    monkeypatch.setattr(fake, "call", interrupted)


def test_ctrl_c_shows_what_finished_and_what_was_still_running_then_exits_130(capsys, env, ctrl_c):
    code, out, err = run(capsys, "ping", "-I", "/web/", "-I", "lb1", "--batch", "2", "--env", env)
    assert (code, err) == (130, "orch: interrupted\n")
    assert [line.split() for line in out.splitlines()[:1]] == [["web1", "ok", "pong"]]
    assert out.splitlines()[1:3] == ["still running when interrupted (outcome unknown): lb1",
                                     "not started: web2, web3"]
    assert out.splitlines()[3].startswith("rpcutil#ping: ok on 1 of 4 hosts, failed on 1 (lb1), not attempted 2")
    code, out, _ = run(capsys, "ping", "-C", "roles::web", "--batch", "2", "--json", "--env", env)
    doc = json.loads(out)
    assert code == 130 and doc["interrupted"] is True and doc["running"] == ["web2"]
    assert doc["results"]["web3"]["status"] == "not attempted"


def test_lab_errors_read_like_every_other_error(capsys):
    """`orch lab` is the lab's own CLI; a lab error is still one `orch: error:` line (no lab is touched)."""
    assert "nosuch" in usage_error(capsys, "lab", "--env", "nosuch", "status")


def test_canaries_come_first_as_their_own_batch_and_the_seed_chooses_them_again(capsys, env, fake):
    code, out, _ = run(capsys, "service", "nginx", "restart", "-C", "roles::web", "--canary", "by=cluster",
                       "--max-fail", "1", "--seed", "7", "--env", env)
    assert code == 0
    canaries = fake.calls[0]["hosts"][:1]   # web1 and web2 (web3 has no service agent) are both cluster alfa
    assert sorted(fake.calls[0]["hosts"]) == ["web1", "web2"]
    assert fake.calls[0]["options"].batch_size == [1, 1] and fake.calls[0]["options"].policy.count == 1
    assert out.startswith(f"canaries: {', '.join(canaries)} (--canary by=cluster, --seed 7 chooses them again)")
    run(capsys, "service", "nginx", "restart", "-C", "roles::web", "--canary", "by=cluster", "--seed", "7", "--env", env)
    assert fake.calls[1]["hosts"] == fake.calls[0]["hosts"]


@pytest.mark.parametrize("argv, expected", [
    (["ping", "--max-fail", "x"], "argument --max-fail: max_fail 'x'"),
    (["ping", "--canary", "by="], "argument --canary: canary 'by='"),
    (["ping", "--seed", "-1"], "argument --seed: '-1': expected a whole number"),
])
def test_bad_rollout_options_are_one_line(capsys, argv, expected):
    assert expected in usage_error(capsys, *argv)
