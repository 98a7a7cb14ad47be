"""The one redaction of secrets, for the host's audit log and replies and the controller's central
audit log alike (host side: stdlib only, imports nothing else from the package).

Why it is built this way:
- Bounded input, linear time. Text is cut at MAX_TEXT characters first, and every pattern starts
  only at a token boundary (a look-behind) and uses possessive quantifiers, so no pattern rescans
  a run of characters from each position in it (the old `[\\w.-]*?secret[\\w.-]*` took 410 s on
  64k word characters). A unit test times 64k-character inputs of every shape.
- Names, not substrings. A name (an argument key, `name=value` in text, `--name value`, a query
  parameter) is secret when one of its words (split at `_ - .`, camelCase, digits) is a secret
  word, or ends in one (`dbpassword`, `accesstoken`): `tokenizer`, `bypass`, `compass`, `keyword`,
  `author` stay readable.
- JSON structurally. Text that is a JSON object or list is parsed and redacted key by key, so a
  `"tokens": ["a", "b"]` loses both values, whatever the formatting.
"""
from __future__ import annotations

import functools  # loaded by re anyway
import json
import math
import re

TYPE_CHECKING = False  # as in core: annotations only, typing costs every run
if TYPE_CHECKING:
    from typing import Any

REDACTED = "***"
#: Longer text is cut here (with a marker saying how much went) before any pattern runs.
MAX_TEXT = 65536
#: Deeper structures are replaced whole: nothing legitimate nests this far.
MAX_DEPTH = 32
#: Words that make a name secret: the whole word, or (SECRET_SUFFIXES) its end.
SECRET_WORDS = frozenset({
    "pass", "password", "passwd", "passphrase", "pw", "pwd", "secret", "token", "credential",
    "cookie", "authorization", "authorisation", "auth", "private", "signature", "sig", "apikey",
    "key", "session", "sessionid", "jwt", "bearer", "otp", "pin", "privkey", "passcode", "salt"})
SECRET_SUFFIXES = ("password", "passwd", "passphrase", "secret", "token", "apikey", "credential",
                   "cookie", "sessionid", "privkey", "passcode")
#: Only in a URL's query or fragment: OAuth's one-time code and state.
URL_SECRET_WORDS = frozenset({"code", "state"})
#: Arguments holding webhook URLs: their path is the secret (Slack-style /T0/B0/XXXX).
WEBHOOK_KEY = re.compile(r"hook", re.IGNORECASE)
_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])")


@functools.lru_cache(maxsize=2048)
def secret_name(name: str, url: bool = False) -> bool:
    """Is a value under this name a secret? Decided on the name's words, see the module doc."""
    name = name[:256]
    for word in _WORD.findall(name):
        word = word.lower()
        stem = word[:-1] if word.endswith("s") and len(word) > 3 else word
        if stem in SECRET_WORDS or word in SECRET_WORDS or stem.endswith(SECRET_SUFFIXES):
            return True
        if url and word in URL_SECRET_WORDS:
            return True
    return False


def _finite(value: float) -> Any:
    """JSON has no NaN or Infinity: audit lines say "nan"/"inf" as strings instead."""
    return value if math.isfinite(value) else str(value)


def redact(value: Any, key: str = "", _depth: int = 0) -> Any:
    """A copy of `value` for logs: values under secret names become "***" (at any depth), strings
    are redacted as text (redact_text), URLs under a webhook-looking name lose their path, and
    non-finite floats become strings."""
    if key and secret_name(key):
        return REDACTED
    if _depth > MAX_DEPTH:
        return REDACTED
    if isinstance(value, dict):
        return {str(k): redact(v, str(k), _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v, key, _depth + 1) for v in value]
    if isinstance(value, str):
        return redact_text(value, webhook=bool(key and WEBHOOK_KEY.search(key)))
    if isinstance(value, float):
        return _finite(value)
    if value is None or isinstance(value, (bool, int)):
        return value
    return redact_text(str(value))


# --------------------------------------------------------------------------- free text

