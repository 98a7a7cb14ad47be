"""health: checks that loop ON the host until they pass or a deadline passes ("keep checking the
load for up to 100 s"): one SSH round trip per check however long it waits, and the verdict is
taken where the service lives. Reads only; never changes the host.

A check's loop is bounded: `deadline` is at most MAX_DEADLINE seconds (the controller's call would
give up long before), and tries/deadline/interval must be finite numbers. The URL and command
output in the reply's data are redacted here (audit.redact_text); messages, as every agent's, in
core.dispatch: the console, reports and audit logs show them."""
from __future__ import annotations

import functools
import json
import math
import os
import re
from collections import namedtuple

from .. import audit, core
from ..core import ActionError, Reply, Request

TYPE_CHECKING = False  # as in core: annotations only, typing costs every run
if TYPE_CHECKING:
    from typing import Any, Callable

agent = core.Agent(__name__, "http, command (nrpe-style), load checks with tries/deadline; latency samples")

NAGIOS = {0: "OK", 1: "WARNING", 2: "CRITICAL", 3: "UNKNOWN"}
NRPE_CONFIGS = ("/etc/nagios/nrpe.cfg", "/etc/nagios/nrpe_local.cfg")
NRPE_DIR = "/etc/nagios/nrpe.d"
CHECK_NAME = re.compile(r"[A-Za-z0-9_.-]+")  # matched whole (fullmatch)
#: The longest a check may loop on the host (seconds): one hour.
MAX_DEADLINE = 3600.0


class Verdict(namedtuple("Verdict", "passed detail summary")):
    """One check's result: passed or not, a detail dict for the reply's data, a one-line summary."""
    __slots__ = ()


def poll(check: Callable[[float], Verdict], *, tries: int | None, interval: float,
         deadline: float | None) -> tuple[Verdict, dict[str, Any]]:
    """Run `check(remaining_seconds)` until it passes, `tries` run out, or `deadline` s passed.
    Neither limit given = one try. A deadline or interval that would never end the loop (NaN,
    infinite, past MAX_DEADLINE) is refused, whichever agent asks (appmgr polls too)."""
    if deadline is not None and not (math.isfinite(deadline) and 0 <= deadline <= MAX_DEADLINE):
        raise ActionError(f"deadline must be a number from 0 to {MAX_DEADLINE:g} s, got {deadline:g}")
    if not (math.isfinite(interval) and interval >= 0):
        raise ActionError(f"interval must be a finite number of seconds, got {interval:g}")
    sys_ = core.system()
    start = sys_.monotonic()
    if tries is None and deadline is None:
        tries = 1
    attempts = 0
    while True:
        elapsed = sys_.monotonic() - start
        remaining = (deadline - elapsed) if deadline is not None else 3600.0
        verdict = check(max(remaining, 0.1))
        attempts += 1
        elapsed = sys_.monotonic() - start
        out_of_tries = tries is not None and attempts >= tries
        out_of_time = deadline is not None and elapsed + interval > deadline
        if verdict.passed or out_of_tries or out_of_time:
            break
        sys_.sleep(interval)
    return verdict, {"attempts": attempts, "last": verdict.detail, "waited": round(sys_.monotonic() - start, 3),
                     "passed": verdict.passed}


def _loop_args(req: Request) -> dict[str, Any]:
    """tries/deadline/interval, checked: NaN or infinity would loop forever (NaN compares false)."""
    tries = _finite(req, "tries")
    deadline = _finite(req, "deadline")
    interval = _finite(req, "interval", 1.0)
    if tries is not None and (tries < 1 or tries != int(tries)):
        raise ActionError(f"{req.label}: tries must be a whole number of at least 1")
    if deadline is not None and not 0 < deadline <= MAX_DEADLINE:
        raise ActionError(f"{req.label}: deadline must be more than 0 and at most {MAX_DEADLINE:g} s, got {deadline:g}")
    if interval < 0:
        raise ActionError(f"{req.label}: interval must not be negative")
    return {"tries": None if tries is None else int(tries), "interval": interval, "deadline": deadline}


def _finite(req: Request, name: str, default: float | None = None) -> float | None:
    value = req.float_arg(name, default)
    if value is not None and not math.isfinite(value):
        raise ActionError(f"{req.label}: argument '{name}' must be a finite number, got {req.args.get(name)!r}")
    return value


