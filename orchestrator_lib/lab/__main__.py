"""`python -m orchestrator_lib.lab up|down|status|stop|start|reset|rekey|slow|exec`: the lab from a terminal."""
from __future__ import annotations

import argparse
import os
import sys

from ..controller.errors import OrchestratorError
from ..controller.inventory import load_inventory
from .estate import Lab


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m orchestrator_lib.lab",
                                     description="Bring the local lab estate up or down, or change one host.")
    parser.add_argument("--env", default=None, help="environment name or file (default: local)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("up", "bring the estate up (no-op when running)"), ("down", "stop and remove everything"),
                       ("status", "show each host and whether ssh and its services answer")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("environment", nargs="?", help="environment name or file")
        if name == "up":
            cmd.add_argument("--fresh", action="store_true", help="rebuild even when already up")
    for name, text in (("stop", "stop one host (it becomes unreachable)"), ("start", "start a stopped host")):
        sub.add_parser(name, help=text).add_argument("host")
    sub.add_parser("reset", help="put hosts back to their image state").add_argument("hosts", nargs="*")
    rekey = sub.add_parser("rekey", help="give a host a new ssh host key")
    rekey.add_argument("host")
    rekey.add_argument("--update-known-hosts", action="store_true", help="also trust the new key")
    slow = sub.add_parser("slow", help="fault injection: the host's mywebapp answers /health MS milliseconds later")
    slow.add_argument("host")
    slow.add_argument("ms", type=float, help="milliseconds to add to each /health answer (0: none)")
    run = sub.add_parser("exec", help="run a command inside a host (around the deployer)")
    run.add_argument("host")
    run.add_argument("argv", nargs=argparse.REMAINDER)
    return parser


def run(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        raise OrchestratorError("the lab needs root (network and mount namespaces)")
    lab = Lab(load_inventory(getattr(args, "environment", None) or args.env or "local"))
    if args.command == "up":
        lab.up(fresh=args.fresh)
    elif args.command == "down":
        lab.down()
    elif args.command == "status":
        rows = lab.status()
        for row in rows:
            ports = " ".join(f"{port}:{'ok' if ok else 'no'}" for port, ok in row.answering.items())
            state = "up" if row.running else "stopped"
            print(f"{row.name:<10} {row.address:<15} {row.role:<7} {state:<8} {ports}")
        healthy = sum(r.healthy for r in rows)
        print(f"lab {lab.inventory.name}: {healthy} of {len(rows)} hosts answering")
        return 0 if healthy == len(rows) else 1
    elif args.command == "stop":
        lab.stop_host(args.host)
    elif args.command == "start":
        lab.start_host(args.host)
    elif args.command == "reset":
        lab.reset(args.hosts or None)
    elif args.command == "rekey":
        lab.rekey(args.host, update_known_hosts=args.update_known_hosts)
    elif args.command == "slow":
        lab.slow_app(args.host, args.ms)
    elif args.command == "exec":
        done = lab.exec_in(args.host, args.argv)
        sys.stdout.write(done.stdout)
        sys.stderr.write(done.stderr)
        return done.returncode
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except OrchestratorError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `lab status | head`: the reader left, which is not an error
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