#: scheme://[userinfo@]host[rest]; the scheme starts at a boundary; userinfo runs to the last @
#: before the path (`p@ss` unencoded).
URL = re.compile(r"(?<![A-Za-z0-9+.-])(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*+://)"
                 r"(?P<userinfo>[^/?#\s]*@)?"
                 r"(?P<host>[^/?#\s\"'<>]*+)(?P<rest>[^\s\"'<>]*+)")
#: one `name=value` of a query string or fragment
QUERY_PAIR = re.compile(r"(?:^|(?<=[&;]))(?P<key>[^&;=#]++)(?P<sep>=)(?P<value>[^&;#]*+)")
#: PEM private keys, whole (to the end of the text when the END line is missing).
PEM = re.compile(r"-----BEGIN (?P<kind>[A-Z0-9 ]{0,40})PRIVATE KEY-----(?:(?!-----END )[\s\S])*+"
                 r"(?:-----END [A-Z0-9 ]{0,40}PRIVATE KEY-----)?")
#: Header-like lines whose whole value is the secret: `Authorization: Token X`, `Cookie: a=b; c=d`.
HEADER = re.compile(r"(?<![\w-])(?P<key>(?:proxy-)?authori[sz]ation|x-api-key|x-auth-token)"
                    r"(?P<sep>[\"']?[ \t]*+[:=][ \t]*+[\"']?)(?P<value>(?:[A-Za-z-]++[ \t]++)?[^\s\"',]++)"
                    r"|(?<![\w-])(?P<ckey>(?:set-)?cookie)(?P<csep>[\"']?[ \t]*+:[ \t]*+[\"']?)(?P<cvalue>[^\r\n\"']++)",
                    re.IGNORECASE)
BEARER = re.compile(r"(?<![\w-])(?P<scheme>bearer|basic)[ \t]++(?!-)[\w.~+/=-]++", re.IGNORECASE)
#: `--password X`, `--password=X`, `-password X`: a secret-named option, then (OPTION_VALUE) its value.
OPTION = re.compile(r"(?<![\w-])(?P<key>--?[A-Za-z][\w-]*+)(?:=|[ \t]++)")
OPTION_VALUE = re.compile(r"(?!-)[^\s\"']++")
#: `mysql -pX`: the password glued to -p, when mysql or mariadb comes before it on its line.
MYSQL_P = re.compile(r"(?<![\w-])-p(?P<value>[^\s\"']++)")


def _after_mysql(low: str, at: int) -> bool:
    """Does `mysql` or `mariadb` come before `at`, on the same line, at most 200 characters back?"""
    start = max(0, at - 200, low.rfind("\n", 0, at) + 1)
    return low.rfind("mysql", start, at) >= 0 or low.rfind("mariadb", start, at) >= 0
#: `curl -u user:X`, `--user user:X`
USER_OPTION = re.compile(r"(?<![\w-])(?P<key>-u|--user|--proxy-user)(?P<sep>[ \t]++|=)"
                         r"(?P<user>[^\s:\"']++):(?P<value>[^\s\"']++)")
#: `user:X@host` without a scheme (`admin:X@db:5432`).
USERINFO = re.compile(r"(?<![\w.:/@%+-])(?P<user>[\w.+-]++):(?P<value>[^\s@/:\"']++)@(?=[\w\[])")
#: `name=value`, `name: value`, `"name": "value"`, `"name": [..]`: the name is a whole token; its
#: value (KV_VALUE) is redacted only when the name is secret (see _pairs).
KEY_VALUE = re.compile(r"(?<![\w.-])(?P<key>[\w.-]++)[\"']?[ \t]*+[=:][ \t]*+[\"']?")
KV_VALUE = re.compile(r"(?<=\")[^\"]++|(?<=')[^']++|\[[^\[\]]*+\]|\{[^{}]*+\}|[^\s&;,\"']++")

def truncate(text: str, limit: int = MAX_TEXT) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"...[{len(text) - limit} characters cut]"


