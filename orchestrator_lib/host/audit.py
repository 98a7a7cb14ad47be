"""The host's own audit trail: one JSON line per request, whoever sent it and whatever came of it
(MCollective's AAA audit log). Secrets in arguments and messages never reach the file: redact() and
redact_text() are the one redaction, used by the controller's central audit log and the agents' replies too."""
from __future__ import annotations

import json
import os
import re
import sys
import time

from . import core

TYPE_CHECKING = False  # as in core: annotations only, typing costs every run
if TYPE_CHECKING:
    from typing import Any

AUDIT_PATH = "/var/log/orchestrator/audit.jsonl"
#: Only for running the agent off-host (tests, a developer's shell): hosts use AUDIT_PATH.
AUDIT_ENV = "ORCHESTRATOR_AUDIT_LOG"
REDACTED = "***"
#: Argument names (and `name=value` / `name: value` in free text, URL query parameters) whose
#: values are secrets.
SECRET_WORD = (r"pass(?:word|wd|phrase)?|secret|token|credential|cookie|authori[sz]ation|auth(?!or)|private"
               r"|signature|apikey|(?<![a-z])key(?!word)|(?<![a-z])(?:pwd?|sig)(?![a-z])")  # api_key; not monkey
SECRET_KEY = re.compile(SECRET_WORD, re.IGNORECASE)
#: Arguments holding webhook URLs: their path is the secret (Slack-style /T0/B0/XXXX).
WEBHOOK_KEY = re.compile(r"hook", re.IGNORECASE)
#: scheme://[userinfo@]host[rest]; userinfo runs to the last @ before the path (`p@ss` unencoded).
URL = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<userinfo>[^/?#\s]*@)?(?P<host>[^/?#\s\"'<>]*)"
                 r"(?P<rest>[^\s\"'<>]*)", re.IGNORECASE)
#: `name=value`, `name: value`, `"name": "value"` in free text (outside URLs).
#: Only names holding a secret word match, so `failed: password=x` finds `password=x` (a match
#: on `failed:` would swallow it as its value).
KEY_VALUE = re.compile(rf"(?P<key>[\w.-]*?(?:{SECRET_WORD})[\w.-]*)(?P<sep>[\"']?\s*[=:]\s*[\"']?)"
                       r"(?P<value>(?<=\")[^\"]+|(?<=')[^']+|[^\s&;,\"']+)", re.IGNORECASE)
#: one `name=value` of a URL's query string
QUERY_PAIR = re.compile(r"(?P<key>[^&=#]+)(?P<sep>=)(?P<value>[^&#]*)")
BEARER = re.compile(r"\b(?P<scheme>bearer|basic)\s+[\w.~+/=-]+", re.IGNORECASE)


def redact(value: Any, key: str = "") -> Any:
    """Args with secret-looking keys become "***" (at any depth); strings are redacted as free
    text (redact_text), and URLs under a webhook-looking key lose their path too."""
    if key and SECRET_KEY.search(key):
        return REDACTED
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v, key) for v in value]
    if isinstance(value, str):
        return redact_text(value, webhook=bool(key and WEBHOOK_KEY.search(key)))
    return value


def redact_text(text: str, webhook: bool = False) -> str:
    """The one redaction for free text (messages, argument values): URL passwords, secret query
    parameters and `secret=value` pairs become "***"; a webhook URL (`webhook`, or one that looks
    like a hook) keeps only scheme://host."""
    if not isinstance(text, str) or not text:
        return text
    out, last = [], 0
    for m in URL.finditer(text):
        out += [_redact_free(text[last:m.start()]), _redact_url(m, webhook)]
        last = m.end()
    out.append(_redact_free(text[last:]))
    return "".join(out)


def _redact_free(text: str) -> str:
    text = BEARER.sub(lambda m: f"{m.group('scheme')} {REDACTED}", text)
    return KEY_VALUE.sub(_redact_pair, text)


def _redact_url(m: "re.Match[str]", webhook: bool) -> str:
    """scheme://host stays; userinfo goes; secret query values go; a hook's path goes."""
    rest = m.group("rest")
    tail = rest[len(rest.rstrip(".,;:)]")):]  # sentence punctuation after the URL
    rest = rest[:len(rest) - len(tail)]
    path, question, query = rest.partition("?")
    if rest and (webhook or "hook" in (m.group("host") + path).lower()):
        path, question, query = "/" + REDACTED, "", ""
    userinfo = REDACTED + "@" if m.group("userinfo") else ""
    return m.group("scheme") + userinfo + m.group("host") + path + question + QUERY_PAIR.sub(_redact_pair, query) + tail


def _redact_pair(m: "re.Match[str]") -> str:
    if not SECRET_KEY.search(m.group("key")) or m.group("value") == REDACTED:
        return m.group(0)
    return m.group("key") + m.group("sep") + REDACTED


def utc_iso(ts: float) -> str:
    """ISO 8601 in UTC to the millisecond, `2023-11-14T22:13:20.123+00:00` (datetime would add ~1 ms
    to every run for this one line)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}+00:00"


def entry(req: "core.Request", reply: "core.Reply", identity: Any, duration: float = 0.0) -> dict[str, Any]:
    now = core.system().time()
    return {
        "time": utc_iso(now),
        "reqid": req.reqid,
        "caller": req.caller,
        "key": getattr(identity, "label", None),
        "user": getattr(identity, "user", "") or None,
        "agent": req.agent,
        "action": req.action,
        "args": redact(req.args),
        "status": reply.status,
        "changed": bool(reply.changed),
        "message": redact_text(core.one_line(reply.message)),
        "duration": round(duration, 3),
    }


def record(req: "core.Request", reply: "core.Reply", identity: Any, duration: float = 0.0,
           env: dict[str, str] | None = None, path: str | None = None) -> None:
    """Append one line. A log that cannot be written warns on stderr but never hides the reply."""
    env = os.environ if env is None else env
    path = path or env.get(AUDIT_ENV) or AUDIT_PATH
    line = json.dumps(entry(req, reply, identity, duration), default=str, sort_keys=False) + "\n"
    try:
        os.makedirs(os.path.dirname(path) or ".", mode=0o750, exist_ok=True)
        # One write() on an O_APPEND descriptor: concurrent agents never interleave lines.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, line.encode("utf-8"))
        finally:
            os.close(fd)
    except OSError as e:
        print(f"warning: cannot write audit log {path}: {e}", file=sys.stderr)
