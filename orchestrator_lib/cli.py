"""`orch`: ad-hoc orchestration from a terminal, in the spirit of `mco`.

    orch find -W hagroup=c
    orch package mywebapp update --version 4.2.6-3.el5 -C roles::web --batch 1,50%
    orch service nginx restart -W hagroup=c
    orch lb disable -W hagroup=c

Every command maps its arguments onto `Session` (the same facade the behave steps use: same
filters, same host-key safety, same results) and presents the `RunResult`. Nothing here decides
what runs where; this module parses and prints.

Exit codes: 0 every targeted host ok; 1 a host failed, did not answer or was not attempted;
2 usage or input error (one line on stderr); 3 a bug in orch itself; 130 interrupted.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import types
from pathlib import Path
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator, Mapping, NoReturn, Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

from .controller.deploy import loadbalancer
from .controller.discovery import CountContract, Filter
from .controller.errors import OrchestratorError
from .controller.discovery.livefacts import Merged, merge
from .controller.inventory import Host
from .controller.orchestration import HostResult, RunOptions, RunResult, Status, parse_batch_size
from .controller.orchestration.policy import MAX_TRIES
from .controller.orchestration.rollout import Canary, MaxFail, choose_canaries, new_seed, plan_rollout
from .controller.session import Interrupted, Session
from .lab import refuse_if_down
from .protocol import ACTIONS, AGENTS, action_names

PROG = "orch"
NOTEWORTHY = (Status.FAILED, Status.UNREACHABLE, Status.NOT_ATTEMPTED)
STYLES = {Status.OK: "green", Status.CHANGED: "yellow", Status.WOULD_CHANGE: "yellow", Status.FAILED: "bold red",
          Status.UNREACHABLE: "bold red", Status.NOT_ATTEMPTED: "magenta"}
PACKAGE_ACTIONS, SERVICE_ACTIONS, LB_ACTIONS = (tuple(ACTIONS[a]) for a in ("package", "service", "haproxy"))
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_BUG, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class UsageError(OrchestratorError):
    """Arguments that parse but make no sense together (e.g. --version with `package status`)."""


# --- argument types: reject bad values while parsing, with the library's own wording ---------------

def max_fail_type(text: str) -> MaxFail:
    try:
        return MaxFail.parse(text)
    except OrchestratorError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def canary_type(text: str) -> Canary:
    try:
        return Canary.parse(text)
    except OrchestratorError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def seed_type(text: str) -> int:
    if not text.strip().isdigit() or len(text.strip()) > 12:
        raise argparse.ArgumentTypeError(f"'{text}': expected a whole number (a seed an earlier run printed)")
    return int(text)


def batch_type(text: str) -> Any:
    try:
        return parse_batch_size(text)
    except OrchestratorError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


#: Bounds of the numeric options: past these a value is a typo (and 1e308 s overflowed the clock).
MAX_SECONDS = 86400.0


def tries_type(text: str) -> int:
    """RunOptions checks tries (the one check); here only the text is read."""
    try:
        return RunOptions(tries=int(text)).tries
    except (ValueError, OrchestratorError):
        raise argparse.ArgumentTypeError(f"'{text}': expected a whole number from 1 to {MAX_TRIES}") from None


def seconds_type(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= MAX_SECONDS:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"'{text}': expected a number of seconds above 0, at most {MAX_SECONDS:g}")
    return value


def expect_type(text: str) -> CountContract:
    """`9` exactly, `3+` at least, `2..5` between, `..5` at most: the count contract of the steps."""
    spec = text.strip()
    try:
        if spec.endswith("+"):
            return CountContract.at_least(int(spec[:-1]))
        if ".." in spec:
            low, _, high = spec.partition("..")
            return CountContract(int(low or 0), int(high))
        return CountContract.exactly(int(spec))
    except (ValueError, OrchestratorError):
        raise argparse.ArgumentTypeError(f"'{text}': expected a host count such as 9, 3+, 2..5 or ..5") from None


def rpc_arg_type(text: str) -> tuple[str, Any]:
    """`key=value`; the value is JSON when it parses (`wait=5`, `servers=["a"]`), else a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"'{text}': expected KEY=VALUE")
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        value = raw
    return key.strip(), value