def _reply(req: Request, verdict: Verdict, data: dict[str, Any]) -> Reply:
    n, waited = data["attempts"], data["waited"]
    when = f"after {n} attempt{'s' if n != 1 else ''} in {waited:.1f} s"
    if verdict.passed:
        return Reply.ok(f"{verdict.summary} ({when})", data=data)
    return Reply.failed(f"{req.label} failed {when}: {verdict.summary}", data=data)


# --------------------------------------------------------------------------- http

def dig(obj: Any, path: str) -> Any:
    """`a.b.0.c` into nested JSON; KeyError when absent."""
    for part in path.split("."):
        if isinstance(obj, list) and part.isdigit() and int(part) < len(obj):
            obj = obj[int(part)]
        elif isinstance(obj, dict) and part in obj:
            obj = obj[part]
        else:
            raise KeyError(path)
    return obj


@functools.lru_cache(maxsize=1)
def opener():
    """Without proxies: health URLs are the host's own services, a proxy from the environment
    would answer for them. Imported lazily: urllib pulls in ssl and email (~50 ms per run)."""
    import urllib.request
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def fetch(url: str, timeout: float) -> tuple[int | None, str, str]:
    """(status, body, error). HTTP errors are answers too: a 500 has a status and a body."""
    import urllib.error
    import urllib.request
    try:
        with opener().open(urllib.request.Request(url, headers={"User-Agent": "orchestrator-health"}),
                          timeout=timeout) as resp:
            return resp.status, resp.read(1 << 20).decode(errors="replace"), ""
    except urllib.error.HTTPError as e:
        body = e.read(1 << 20).decode(errors="replace") if e.fp else ""
        return e.code, body, ""
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        return None, "", core.one_line(reason, 200)


def http_verdict(url: str, timeout: float, expect_status: int = 200, field: str | None = None,
                 expect: str | None = None, body: str | None = None) -> Verdict:
    status, text, error = fetch(url, timeout)
    url = audit.redact_text(url)  # from here on only shown, never fetched
    detail: dict[str, Any] = {"url": url, "status": status}
    if status is None:
        detail["error"] = error
        return Verdict(False, detail, f"{url}: {error}")
    if field:
        try:
            value = dig(json.loads(text), field)
            detail[field] = value
        except (ValueError, KeyError):
            detail[field] = None
            detail["error"] = f"no JSON field {field!r}"
    if status != expect_status:
        return Verdict(False, detail, f"{url} answered {status}, expected {expect_status}")
    if field and "error" in detail:
        return Verdict(False, detail, f"{url}: {detail['error']}")
    if field and expect is not None and str(detail[field]) != str(expect):
        return Verdict(False, detail, f"{url} reports {field} {detail[field]}, expected {expect}")
    if body is not None and body not in text:
        return Verdict(False, detail, f"{url} body lacks {body!r}")
    said = f" {field}={detail[field]}" if field else ""
    return Verdict(True, detail, f"{url} answered {status}{said}")


@agent.action
def http(req: Request) -> Reply:
    url = req.str_arg("url")
    if not url.startswith(("http://", "https://")):
        raise ActionError(f"{req.label}: url must be http(s), got {url!r}")
    expect_status = req.int_arg("expect_status", 200)
    field, expect, body = req.str_arg("field", None), req.str_arg("expect", None), req.str_arg("body", None)
    timeout = req.float_arg("timeout", 5.0)
    verdict, data = poll(lambda left: http_verdict(url, min(timeout, left), expect_status, field, expect, body),
                         **_loop_args(req))
    return _reply(req, verdict, data)


# --------------------------------------------------------------------------- latency

