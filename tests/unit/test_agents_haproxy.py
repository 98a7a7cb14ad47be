"""haproxy agent: the `show servers state` parser on a recorded HAProxy 2.6 answer, and the
actions against a fake runtime API served on a private AF_UNIX socket."""
import os
import pathlib
import shutil
import socket
import sys
import tempfile
import threading

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from test_agents_fakes import FakeSystem, call  # noqa: E402

from orchestrator_lib.host.agents import haproxy  # noqa: E402

HEADER = ("# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight "
          "srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state "
          "srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl "
          "srv_check_port srv_check_addr srv_agent_addr srv_agent_port")
# Recorded on the lab's lb1 (Debian haproxy 2.6.12) with `echo "show servers state app" | socat
# stdio /run/haproxy/admin.sock`, after `set server app/web8 state drain` and `... web9 state maint`.
RECORDED = """1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port
3 app 1 web1 10.231.0.11 2 0 1 1 25 15 3 2 6 0 0 0 - 8080 - 0 0 - - 0
3 app 2 web2 10.231.0.12 2 0 1 1 25 15 3 2 6 0 0 0 - 8080 - 0 0 - - 0
3 app 3 web3 10.231.0.13 2 0 1 1 25 15 3 2 6 0 0 0 - 8080 - 0 0 - - 0
3 app 4 web4 10.231.0.14 2 0 1 1 25 15 3 2 6 0 0 0 - 8080 - 0 0 - - 0
3 app 5 web5 10.231.0.15 2 0 1 1 25 15 3 2 6 0 0 0 - 8080 - 0 0 - - 0
3 app 6 web6 10.231.0.16 2 0 1 1 25 15 3 2 6 0 0 0 - 8080 - 0 0 - - 0
3 app 7 web7 10.231.0.17 2 0 1 1 25 15 3 2 6 0 0 0 - 8080 - 0 0 - - 0
3 app 8 web8 10.231.0.18 2 8 1 1 0 15 3 2 6 0 0 0 - 8080 - 0 0 - - 0
3 app 9 web9 10.231.0.19 0 1 1 1 0 15 3 0 14 0 0 0 - 8080 - 0 0 - - 0


"""
assert RECORDED.splitlines()[1] == HEADER


def test_parse_recorded_servers_state():
    servers = haproxy.parse_servers_state(RECORDED)
    assert [s.name for s in servers] == [f"web{i}" for i in range(1, 10)]
    assert {s.backend for s in servers} == {"app"}
    assert [(s.op, s.admin) for s in servers[6:]] == [("UP", "ready"), ("UP", "drain"), ("DOWN", "maint")]
    assert servers[0].address == "10.231.0.11"
    assert servers[8].summary() == {"address": "10.231.0.19", "op": "DOWN", "admin": "maint", "op_state": 0, "admin_state": 1}


def test_parse_admin_state_bits():
    line = "3 app 1 web1 10.0.0.1 2 {} 1 1 0 6 3 4 6 0 0 0 - 80 - 0 0 - - 0"
    for bits, word in [(0, "ready"), (1, "maint"), (2, "maint"), (4, "maint"), (0x20, "maint"), (8, "drain"),
                       (0x10, "drain"), (9, "maint"), (0x40, "ready")]:
        [s] = haproxy.parse_servers_state(f"1\n{HEADER}\n{line.format(bits)}\n")
        assert s.admin == word, bits


def test_parse_errors():
    with pytest.raises(haproxy.RuntimeAPIError, match="Can't find backend"):
        haproxy.parse_servers_state("Can't find backend.\n")
    with pytest.raises(haproxy.RuntimeAPIError, match="no header"):
        haproxy.parse_servers_state("1\n3 app 1 web1 10.0.0.1 2 0\n")
    assert haproxy.parse_servers_state(f"1\n{HEADER}\n") == []


def test_parse_stat_sessions():
    csv_text = ("# pxname,svname,qcur,qmax,scur,smax,slim,stot,status\n"
                "app,web1,0,0,3,5,,40,UP\napp,web2,0,0,0,1,,2,MAINT\napp,BACKEND,0,0,3,6,,42,UP\n\n")
    assert haproxy.parse_stat_sessions(csv_text, "app") == {"web1": 3, "web2": 0}


# --------------------------------------------------------------------------- fake runtime API