# --- the parser ------------------------------------------------------------------------------

class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line: `orch: error: ...`."""

    def error(self, message: str) -> NoReturn:
        message = message.replace("\r", "\\r").replace("\n", "\\n")  # one line, whatever was typed
        self.exit(EXIT_USAGE, f"{PROG}: error: {message} (see '{self.prog} --help')\n")


class CommandParser(Parser):
    """A command's parser: its words and options in any order, as with mco (`orch rpc package
    status -I web1 name=x`). argparse's intermixed parsing calls parse_known_args twice itself;
    the flag lets those calls through to the plain parse."""

    _intermixing = False

    def parse_known_args(self, args: Sequence[str] | None = None,
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        if self._intermixing:
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False


def _common() -> argparse.ArgumentParser:
    common = Parser(add_help=False)
    flt = common.add_argument_group("host filters (as in the behave steps; parts AND together)")
    flt.add_argument("-I", "--identity", action="append", default=[], metavar="NAME",
                     help="host name or /regex/ (repeatable, OR among themselves)")
    flt.add_argument("-W", "--fact", dest="facts", action="append", default=[], metavar="FACT=VALUE",
                     help="fact test, e.g. hagroup=c, load<2, os=~/deb/ (repeatable)")
    flt.add_argument("-C", "--class", dest="classes", action="append", default=[], metavar="CLASS",
                     help="class or /regex/ (repeatable)")
    flt.add_argument("-A", "--agent", dest="agents", action="append", default=[], metavar="AGENT",
                     help="hosts offering this agent (repeatable)")
    flt.add_argument("-S", "--select", action="append", default=[], metavar="EXPR",
                     help='compound filter, e.g. "cluster=alfa and not web3" (repeatable: AND)')
    flt.add_argument("--expect", type=expect_type, metavar="COUNT",
                     help="refuse to run unless the filter finds this many hosts: 9, 3+, 2..5, ..5")
    flt.add_argument("--env", default="local", help="environment name or file (default: local)")
    run = common.add_argument_group("running")
    run.add_argument("--batch", type=batch_type, metavar="SIZE",
                     help="hosts at a time: a count, a percentage or a list such as 1,2,50%%")
    run.add_argument("--max-fail", type=max_fail_type, metavar="N|PCT",
                     help="ONE failure budget over all batches: stop once more than N hosts (or 10%% of them, say) "
                          "failed or did not answer (default: stop after a batch with any failure)")
    run.add_argument("--canary", type=canary_type, metavar="N|by=FACT",
                     help="a first batch of N hosts (default 1), or N per value of FACT, chosen from a seed")
    run.add_argument("--seed", type=seed_type, help="the canaries' seed (printed by an earlier run) to choose them again")
    run.add_argument("--tries", type=tries_type, default=1, help="tries per host (default 1)")
    run.add_argument("--timeout", type=seconds_type, metavar="SECONDS",
                     help="per try and host (default 300)")
    run.add_argument("--tofu", action="store_true",
                     help="trust a host key seen for the first time (default: known_hosts only)")
    run.add_argument("--transport", choices=("ssh", "nats"),
                     help="reach the hosts over SSH or through the estate's NATS broker (default: the estate's)")
    out = common.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="machine-readable result on stdout")
    out.add_argument("--changed", action="store_true", help="list changed hosts too")
    out.add_argument("-v", "--verbose", action="store_true", help="list every host")
    out.add_argument("--no-progress", action="store_true", help="no progress bar")
    return common


def build_parser() -> Parser:
    parser = Parser(prog=PROG, description="Ad-hoc orchestration of an estate: the library of the "
                    "behave deploys, from a terminal.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=CommandParser)
    common = [_common()]

    find = sub.add_parser("find", parents=common, help="list the hosts a filter selects (no SSH)")
    find.add_argument("--ping", action="store_true", help="also ping them; print those that answer")
    sub.add_parser("ping", parents=common, help="ping hosts through their agent (rpcutil#ping)")
    facts = sub.add_parser("facts", parents=common, help="live facts (rpcutil#facts)")
    facts.add_argument("fact_name", nargs="?", metavar="FACT", help="summarise this fact's values across hosts")
    pkg = sub.add_parser("package", parents=common, help="status, install, update, remove a package")
    pkg.add_argument("name", metavar="NAME")
    pkg.add_argument("action", choices=PACKAGE_ACTIONS, metavar="ACTION", help=", ".join(PACKAGE_ACTIONS))
    pkg.add_argument("--version", help="wanted version (install, update)")
    pkg.add_argument("--downgrade", action="store_true", help="allow going to an older --version")
    svc = sub.add_parser("service", parents=common, help="status, start, stop, restart a service")
    svc.add_argument("name", metavar="NAME")
    svc.add_argument("action", choices=SERVICE_ACTIONS, metavar="ACTION", help=", ".join(SERVICE_ACTIONS))
    lb = sub.add_parser("lb", parents=common, help="HAProxy backend servers: the hosts the filter selects")
    lb.add_argument("action", choices=LB_ACTIONS, metavar="ACTION", help=", ".join(LB_ACTIONS))
    lb.add_argument("--lb", dest="lb_host", metavar="HOST", help="the load balancer (default: the estate's loadbalancer.host, else class haproxy)")
    lb.add_argument("--backend", help="HAProxy backend (default: the environment's lab.backend or app)")
    rpc = sub.add_parser("rpc", parents=common, help="any agent action: rpc AGENT ACTION key=value...")
    rpc.add_argument("agent", metavar="AGENT")
    rpc.add_argument("action", metavar="ACTION")
    rpc.add_argument("arguments", nargs="*", type=rpc_arg_type, metavar="KEY=VALUE")
    install = sub.add_parser("install", parents=common,
                             help="install or upgrade the NATS agent service on hosts, over SSH")
    install.add_argument("what", choices=("nats",), metavar="nats",
                         help="nats: the agent as a NATS service (bundle, config from the estate's nats:, "
                              "runit or systemd service)")
    sudoers = sub.add_parser("sudoers", help="print the sudo rule a login user needs (become: sudo)")
    sudoers.add_argument("user", metavar="USER")
    init = sub.add_parser("init", help="write a starter deploy repository into DIR (never overwrites)")
    init.add_argument("directory", metavar="DIR")
    report = sub.add_parser("report", help="render the HTML report of an earlier run from its JSON")
    report.add_argument("json_path", metavar="REPORT.json", help="e.g. reports/deploy-deploy_webapp.json")
    report.add_argument("-o", "--output", metavar="FILE.html", help="default: next to the JSON, .html")
    lint = sub.add_parser("lint", help="check deploy features before they run (exit 1 on an error)")
    lint.add_argument("paths", nargs="+", metavar="PATH", help="feature files or directories, e.g. features/")
    # Listed for --help only: main() hands `orch lab ...` to the lab's own parser (run_lab).
    sub.add_parser("lab", add_help=False, help="the local lab: up|down|status|stop|start|reset|rekey|exec")
    return parser


# --- what to run -----------------------------------------------------------------------------

Values = Callable[[HostResult], Any]


@dataclass
class Call:
    """One agent action on a set of hosts, and how to present its replies."""
    hosts: list[Host]
    agent: str
    action: str
    args: dict[str, Any] = field(default_factory=dict)
    summary: Callable[[RunResult], str] | None = None
    details: Callable[[RunResult, bool], list[str]] | None = None
    extra_json: dict[str, Any] = field(default_factory=dict)
    check: Callable[[RunResult], None] | None = None  # raises when the replies show a typo


def user_filter(args: argparse.Namespace, *, agent: str | None = None) -> Filter:
    """The command line's filter; like mco, a command for an agent targets only hosts offering it."""
    agents = args.agents + ([agent] if agent and agent not in args.agents else [])
    return Filter.parse(args.identity, args.facts, args.classes, agents, args.select)


def check_action(agent: str, action: str) -> None:
    """Unknown agents and actions are typos: say so before any host is touched."""
    if agent not in ACTIONS:
        raise UsageError(f"unknown agent '{agent}' (agents: {', '.join(AGENTS)})")
    if action_names(agent, action)[0] not in ACTIONS[agent]:
        known = sorted(n for canonical in ACTIONS[agent] for n in action_names(agent, canonical))
        raise UsageError(f"unknown action {agent}#{action} (actions: {', '.join(known)})")


def command_agent(args: argparse.Namespace) -> str | None:
    """The agent whose hosts a command targets (lb: the filter names servers, not LB hosts)."""
    if args.command == "find":
        return "rpcutil" if args.ping else None
    return {"ping": "rpcutil", "facts": "rpcutil", "package": "package", "service": "service",
            "rpc": getattr(args, "agent", None)}.get(args.command)


def check_arguments(args: argparse.Namespace) -> Filter:
    """Judge everything that needs no estate before the estate is touched; return the filter."""
    if args.command == "rpc":
        check_action(args.agent, args.action)
    if args.command == "package" and (args.version or args.downgrade) and args.action not in ("install", "update"):
        raise UsageError(f"--version and --downgrade apply to install and update, not {args.action}")
    flt = user_filter(args, agent=command_agent(args))
    if args.command == "lb" and flt.is_empty() and args.action != "status":
        raise UsageError(f"lb {args.action} needs a filter selecting the servers, e.g. -W hagroup=c")
    return flt


def targets(session: Session, args: argparse.Namespace) -> list[Host]:
    """The hosts the filter selects: none, or a count outside --expect, is an error, not a no-op."""
    return session.discover(args.filter, args.expect, live=False)


def derived_summary(name: str, values: Mapping[str, Any]) -> str:
    """RunResult.summary's wording, for values the replies carry nested (a fact, a server state)."""
    view = {key: HostResult(key, Status.OK, data={name: value}) for key, value in values.items()}
    return RunResult(name, view, 0.0).summary(name)


def per_host(name: str, value: Values) -> Callable[[RunResult], str]:
    """`Summary of NAME: ...` over the hosts that replied with data (failed hosts have none)."""
    def summary(result: RunResult) -> str:
        values = {r.host: value(r) for r in result.results.values() if r.data}
        return derived_summary(name, {h: v for h, v in values.items() if v is not None})
    return summary


def plan_ping(session: Session, args: argparse.Namespace) -> Call:
    def times(result: RunResult, verbose: bool) -> list[str]:
        return [f"{r.host:<{_width(result)}}  time={r.duration * 1000:.1f} ms"
                for r in result.results.values() if r.ok]
    return Call(targets(session, args), "rpcutil", "ping", details=times)


def plan_facts(session: Session, args: argparse.Namespace) -> Call:
    """Each host's facts and classes with where each came from: the inventory, the host (built-in
    or the file it was read from), or both; a value the host contradicts is flagged."""
    fact = args.fact_name
    merged: dict[str, Merged] = {}

    def view(r: HostResult) -> Merged:
        if r.host not in merged:
            merged[r.host] = merge(session.inventory.host(r.host), r.data)
        return merged[r.host]

    def facts_of(r: HostResult) -> Mapping[str, Any]:
        return view(r).host.facts if r.ok else {}

    def listing(result: RunResult, verbose: bool) -> list[str]:
        if fact is not None:
            return [f"{r.host:<{_width(result)}}  {facts_of(r)[fact]}  [{view(r).sources[fact]}]"
                    for r in result.results.values() if verbose and fact in facts_of(r)]
        lines = []
        for r in result.results.values():
            if r.ok:
                host = view(r)
                lines.append(r.host)
                lines += [f"  {k} = {v}  [{host.sources[k]}]" for k, v in sorted(host.host.facts.items())]
                lines.append(f"  classes = {', '.join(host.host.classes)}  [{host.classes_source}]")
                lines += [f"  contradiction: {c}" for c in host.contradictions]
        return lines

    def known_fact(result: RunResult) -> None:
        """A fact no answering host has is a typo (as in -W), not `Summary of ...: no data`."""
        known = {name for r in result.results.values() if r.ok for name in facts_of(r)}
        if fact is not None and known and fact not in known:
            raise session.unknown_facts_error([fact], known)
        for r in result.results.values():  # --json: the merged view next to the host's reply
            if r.ok:
                r.data["merged"] = {"facts": dict(facts_of(r)), "sources": view(r).sources,
                                    "classes": list(view(r).host.classes), "classes_source": view(r).classes_source,
                                    "contradictions": view(r).contradictions}

    summary = per_host(fact, lambda r: facts_of(r).get(fact)) if fact else None
    return Call(targets(session, args), "rpcutil", "facts", summary=summary, details=listing, check=known_fact)


def plan_package(session: Session, args: argparse.Namespace) -> Call:
    call_args: dict[str, Any] = {"name": args.name}
    if args.version:
        call_args["version"] = args.version
    if args.downgrade:
        call_args["downgrade"] = True
    version = per_host("version", lambda r: r.data.get("version") or r.data.get("state") or "absent")
    return Call(targets(session, args), "package", args.action, call_args, summary=version)


def plan_service(session: Session, args: argparse.Namespace) -> Call:
    def state(r: HostResult) -> Any:
        return r.data.get("state") or ("running" if r.data.get("running") else "stopped")
    return Call(targets(session, args), "service", args.action, {"name": args.name},
                summary=per_host("state", state))


def plan_lb(session: Session, args: argparse.Namespace) -> Call:
    """The LB hosts run haproxy#ACTION; the filter names the backend servers it acts on."""
    servers = [] if args.filter.is_empty() else targets(session, args)
    lbs = loadbalancer.find_load_balancers(session, args.lb_host)
    backend = args.backend or session.inventory.loadbalancer.get("backend") or "app"

    def server_rows(result: RunResult) -> dict[str, dict]:
        return {f"{r.host}/{name}": s for r in result.results.values()
                for name, s in loadbalancer.reply_servers(r).items()}

    def listing(result: RunResult, verbose: bool) -> list[str]:
        rows = server_rows(result)
        width = max((len(k) for k in rows), default=0)
        return [f"{key:<{width}}  {s.get('address', ''):<15} {s.get('op', '?'):<8} {s.get('admin', '?')}"
                for key, s in rows.items()]

    def summary_line(result: RunResult) -> str:
        return derived_summary("admin", {k: s.get("admin") for k, s in server_rows(result).items()})

    return Call(lbs, "haproxy", args.action, loadbalancer.haproxy_args(backend, servers),
                summary=summary_line, details=listing,
                extra_json={"lb": [h.name for h in lbs], "backend": backend,
                            "servers": [h.name for h in servers]})


def plan_rpc(session: Session, args: argparse.Namespace) -> Call:
    return Call(targets(session, args), args.agent, args.action, dict(args.arguments))


def plan_install(session: Session, args: argparse.Namespace) -> Call:
    """Upload the NATS service bundle to each host (as its login user), then nats#install as root:
    a host whose upload failed is said on stderr and left out (the others go on)."""
    from .controller import nats_install
    from .host.build import nats_archive
    hosts = targets(session, args)
    data, sha = nats_archive()
    path = nats_install.upload_path(sha)
    call_args = nats_install.install_args(session.inventory, path, sha)
    failed = nats_install.upload(session.pool, hosts, data, path)
    for name, why in failed.items():
        print(f"{name}  failed  {why}", file=sys.stderr)
    if failed and len(failed) == len(hosts):
        raise OrchestratorError(f"the NATS service bundle reached none of the {len(hosts)} hosts")
    sha_of = per_host("sha", lambda r: r.data.get("sha"))
    return Call([h for h in hosts if h.name not in failed], "nats", "install", call_args, summary=sha_of,
                extra_json={"upload_failed": failed})


PLANS: dict[str, Callable[[Session, argparse.Namespace], Call]] = {
    "ping": plan_ping, "facts": plan_facts, "package": plan_package, "service": plan_service,
    "lb": plan_lb, "rpc": plan_rpc, "install": plan_install,
}


# --- running and presenting -----------------------------------------------------------------

def _width(result: RunResult) -> int:
    return max((len(n) for n in result.results), default=0)


@contextmanager
def progress(label: str, total: int, enabled: bool) -> Iterator[Callable[[HostResult], None] | None]:
    """A bar on stderr while hosts answer; nothing when stderr is not a terminal."""
    console = Console(stderr=True)
    if not enabled or not console.is_terminal or total == 0:
        yield None
        return
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[bad]}", style="red"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(label, total=total, bad="")
        failed = 0

        def advance(r: HostResult) -> None:
            nonlocal failed
            failed += r.status in NOTEWORTHY
            bar.update(task, advance=1, bad=f"{failed} failed" if failed else "")
        yield advance


def with_canaries(call: Call, args: argparse.Namespace, out: Console) -> tuple[Call, Any]:
    """The canaries first, as a batch of their own; then the other hosts in --batch sizes (of all
    the hosts, as without canaries). The seed is printed so --seed chooses the same ones again."""
    seed = new_seed() if args.seed is None else args.seed
    canaries = choose_canaries(call.hosts, args.canary, seed, lambda h: h.name, lambda h, f: h.facts.get(f))
    rest = [h for h in call.hosts if h not in canaries]
    sizes = [len(b) for b in plan_rollout(call.hosts, args.batch, canaries)]
    print(f"canaries: {', '.join(h.name for h in canaries)} (--canary {args.canary}, --seed {seed} chooses them "
          f"again); batches of {', '.join(map(str, sizes))}", file=sys.stderr if args.json else sys.stdout)
    return replace(call, hosts=canaries + rest), sizes


def execute(session: Session, args: argparse.Namespace, call: Call, out: Console) -> RunResult:
    """Run the call; on Ctrl-C show what it got done (on `out`) before main() reports the interrupt."""
    options = RunOptions(batch_size=args.batch, tries=args.tries, timeout=args.timeout or RunOptions.timeout)
    if args.max_fail is not None:
        options = replace(options, policy=args.max_fail)
    if args.canary is not None:
        call, sizes = with_canaries(call, args, out)
        options = replace(options, batch_size=sizes)
    label = f"{call.agent}#{call.action}"
    try:
        with progress(label, len(call.hosts), not (args.json or args.no_progress)) as on_result:
            return session.call(call.hosts, call.agent, call.action, call.args, options, on_result=on_result)
    except Interrupted as stop:
        render_interrupted(stop, args, out)
        raise


def render_interrupted(stop: Interrupted, args: argparse.Namespace, out: Console) -> None:
    """Every host that finished, then those still running (outcome unknown) and those not started."""
    result = stop.result
    if args.json:
        print(json.dumps({"interrupted": True, "running": stop.running, **result.to_dict()}, indent=2, default=str))
        return
    width = _width(result)
    for r in result.results.values():
        if r.host not in stop.running and r.status is not Status.NOT_ATTEMPTED:
            out.print(Text(f"{r.host:<{width}}  {str(r.status):<13}  {r.message}", style=STYLES[r.status]))
    if stop.running:
        out.print(Text(f"still running when interrupted (outcome unknown): {', '.join(stop.running)}",
                       style="bold red"))
    if result.not_attempted:
        out.print(Text(f"not started: {', '.join(result.not_attempted)}", style=STYLES[Status.NOT_ATTEMPTED]))
    out.print(Text(result.tally(), style="bold red"))


def render(call: Call, result: RunResult, args: argparse.Namespace, out: Console) -> None:
    """Only the hosts that need a look, then the summary and the tally (the time taken)."""
    shown = set(NOTEWORTHY)
    if args.changed or args.verbose:
        shown.add(Status.CHANGED)
    if args.verbose:
        shown.add(Status.OK)
    width = _width(result)
    if call.details is not None:
        for line in call.details(result, args.verbose):
            out.print(Text(line))
    for r in result.results.values():
        if r.status in shown:
            out.print(Text(f"{r.host:<{width}}  {str(r.status):<13}  {r.message}", style=STYLES[r.status]))
    if call.summary is not None:
        out.print(Text(call.summary(result), style="bold"))
    out.print(Text(result.tally(), style="green" if result.ok else "bold red"))


def run_find(session: Session, args: argparse.Namespace, out: Console) -> int:
    hosts = targets(session, args)
    names = [h.name for h in hosts]
    if not args.ping:
        if args.json:
            print(json.dumps({"discovered": names}, indent=2))
        else:
            print("\n".join(names))
        return EXIT_OK
    call = Call(hosts, "rpcutil", "ping")
    err = Console(stderr=True, soft_wrap=True, highlight=False)
    result = execute(session, args, call, err)
    if args.json:
        print(json.dumps({"discovered": names, **result.to_dict()}, indent=2, default=str))
    else:
        print("\n".join(r.host for r in result.results.values() if r.ok))
        render(call, result, args, err)
    return EXIT_OK if result.ok else EXIT_FAILED


def run_report(args: argparse.Namespace) -> int:
    """`orch report x.json`: no session, no host; the page is rendered from the file alone."""
    from .controller.reporting.html import render_file
    path = render_file(Path(args.json_path), Path(args.output) if args.output else None)
    print(path)
    return EXIT_OK


def run_lint(args: argparse.Namespace) -> int:
    """`orch lint features/`: one line per finding (file:line: level: what), exit 1 on any error."""
    from .behave.lint import ERROR, LintInputError, lint_paths
    try:
        findings = lint_paths(args.paths)
    except LintInputError as e:
        raise UsageError(str(e)) from None
    for finding in findings:
        print(finding)
    return EXIT_FAILED if any(f.level == ERROR for f in findings) else EXIT_OK


def run_command(args: argparse.Namespace) -> int:
    if args.command == "report":
        return run_report(args)
    if args.command == "lint":
        return run_lint(args)
    args.filter = check_arguments(args)
    out = Console(soft_wrap=True, highlight=False)
    if args.command == "install":
        if args.transport == "nats":
            raise UsageError("install runs over SSH (it is what makes a host answer over NATS): drop --transport nats")
        args.transport = "ssh"
    with Session(args.env, trust_on_first_use=args.tofu, preflight=refuse_if_down,
                 transport=args.transport) as session:
        if args.command == "find":
            return run_find(session, args, out)
        call = PLANS[args.command](session, args)
        result = execute(session, args, call, out)
        if call.check is not None:
            call.check(result)
        if args.json:
            document = {"discovered": [h.name for h in call.hosts], **call.extra_json, **result.to_dict()}
            print(json.dumps(document, indent=2, default=str))
        else:
            render(call, result, args, out)
        return EXIT_OK if result.ok and not call.extra_json.get("upload_failed") else EXIT_FAILED


def as_orch_parser(parser: argparse.ArgumentParser, prog: str) -> argparse.ArgumentParser:
    """Another module's parser, and its commands' parsers, renamed `prog ...` and reporting a usage
    error like ours: one line (argparse's own prints the usage first)."""
    commands = [sub for action in parser._actions if isinstance(action, argparse._SubParsersAction)
                for sub in action.choices.values()]
    old = parser.prog
    for each in [parser, *commands]:
        each.prog = prog + each.prog[len(old):]
        each.error = types.MethodType(Parser.error, each)  # type: ignore[method-assign]
    return parser


def run_lab(argv: Sequence[str]) -> int:
    """`orch lab ...` is `python -m orchestrator_lib.lab ...`, argument for argument; its errors
    reach main() and read like every other `orch: error:`."""
    from .lab import __main__ as lab_cli
    parser = as_orch_parser(lab_cli.build_parser(), f"{PROG} lab")
    return lab_cli.run(parser.parse_args(list(argv)))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["lab"]:  # before argparse, so `orch lab --help` is the lab's own help
            return run_lab(argv[1:])
        args = build_parser().parse_args(argv)
        if args.command == "sudoers":
            from .controller.transports.sudo import SUDOERS_PATH, sudoers_rule
            print(f"# {SUDOERS_PATH} (mode 0440, check with visudo -c -f FILE)")
            print(sudoers_rule(args.user), end="")
            return 0
        if args.command == "init":
            from pathlib import Path
            from .starter import write_starter
            for line in write_starter(Path(args.directory)):
                print(line)
            return 0
        return run_command(args)
    except SystemExit as exit_:  # argparse: --help (0) or a usage error (2), already printed
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    except OrchestratorError as err:
        print(f"{PROG}: error: {' '.join(str(err).split())}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:  # a bug in orch: one line, the traceback only on request
        if os.environ.get("ORCH_DEBUG"):
            raise
        print(f"{PROG}: error: internal error: {type(err).__name__}: {err} (ORCH_DEBUG=1 shows the traceback)",
              file=sys.stderr)
        return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
