"""health agent: checks loop on the host until pass or deadline (fake clock: no real waiting)."""
import json
import pathlib
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from test_agents_fakes import FakeSystem, call  # noqa: E402

from orchestrator_lib.agents import health  # noqa: E402


class App:
    """A local stand-in for mywebapp's /health: answers come from a list, the last one repeats."""

    def __init__(self, answers):
        self.answers, self.hits = list(answers), 0
        app = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                code, body = app.answers[min(app.hits, len(app.answers) - 1)]
                app.hits += 1
                data = (json.dumps(body) if isinstance(body, dict) else body).encode()
                self.send_response(code)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/health"
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def app_factory():
    apps = []

    def make(*answers):
        apps.append(App(answers))
        return apps[-1]
    yield make
    for a in apps:
        a.close()


def test_http_passes_on_status_and_field(app_factory):
    app = app_factory((200, {"status": "ok", "version": "4.2.6-3.el5"}))
    r = call(FakeSystem(), "health", "http", url=app.url, field="version", expect="4.2.6-3.el5")
    assert r.status == "ok"
    assert r.data["attempts"] == 1 and r.data["last"]["version"] == "4.2.6-3.el5" and r.data["waited"] == 0


def test_http_loops_until_the_app_reports_the_version(app_factory):
    app = app_factory((200, {"version": "4.2.5-1.el5"}), (200, {"version": "4.2.5-1.el5"}), (200, {"version": "4.2.6-3.el5"}))
    fake = FakeSystem()
    r = call(fake, "health", "http", url=app.url, field="version", expect="4.2.6-3.el5", deadline=100, interval=10)
    assert r.status == "ok" and r.data["attempts"] == 3 and r.data["waited"] == 20.0
    assert fake.sleeps == [10, 10]


def test_http_gives_up_at_the_deadline(app_factory):
    app = app_factory((500, {"status": "failing", "version": "4.2.6-3.el5"}))
    fake = FakeSystem()
    r = call(fake, "health", "http", url=app.url, deadline=100, interval=10)
    assert r.status == "failed"
    assert r.data["attempts"] == 11 and r.data["waited"] == 100.0 and r.data["passed"] is False
    assert "answered 500, expected 200" in r.message and "after 11 attempts in 100.0 s" in r.message


def test_http_tries_limit_body_and_expected_status(app_factory):
    app = app_factory((503, "maintenance"))
    fake = FakeSystem()
    r = call(fake, "health", "http", url=app.url, tries=3, interval=1)
    assert r.status == "failed" and r.data["attempts"] == 3
    r = call(fake, "health", "http", url=app.url, expect_status=503, body="maint")
    assert r.status == "ok"
    r = call(fake, "health", "http", url=app.url, expect_status=503, body="nope")
    assert r.status == "failed" and "body lacks" in r.message


def test_http_unreachable_and_missing_field(app_factory):
    r = call(FakeSystem(), "health", "http", url="http://127.0.0.1:9/health")
    assert r.status == "failed" and r.data["last"]["status"] is None
    app = app_factory((200, {"status": "ok"}))
    r = call(FakeSystem(), "health", "http", url=app.url, field="version", expect="1")
    assert r.status == "failed" and "no JSON field 'version'" in r.message


def test_dig():
    assert health.dig({"a": {"b": [1, {"c": 2}]}}, "a.b.1.c") == 2
    with pytest.raises(KeyError):
        health.dig({"a": 1}, "a.b")


def nagios_host(*rcs):
    seq = list(rcs)
    fake = FakeSystem()
    outputs = {0: "OK - load average: 0.10", 1: "WARNING - load average: 5.0", 2: "CRITICAL - load average: 9.0"}
    fake.on(r"check_load", lambda _l: (seq[0] if len(seq) == 1 else seq.pop(0), outputs.get(seq[0], "?") + "\n", ""))
    return fake


def test_command_states_and_ok_on():
    r = call(nagios_host(0), "health", "command", command="/usr/lib/nagios/plugins/check_load -w 5 -c 8")
    assert r.status == "ok" and r.data["last"]["state"] == "OK"
    r = call(nagios_host(1), "health", "command", command="/usr/lib/nagios/plugins/check_load")
    assert r.status == "failed" and "WARNING" in r.message
    r = call(nagios_host(1), "health", "command", command="/usr/lib/nagios/plugins/check_load", ok_on="WARNING")
    assert r.status == "ok"
    r = call(nagios_host(0), "health", "command", command="check_load", ok_on="BOGUS")
    assert r.status == "failed" and "ok_on" in r.message


def test_command_retries_until_ok_like_the_nrpe_load_check():
    fake = nagios_host(2, 2, 0)
    r = call(fake, "health", "runcommand", command="/usr/lib/nagios/plugins/check_load", tries=10, interval=10)
    assert r.status == "ok" and r.data["attempts"] == 3 and fake.sleeps == [10, 10]


def test_command_by_nrpe_name():
    fake = nagios_host(0)
    fake.files["/etc/nagios/nrpe.cfg"] = "command[check_load]=/usr/lib/nagios/plugins/check_load -w 15,10,5 -c 30,25,20\n"
    r = call(fake, "health", "command", command="check_load")
    assert r.status == "ok"
    assert fake.calls == ["/usr/lib/nagios/plugins/check_load -w 15,10,5 -c 30,25,20"]


def test_load_below_threshold_after_settling():
    loads = iter([(6.0, 3, 1), (4.5, 3, 1), (1.5, 3, 1)])
    fake = FakeSystem(load=lambda: next(loads))
    r = call(fake, "health", "load", threshold=2, deadline=100, interval=10)
    assert r.status == "ok" and r.data["attempts"] == 3 and r.data["last"] == {"load1": 1.5, "threshold": 2.0}
    r = call(FakeSystem(load=(9.0, 9, 9)), "health", "load", threshold=2)
    assert r.status == "failed" and r.data["attempts"] == 1 and "load 9.00 not below 2" in r.message
