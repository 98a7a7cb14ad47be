"""A Deploy over a scripted Session, shared by the tests of orchestrator_lib.controller.deploy, plus tests of
it: the estate file is real (discovery runs), the agents' replies are functions of the host and
the request, and nothing is sent anywhere."""
from __future__ import annotations

import io
import textwrap
from pathlib import Path
from typing import Any, Callable

from orchestrator_lib.controller.deploy import Deploy, Settings
from orchestrator_lib.controller.inventory import Host
from orchestrator_lib.controller.orchestration import HostResult, RunResult, Status
from orchestrator_lib.controller.reporting import ResultMatrix
from orchestrator_lib.controller.session import Session

ESTATE = """\
    name: unit
    hosts:
      lb1: {address: 10.0.0.2, classes: [haproxy]}
      web1: {address: 10.0.0.11, classes: [roles::web], facts: {hagroup: a}}
      web2: {address: 10.0.0.12, classes: [roles::web], facts: {hagroup: b}}
      web3: {address: 10.0.0.13, classes: [roles::web], facts: {hagroup: c}}
      notify1: {address: 10.0.0.21, classes: [roles::notify]}
      notify2: {address: 10.0.0.22, classes: [roles::notify]}
    groups:
      web: [web1, web2, web3]
    loadbalancer: {backend: app}
"""

Reply = Callable[[Host, dict], HostResult]


def ok(**data: Any) -> Reply:
    return lambda host, args: HostResult(host.name, Status.OK, "fine", data=dict(data))


class ScriptedSession(Session):
    """Session.call answered by `replies["agent#action"](host, args)` (default: ok, no data)."""

    def __init__(self, env: Path, replies: dict[str, Reply] | None = None) -> None:
        super().__init__(env, audit_path=None)
        self.replies = dict(replies or {})
        self.calls: list[tuple[str, list[str], dict]] = []
        self.dry_runs: list[bool] = []

    def call(self, hosts, agent, action, args=None, options=None, *, dry_run=False, on_result=None) -> RunResult:
        label, hosts = f"{agent}#{action}", list(hosts)
        self.calls.append((label, [h.name for h in hosts], dict(args or {})))
        reply = self.replies.get(label, ok())
        self.dry_runs.append(dry_run)
        return RunResult(label, {h.name: reply(h, dict(args or {})) for h in hosts}, 0.25)


def estate(tmp_path: Path, text: str = ESTATE) -> Path:
    path = tmp_path / "unit.yaml"
    path.write_text(textwrap.dedent(text))
    return path


#: an estate with no LB, no notification host and no backend
BARE = "hosts: {a: {address: 10.0.0.1}}\n"


def make_deploy(tmp_path: Path, replies: dict[str, Reply] | None = None, *, text: str = ESTATE,
                **settings: Any) -> Deploy:
    """A Deploy in scenario "s" of feature "f", in a step "When step" of its matrix."""
    matrix = ResultMatrix("unit", plan=bool(settings.get("plan")))
    d = Deploy(Settings(**settings), ScriptedSession(estate(tmp_path, text), replies), matrix, out=io.StringIO())
    matrix.start_scenario("s", "f", "f.feature")
    matrix.start_step("When", "step")
    d.begin_scenario("f", "s")
    return d


def said(d: Deploy) -> list[str]:
    return d.out.getvalue().splitlines()  # type: ignore[union-attr]


def cells(d: Deploy) -> dict:
    return d.matrix.current_step.cells  # type: ignore[union-attr]


# ---- the fake itself ------------------------------------------------------------------------------------
def test_the_scripted_session_discovers_for_real_and_answers_from_its_script(tmp_path):
    d = make_deploy(tmp_path, {"rpcutil#ping": lambda h, a: HostResult(h.name, Status.UNREACHABLE, "down")})
    run = d.session.call(d.inventory.group("web"), "package", "status", {"name": "x"})
    assert run.ok and [r.message for r in run.results.values()] == ["fine"] * 3
    assert not d.session.call([d.inventory.host("web1")], "rpcutil", "ping").ok
    assert d.session.calls[0] == ("package#status", ["web1", "web2", "web3"], {"name": "x"})
