"""health agent: checks loop on the host until pass or deadline (fake clock: no real waiting)."""
import json
import pathlib
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from test_agents_fakes import FakeSystem, call  # noqa: E402

from orchestrator_lib.host import core

from orchestrator_lib.host.agents import health  # noqa: E402


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


class TimedFake(FakeSystem):
    """The fake host with the machine's clock, for timing real requests to the local App."""
    def monotonic(self):
        import time
        return time.monotonic()


def test_latency_times_each_answer_after_an_untimed_warm_up(app_factory):
    app = app_factory((200, {"status": "ok"}))
    r = call(TimedFake(), "health", "latency", url=app.url, samples=5)
    assert r.status == "ok" and app.hits == 6              # the warm-up + 5 timed
    assert len(r.data["samples_ms"]) == 5 and r.data["asked"] == 5 and r.data["other"] == {}
    assert all(0 < ms < 2000 for ms in r.data["samples_ms"]) and "median" in r.message


def test_latency_keeps_only_expected_answers_and_says_what_the_rest_were(app_factory):
    app = app_factory((200, {}), (200, {}), (200, {}), (500, {"status": "failing"}))   # warm-up, 2 timed, then 500s
    r = call(TimedFake(), "health", "latency", url=app.url, samples=4)
    assert r.status == "failed" and len(r.data["samples_ms"]) == 2 and r.data["other"] == {"500": 2}
    assert "2 of 4 requests" in r.message
    r = call(TimedFake(), "health", "latency", url="http://127.0.0.1:9/health", samples=3, timeout=0.5)
    assert r.status == "failed" and r.data["samples_ms"] == [] and r.data["other"] == {"no answer": 3}


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


def bounded_host():
    """A fake host whose sleeps stop a runaway loop instead of hanging the test run."""
    fake = FakeSystem(load=(9.0, 9, 9))

    def guard(_seconds):
        if len(fake.sleeps) > 50:
            raise AssertionError("the check kept looping")
    fake.on_sleep = guard
    return fake


@pytest.mark.parametrize("args,why", [
    ({"deadline": "nan"}, "argument 'deadline' must be a finite number, got 'nan'"),
    ({"deadline": float("nan")}, "argument 'deadline' must be a finite number"),
    ({"deadline": "inf"}, "argument 'deadline' must be a finite number"),
    ({"deadline": 0}, "deadline must be more than 0 and at most 3600 s, got 0"),
    ({"deadline": -5}, "deadline must be more than 0 and at most 3600 s, got -5"),
    ({"deadline": 3601}, "deadline must be more than 0 and at most 3600 s, got 3601"),
    ({"tries": "nan"}, "argument 'tries' must be a finite number"),
    ({"tries": 2.5}, "tries must be a whole number of at least 1"),
    ({"interval": "nan", "deadline": 10}, "argument 'interval' must be a finite number"),
    ({"interval": -1, "deadline": 10}, "interval must not be negative"),
])
def test_loop_limits_are_validated_before_any_check(args, why):
    fake = bounded_host()
    r = call(fake, "health", "load", threshold=2, **args)
    assert r.status == "failed" and r.message.startswith(f"health#load: {why}") and fake.sleeps == []


def test_the_longest_deadline_is_accepted():
    fake = FakeSystem(load=(9.0, 9, 9))
    r = call(fake, "health", "load", threshold=2, deadline=health.MAX_DEADLINE, interval=600)
    assert r.status == "failed" and r.data["attempts"] == 7 and r.data["waited"] == 3600.0


def test_http_reply_never_shows_url_secrets():
    url = "http://admin:S3cretPW@127.0.0.1:9/health?token=TOK123&field=version"
    r = call(FakeSystem(), "health", "http", url=url)
    shown = json.dumps(r.to_obj())
    assert r.status == "failed" and "http://***@127.0.0.1:9/health?token=***&field=version" in r.message
    assert "S3cretPW" not in shown and "TOK123" not in shown and "admin" not in shown
    r = call(FakeSystem(), "health", "http", url="ftp://admin:S3cretPW@h/")
    assert r.status == "failed" and "S3cretPW" not in r.message


def test_command_output_in_the_reply_is_redacted():
    fake = FakeSystem().on(r"check_db", (2, "CRITICAL - login failed for db password=hunter3\n", ""))
    r = call(fake, "health", "command", command="/usr/lib/nagios/plugins/check_db")
    assert r.status == "failed" and "hunter3" not in json.dumps(r.to_obj()) and "password=***" in r.message


@pytest.mark.parametrize("deadline,interval", [(float("nan"), 1.0), (float("inf"), 1.0), (3601.0, 1.0),
                                               (-1.0, 1.0), (10.0, float("nan"))])
def test_poll_itself_refuses_a_loop_that_would_not_end(deadline, interval):
    """Other agents (appmgr) call poll with their own deadline: the bound holds there too."""
    fake = bounded_host()
    with core.use_system(fake), pytest.raises(core.ActionError, match="must be a"):
        health.poll(lambda left: health.load_verdict(1.0), tries=None, interval=interval, deadline=deadline)
    assert fake.sleeps == []
