"""`orch` against the lab: each subcommand run in-process through main(argv), its effect checked
on the hosts themselves (dpkg, runit, HAProxy's admin socket), around the deployer."""
from __future__ import annotations

import json
import os
import pty
import re
import signal
import subprocess
import sys
import time
import uuid

from orchestrator_lib.cli import main
from orchestrator_lib.lab import Lab
from tests.conftest import ROOT, interruptible

HAGROUP_C = ["web3", "web6", "web9"]
WEB = [f"web{i}" for i in range(1, 10)]


def orch(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def nginx_pid(lab: Lab, host: str) -> int:
    status = lab.exec_in(host, ["sv", "status", "/etc/service/nginx"]).stdout
    match = re.match(r"run: \S+ \(pid (\d+)\)", status)
    assert match, f"{host}: {status!r}"
    return int(match.group(1))


def admin_states(lab: Lab) -> dict[str, int]:
    """srv_admin_state per server of backend app, straight from HAProxy (bit 0x01: maintenance)."""
    done = lab.exec_in("lb1", ["sh", "-c", "echo 'show servers state app' | socat stdio /run/haproxy/admin.sock"])
    rows = [line.split() for line in done.stdout.splitlines()[2:] if line.strip()]
    return {row[3]: int(row[6]) for row in rows}


def test_find_lists_the_hosts_of_a_fact_filter(lab, capsys):
    assert orch(capsys, "find", "-W", "hagroup=c") == (0, "web3\nweb6\nweb9\n", "")


def test_find_ping_prints_the_hosts_that_answer(lab, capsys):
    code, out, err = orch(capsys, "find", "-C", "roles::web", "--ping")
    assert code == 0 and out.split() == WEB
    assert "rpcutil#ping: ok on 9 of 9 hosts" in err


def test_ping_every_host(lab, capsys):
    code, out, _ = orch(capsys, "ping")
    assert code == 0
    assert re.search(r"^web3\s+time=[\d.]+ ms$", out, re.M)
    assert "rpcutil#ping: ok on 12 of 12 hosts after 1 try in " in out


def test_facts_of_one_host_and_a_summary_of_one_fact(lab, capsys):
    code, out, _ = orch(capsys, "facts", "-I", "web1")
    assert code == 0 and out.startswith("web1\n")
    assert "  cluster = alfa  [inventory + host /etc/orchestrator/facts.d/lab.yaml]\n" in out and "  hostname = web1  [host (built-in)]\n" in out
    assert "  os = debian  [host (built-in)]\n" in out and "  classes = roles::web  [inventory + host /etc/orchestrator/classes.txt]\n" in out
    code, out, _ = orch(capsys, "facts", "cluster", "-C", "roles::web")
    assert code == 0 and "Summary of cluster: bravo = 5, alfa = 4\n" in out


def test_package_update_one_host_then_status_summary(fresh_lab, capsys):
    code, out, _ = orch(capsys, "package", "mywebapp", "update", "--version", "4.2.6-3.el5", "-I", "web3",
                        "--changed")
    assert code == 0
    assert re.search(r"^web3\s+changed\s+mywebapp updated 4.2.5-1.el5 -> 4.2.6-3.el5$", out, re.M)
    assert fresh_lab.exec_in("web3", ["dpkg-query", "-W", "-f=${Version}", "mywebapp"]).stdout == "4.2.6-3.el5"
    code, out, _ = orch(capsys, "package", "mywebapp", "status", "-C", "roles::web")
    assert code == 0
    assert out.splitlines()[0] == "Summary of version: 4.2.5-1.el5 = 8, 4.2.6-3.el5 = 1"
    assert out.splitlines()[1].startswith("package#status: ok on 9 of 9 hosts after 1 try in ")


def test_service_restart_restarts_only_the_selected_group(fresh_lab, capsys):
    before = {h: nginx_pid(fresh_lab, h) for h in WEB}
    code, out, _ = orch(capsys, "service", "nginx", "restart", "-W", "hagroup=c")
    after = {h: nginx_pid(fresh_lab, h) for h in WEB}
    assert code == 0 and "service#restart: ok on 3 of 3 hosts (3 changed)" in out
    assert "Summary of state: running = 3" in out
    assert sorted(h for h in WEB if after[h] != before[h]) == HAGROUP_C


def test_lb_disable_and_enable_the_selected_servers(lab, capsys):
    try:
        code, out, _ = orch(capsys, "lb", "disable", "-W", "hagroup=c")
        assert code == 0 and "Summary of admin: maint = 3" in out
        assert sorted(n for n, state in admin_states(lab).items() if state & 0x01) == HAGROUP_C
        code, out, _ = orch(capsys, "lb", "status")
        assert code == 0 and "Summary of admin: ready = 6, maint = 3" in out
    finally:
        code, out, _ = orch(capsys, "lb", "enable", "-W", "hagroup=c")
    assert code == 0 and "Summary of admin: ready = 3" in out
    assert not any(state & 0x01 for state in admin_states(lab).values())


def test_rpc_with_json_output(lab, capsys):
    code, out, _ = orch(capsys, "rpc", "package", "status", "name=mywebapp", "-W", "cluster=alfa", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["ok"] is True
    assert doc["discovered"] == ["web1", "web2", "web3", "web4"]
    assert {r["data"]["version"] for r in doc["results"].values()} == {"4.2.5-1.el5"}
    assert doc["tally"].startswith("package#status: ok on 4 of 4 hosts")


def test_a_failed_canary_batch_stops_the_run(lab, capsys):
    code, out, _ = orch(capsys, "service", "nosuch", "restart", "-W", "hagroup=c", "--batch", "1")
    assert code == 1
    assert re.search(r"^web3\s+failed\s+no service nosuch on this host", out, re.M)
    assert re.search(r"^web6\s+not attempted\s+", out, re.M) and re.search(r"^web9\s+not attempted", out, re.M)
    assert "failed on 1 (web3), not attempted 2 (web6, web9)" in out


def test_an_unreachable_host_fails_the_run(lab, capsys):
    lab.stop_host("web6")
    try:
        code, out, _ = orch(capsys, "ping", "-W", "hagroup=c")
    finally:
        lab.start_host("web6")
    assert code == 1
    assert re.search(r"^web6\s+unreachable\s+web6: unreachable at 10.231.0.16:22", out, re.M)
    assert "rpcutil#ping: ok on 2 of 3 hosts, unreachable 1 (web6)" in out


def test_lab_subcommand_is_the_labs_own_cli(lab, capsys):
    code, out, _ = orch(capsys, "lab", "status")
    assert code == 0 and "lab local: 12 of 12 hosts answering" in out


def test_the_console_script_draws_a_progress_bar_only_on_a_terminal(lab):
    """stdout stays clean for pipes; the bar goes to stderr, a terminal here."""
    master, slave = pty.openpty()
    script = "import sys; from orchestrator_lib.cli import main; sys.exit(main())"
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "100"}
    done = subprocess.run([sys.executable, "-c", script, "ping", "-C", "roles::web"], stdout=subprocess.PIPE,
                          stderr=slave, env=env, timeout=60, text=True)
    os.close(slave)
    shown = os.read(master, 65536).decode(errors="replace")
    os.close(master)
    assert done.returncode == 0
    assert done.stdout.splitlines()[-1].startswith("rpcutil#ping: ok on 9 of 9 hosts")
    assert "\x1b[" not in done.stdout
    assert "rpcutil#ping" in shown and "9/9" in shown


def test_rpc_arguments_may_follow_the_filters(lab, capsys):
    code, out, _ = orch(capsys, "rpc", "package", "status", "-I", "web1", "name=mywebapp", "-W", "cluster=alfa")
    assert code == 0 and out.splitlines()[-1].startswith("package#status: ok on 1 of 1 host after")


def test_facts_of_a_fact_no_host_has_is_a_one_line_error(lab, capsys):
    code, out, err = orch(capsys, "facts", "countri", "-C", "roles::web")
    assert (code, out) == (2, "")
    assert err.startswith("orch: error: unknown fact countri: no host of local.yaml has it (known facts: ")
    assert "country" in err and "hostname" in err and err.count("\n") == 1


def test_ctrl_c_prints_what_finished_audits_the_request_and_exits_130(lab):
    """web3 answers at once, web6 sleeps when SIGINT comes, web9's batch never starts."""
    mark = f"ctrlc-{uuid.uuid4().hex[:8]}"
    command = f"case $(hostname) in web6) sleep 10;; esac; : {mark}"
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator_lib.cli", "rpc", "health", "command",
                             f"command={command}", "timeout=30", "-W", "hagroup=c", "--batch", "2", "--no-progress"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=interruptible)
    time.sleep(3)  # web3 has answered (a lab call takes well under a second), web6 is sleeping
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert (proc.returncode, err) == (130, "orch: interrupted\n"), (out, err)
    lines = out.splitlines()
    assert re.match(r"^web3\s+ok\s+", lines[0]), out
    assert lines[1:3] == ["still running when interrupted (outcome unknown): web6", "not started: web9"]
    assert lines[3].startswith("health#command: ok on 1 of 3 hosts, failed on 1 (web6), not attempted 1 (web9)")
    audited = [json.loads(line) for line in (ROOT / "reports" / "audit.jsonl").read_text().splitlines() if mark in line]
    audited = [e for e in audited if e["status"] != "sent"]  # each host's "sent" line, written before its request
    assert [(e["host"], e["status"]) for e in audited] == [("web3", "ok"), ("web6", "failed"), ("web9", "not attempted")]
    assert audited[1]["message"] == "interrupted while running: outcome unknown"
    assert len({e["reqid"] for e in audited}) == 1