class FakeHAProxy:
    """Speaks enough of the runtime API (one command per connection) for the agent."""

    def __init__(self, path: str, servers: dict[str, tuple[int, int]]):
        self.path, self.servers = path, dict(servers)
        self.sessions: dict[str, int] = {n: 0 for n in servers}
        self.commands: list[str] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(16)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while not data.endswith(b"\n"):
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                cmd = data.decode().strip()
                self.commands.append(cmd)
                conn.sendall(self.answer(cmd).encode())

    def answer(self, cmd: str) -> str:
        words = cmd.split()
        if cmd.startswith("show servers state"):
            if words[3:] and words[3] != "app":
                return "Can't find backend.\n"
            lines = [f"3 app {i} {n} 10.231.0.{10 + i} {op} {adm} 1 1 5 6 3 4 6 0 0 0 - 8080 - 0 0 - - 0"
                     for i, (n, (op, adm)) in enumerate(self.servers.items(), 1)]
            return "1\n" + HEADER + "\n" + "\n".join(lines) + "\n\n"
        if cmd.startswith("set server "):
            backend, _, name = words[2].partition("/")
            if backend != "app" or name not in self.servers:
                return "No such server.\n\n"
            op, adm = self.servers[name]
            adm = {"maint": (adm | 1) & ~8, "drain": (adm | 8) & ~1, "ready": adm & ~9}[words[4]]
            self.servers[name] = (0 if adm & 1 else op, adm)
            return "\n"
        if cmd.startswith("show stat app 4 -1"):
            rows = [f"app,{n},0,0,{self.sessions[n]},9,,100,UP" for n in self.servers]
            return "# pxname,svname,qcur,qmax,scur,smax,slim,stot,status\n" + "\n".join(rows) + "\n\n"
        return "Unknown command.\n"

    def close(self):
        self.sock.close()


@pytest.fixture
def lb():
    directory = tempfile.mkdtemp(prefix="hap", dir="/tmp")  # AF_UNIX paths are short
    fake = FakeHAProxy(os.path.join(directory, "admin.sock"),
                       {"web1": (2, 0), "web2": (2, 0), "web3": (0, 1), "web4": (2, 8)})
    yield fake
    fake.close()
    shutil.rmtree(directory, ignore_errors=True)


def act(lb, action, **args):
    return call(FakeSystem(), "haproxy", action, backend="app", socket=lb.path, **args)


def test_status_of_backend(lb):
    r = act(lb, "status")
    assert r.status == "ok"
    assert r.after == {"web1": "ready", "web2": "ready", "web3": "maint", "web4": "drain"}
    assert r.data["servers"]["web3"]["op"] == "DOWN"


def test_disable_sets_maint_and_is_idempotent(lb):
    r = act(lb, "disable", servers="web1,web3")
    assert (r.status, r.changed) == ("changed", True)
    assert r.before == {"web1": "ready", "web3": "maint"} and r.after == {"web1": "maint", "web3": "maint"}
    assert r.data["changed"] == ["web1"]
    assert "set server app/web1 state maint" in lb.commands
    assert not any("web3 state" in c for c in lb.commands)  # already in maint: untouched
    sets = len([c for c in lb.commands if c.startswith("set")])
    r = act(lb, "disable", servers=["web1", "web3"])
    assert (r.status, r.changed, r.message) == ("ok", False, "app: web1, web3 already maint")
    assert len([c for c in lb.commands if c.startswith("set")]) == sets


def test_enable_makes_ready(lb):
    r = act(lb, "enable", servers=["web3", "web4", "web1"])
    assert r.status == "changed" and set(r.after.values()) == {"ready"}
    assert r.data["changed"] == ["web3", "web4"]
    assert lb.servers["web3"][1] == 0 and lb.servers["web4"][1] == 0


def test_unknown_server_changes_nothing(lb):
    r = act(lb, "disable", servers="web1,web10")
    assert r.status == "failed" and "no server web10 in backend app" in r.message
    assert not any(c.startswith("set") for c in lb.commands)


def test_unknown_backend_and_missing_socket(lb):
    r = call(FakeSystem(), "haproxy", "status", backend="nope", socket=lb.path)
    assert r.status == "failed" and "Can't find backend" in r.message
    r = call(FakeSystem(), "haproxy", "status", backend="app", socket="/tmp/no-such-haproxy.sock")
    assert r.status == "failed" and "runtime API /tmp/no-such-haproxy.sock" in r.message


def test_drain_waits_for_sessions_to_end(lb):
    lb.sessions["web1"] = 2
    fake = FakeSystem()

    def tick(_seconds):  # each poll interval one session ends
        lb.sessions["web1"] = max(lb.sessions["web1"] - 1, 0)
    fake.on_sleep = tick
    r = call(fake, "haproxy", "drain", backend="app", socket=lb.path, servers="web1", deadline=10, interval=0.5)
    assert r.status == "changed" and r.after == {"web1": "drain"}
    assert r.data["sessions"] == {"web1": 0} and r.data["waited"] == 1.0
    assert fake.sleeps == [0.5, 0.5]


def test_drain_deadline_fails_but_server_stays_drained(lb):
    lb.sessions["web2"] = 4
    fake = FakeSystem()
    r = call(fake, "haproxy", "drain", backend="app", socket=lb.path, servers="web2", deadline=2, interval=0.5)
    assert r.status == "failed" and r.changed
    assert "sessions still open after 2 s: web2 4" in r.message
    assert lb.servers["web2"][1] & 8


@pytest.mark.parametrize("deadline, interval", [("nan", 0.5), ("inf", 0.5), (-1, 0.5), (7200, 0.5), (10, 0), (10, "nan")])
def test_drain_refuses_a_wait_that_would_never_end_before_changing_anything(lb, deadline, interval):
    r = call(FakeSystem(), "haproxy", "drain", backend="app", socket=lb.path, servers="web1",
             deadline=deadline, interval=interval)
    assert r.status == "failed" and "deadline must be 0 to 3600 s and interval a positive number" in r.message
    assert not lb.servers["web1"][1] & 8, "the server was not put in drain"