@agent.action
def latency(req: Request) -> Reply:
    """`samples` timed GETs of the URL, one after another (ms, rounded to 0.01), for the canary
    judgement: only answers with `expect_status` are samples, since a failing health answer says
    nothing about how fast a healthy one is. One untimed GET first: the agent's first request
    pays for importing urllib (~50 ms), which no sample should carry; `interval` seconds before
    each sample, the first too, so hosts sampled together are past their warm-ups when timing. Ok when every request gave
    a sample; failed otherwise, with the samples it got in the data either way."""
    url = req.str_arg("url")
    if not url.startswith(("http://", "https://")):
        raise ActionError(f"{req.label}: url must be http(s), got {url!r}")
    count = req.int_arg("samples", 20)
    expect_status = req.int_arg("expect_status", 200)
    timeout = req.float_arg("timeout", 2.0)
    interval = req.float_arg("interval", 0.0)
    sys_ = core.system()
    fetch(url, timeout)  # the warm-up, untimed
    samples: list[float] = []
    other: dict[str, int] = {}
    error = ""
    for _ in range(count):
        if interval:  # before the first one too: the other hosts' warm-ups are over by then
            sys_.sleep(interval)
        start = sys_.monotonic()
        status, _body, error_now = fetch(url, timeout)
        took = round((sys_.monotonic() - start) * 1000, 2)
        if status == expect_status:
            samples.append(took)
        else:
            key = "no answer" if status is None else str(status)
            other[key] = other.get(key, 0) + 1
            error = error_now or f"answered {status}"
    shown = audit.redact_text(url)
    data = {"url": shown, "samples_ms": samples, "asked": count, "other": other}
    if len(samples) == count:
        ordered = sorted(samples)
        median = (ordered[(count - 1) // 2] + ordered[count // 2]) / 2
        return Reply.ok(f"{count} samples of {shown}: median {median:.2f} ms", data=data)
    missing = ", ".join(f"{n} {what}" for what, n in sorted(other.items()))
    return Reply.failed(f"{req.label}: {len(samples)} of {count} requests to {shown} answered {expect_status} "
                        f"({missing}; last: {error})", data=data)


# --------------------------------------------------------------------------- command (nrpe)

def nrpe_command(name: str) -> str | None:
    """`command[NAME]=...` from the host's NRPE configuration, as MCollective's nrpe agent did."""
    sys_ = core.system()
    files = list(NRPE_CONFIGS)
    if sys_.exists(NRPE_DIR):
        try:
            files += sorted(os.path.join(NRPE_DIR, f) for f in os.listdir(NRPE_DIR) if f.endswith(".cfg"))
        except OSError:
            pass
    found = None
    for path in files:
        for line in (sys_.read_text(path) or "").splitlines():
            m = re.match(r"^\s*command\[([^\]]+)\]\s*=\s*(.+)$", line)
            if m and m.group(1) == name:
                found = m.group(2).strip()  # later definitions win, as in nrpe
    return found


def command_verdict(cmd: str, timeout: float, accept: set[str]) -> Verdict:
    r = core.run(cmd, timeout=timeout)
    state = NAGIOS.get(r.rc, "UNKNOWN")
    output = audit.redact_text(next((ln.strip() for ln in r.stdout.splitlines() if ln.strip()), r.stderr.strip()[:200]))
    detail = {"rc": r.rc, "state": state, "output": core.one_line(output, 300)}
    return Verdict(state in accept, detail, f"{state}: {core.one_line(output, 200)}")


@agent.action
def command(req: Request) -> Reply:
    """A Nagios plugin or any command: exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    A bare name found as command[NAME] in the NRPE config runs that definition."""
    cmd = req.str_arg("command")
    if CHECK_NAME.fullmatch(cmd):
        cmd = nrpe_command(cmd) or cmd
    accept = {"OK"} | {s.upper() for s in req.list_arg("ok_on", [])}
    unknown = accept - set(NAGIOS.values())
    if unknown:
        raise ActionError(f"{req.label}: ok_on takes WARNING, CRITICAL or UNKNOWN, not {', '.join(sorted(unknown))}")
    timeout = req.float_arg("timeout", 30.0)
    if req.dry_run:  # what a command does is known only by running it
        return Reply.done(True, f"would run {audit.redact_text(core.one_line(cmd, 200))}", dry_run=True)
    verdict, data = poll(lambda left: command_verdict(cmd, min(timeout, left), accept), **_loop_args(req))
    return _reply(req, verdict, data)


# --------------------------------------------------------------------------- load

def load_verdict(threshold: float) -> Verdict:
    load1 = core.system().loadavg()[0]
    detail = {"load1": round(load1, 2), "threshold": threshold}
    if load1 < threshold:
        return Verdict(True, detail, f"load {load1:.2f} below {threshold:g}")
    return Verdict(False, detail, f"load {load1:.2f} not below {threshold:g}")


@agent.action
def load(req: Request) -> Reply:
    """1-minute load average below `threshold` (default: the number of CPUs)."""
    threshold = req.float_arg("threshold", float(os.cpu_count() or 1))
    verdict, data = poll(lambda left: load_verdict(threshold), **_loop_args(req))
    return _reply(req, verdict, data)