def redact_text(text: str, webhook: bool = False) -> str:
    """The one redaction of free text (messages, argument values, command output): see the module
    doc. A webhook URL (`webhook`, or one whose host or path says hook) keeps only scheme://host."""
    if not isinstance(text, str) or not text:
        return text
    text = truncate(text)
    stripped = text.strip()
    if stripped[:1] in ("{", "[") and stripped[-1:] in ("}", "]"):
        try:
            parsed = json.loads(stripped)
        except (ValueError, RecursionError):
            pass
        else:
            return json.dumps(redact(parsed))
    if "://" not in text:
        return _redact_free(text)
    out, last = [], 0
    for m in URL.finditer(text):
        out += [_redact_free(text[last:m.start()]), _redact_url(m, webhook)]
        last = m.end()
    out.append(_redact_free(text[last:]))
    return "".join(out)


def _redact_free(text: str) -> str:
    """Each pattern runs only when its literal trigger is in the text (most text has none)."""
    if not text:
        return text
    low = text.lower()
    if "private key-----" in low:
        text = PEM.sub(lambda m: f"-----BEGIN {m.group('kind')}PRIVATE KEY-----{REDACTED}"
                                 f"-----END {m.group('kind')}PRIVATE KEY-----", text)
    if "-p" in text and ("mysql" in low or "mariadb" in low):
        text = MYSQL_P.sub(lambda m, low=text.lower(): "-p" + REDACTED if _after_mysql(low, m.start())
                           else m.group(0), text)
    if "-" in text:
        if "-u" in text:
            text = USER_OPTION.sub(lambda m: f"{m.group('key')}{m.group('sep')}{m.group('user')}:{REDACTED}", text)
        text = _pairs(text, OPTION, OPTION_VALUE)
    if "authori" in low or "cookie" in low or "x-a" in low:
        text = HEADER.sub(lambda m: (m.group("key") or m.group("ckey")) + (m.group("sep") or m.group("csep"))
                          + REDACTED, text)
    if "bearer" in low or "basic" in low:
        text = BEARER.sub(lambda m: f"{m.group('scheme')} {REDACTED}", text)
    if "@" in text:
        text = USERINFO.sub(lambda m: f"{m.group('user')}:{REDACTED}@", text)
    if "=" in text or ":" in text:
        text = _pairs(text, KEY_VALUE, KV_VALUE)
    return text


def _redact_url(m: "re.Match[str]", webhook: bool) -> str:
    """scheme://host stays; userinfo goes; secret query and fragment values go; a hook's path goes."""
    rest = m.group("rest")
    tail = rest[len(rest.rstrip(".,;:)]")):]  # sentence punctuation after the URL
    rest = rest[:len(rest) - len(tail)]
    rest, hash_, fragment = rest.partition("#")
    path, question, query = rest.partition("?")
    if (path or query or fragment) and (webhook or "hook" in (m.group("host") + path).lower()):
        path, question, query, hash_, fragment = "/" + REDACTED, "", "", "", ""
    userinfo = REDACTED + "@" if m.group("userinfo") else ""
    return (m.group("scheme") + userinfo + m.group("host") + path + question
            + QUERY_PAIR.sub(_redact_url_pair, query) + hash_ + QUERY_PAIR.sub(_redact_url_pair, fragment) + tail)


def _redact_url_pair(m: "re.Match[str]") -> str:
    if not secret_name(m.group("key"), url=True) or m.group("value") == REDACTED:
        return m.group(0)
    return m.group("key") + m.group("sep") + REDACTED


def _pairs(text: str, head: "re.Pattern[str]", value: "re.Pattern[str]") -> str:
    """Redact the value after each `head` match whose key is a secret name. A value under a
    harmless name is not skipped over (`a: password=x` still finds `password=x`), and the scan only
    moves forward: linear."""
    out, pos, last = [], 0, 0
    while True:
        m = head.search(text, pos)
        if m is None:
            break
        pos = m.end()
        if secret_name(m.group("key").lstrip("-")):
            v = value.match(text, pos)
            if v is not None and v.group(0) != REDACTED:
                out += [text[last:pos], REDACTED]
                last = pos = v.end()
    out.append(text[last:])
    return "".join(out)
