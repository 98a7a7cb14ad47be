"""A deploy run's settings, from behave's userdata (`-D NAME=VALUE`, defaults in pyproject.toml's
[tool.behave.userdata]) or any mapping with its getbool/getfloat. One place, so a typo'd name or
value fails before any host is touched: `-D paln` must not run the real deploy."""
from __future__ import annotations

import math
import os
import re
import string
from urllib.parse import urlsplit
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..errors import OrchestratorError
from ..inventory import Host, _did_you_mean

LAB_CHOICES = ("keep", "down")
#: a check that loops on the host gets this much longer on the SSH side
CHECK_MARGIN = 30.0
LINT_CHOICES = ("on", "off")
#: the fields -D notify_webhook may use, filled per notification host
WEBHOOK_FIELDS = ("address", "name")
#: the fields -D report may use
REPORT_FIELDS = ("feature",)
#: an HAProxy backend or group name (what haproxy.cfg accepts, and nothing a socket command reads as syntax)
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,63}")
#: a URL path: no spaces, control characters or fragments
URL_PATH = re.compile(r"/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]{0,1023}")
WEBHOOK_SCHEMES = ("http", "https")
#: HAProxy's checks notice a server in seconds; more than an hour is a typo, not a wait
MAX_LB_WAIT = 3600.0
#: what the service agent accepts as its `wait` (protocol_args: 0 to 600 s); at least a second to start
MIN_SERVICE_WAIT, MAX_SERVICE_WAIT = 1.0, 600.0


#: a health check that loops on the host gets this much longer on the SSH side
CHECK_MARGIN = 30.0


class SettingsError(OrchestratorError):
    """A -D option with an unknown name or a bad value: one line naming it (a value's own line
    breaks are shown escaped)."""

    def __init__(self, message: str) -> None:
        super().__init__(message.replace("\r", "\\r").replace("\n", "\\n"))


def template_fields(template: str, option: str) -> list[str]:
    """The {fields} a str.format template uses; bad syntax is a one-line error naming -D option."""
    try:
        return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as e:
        raise SettingsError(f"-D {option}={template}: bad template: {e}") from None


def check_template(template: str, option: str, known: tuple[str, ...]) -> None:
    """Only `known` fields, by plain name ({address}, not {0} or {address.x}), and a template
    that formats: a mistake fails here, not as a traceback halfway through the deploy."""
    for name in template_fields(template, option):
        if name not in known:
            raise SettingsError(f"-D {option}={template}: unknown field {{{name}}}"
                                f"{_did_you_mean(name, known)} (known: {', '.join('{' + k + '}' for k in known)})")
    try:
        template.format(**{k: "x" for k in known})
    except (ValueError, IndexError, KeyError, AttributeError) as e:
        raise SettingsError(f"-D {option}={template}: bad template: {e}") from None


def check_webhook(template: str) -> None:
    """An http(s) URL with a host, whatever the fields are filled with: never file:// or a bare path."""
    try:
        url = urlsplit(template.format(address="10.0.0.1", name="host1"))
        url.port  # noqa: B018 - a bad port raises ValueError here
    except ValueError as e:
        raise SettingsError(f"-D notify_webhook={template}: not a URL: {e}") from None
    if url.scheme not in WEBHOOK_SCHEMES or not url.hostname or any(c.isspace() or ord(c) < 32 for c in template):
        raise SettingsError(f"-D notify_webhook={template}: expected an http:// or https:// URL with a host, "
                            "e.g. http://{address}:8025/notify")


def check_report_path(template: str, option: str = "report") -> None:
    """The report must be a file we can write: not a directory, not under a file, and its
    nearest existing directory writable (missing directories are created when it is written)."""
    if template.endswith(("/", os.sep)):
        raise SettingsError(f"-D {option}={template}: names a directory; expected a file, e.g. "
                            f"{template}deploy-{{feature}}.json")
    path = Path(template.format(feature="feature"))
    if path.is_dir():
        raise SettingsError(f"-D {option}={template}: {path} is a directory; expected a file, e.g. "
                            f"{path}/deploy-{{feature}}.json")
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise SettingsError(f"-D {option}={template}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise SettingsError(f"-D {option}={template}: cannot write to {path if path.exists() else parent}")


@dataclass(frozen=True)
class Settings:
    env: str = "local"                 # environment name or path to an estate file
    lab: str = "keep"                  # local lab at the end of the run: keep it running, or down
    plan: bool = False                 # read-only: say what would change, change nothing
    report: str = ""                   # JSON report path; may contain {feature}
    report_html: str = ""              # HTML report path ({feature} too); default: the JSON's, .html
    lint: str = "on"                   # check the features before the run (orch lint); off: don't
    backend: str = ""                  # HAProxy backend when no step names one
    lb_wait: float = 10.0              # seconds HAProxy may take to see a host go down or up
    service_wait: float = 30.0         # seconds a service (re)start may take to run and pass its readiness check
    health_path: str = "/health"       # path of "the health check on port N"
    notify_group: str = "notify"       # the estate's notification hosts (a group, else class roles::notify)
    notify_webhook: str = "http://{address}:8025/notify"
    seed: int | None = None            # the canaries' seed (the report records it; -D seed= replays a run's choice)
    resume: bool = False               # re-run only the hosts the last run of the feature did not complete
    safeguards: bool = True            # deploy lock, journal and pre-flight (off: only to measure their cost)
    lease_ttl: float = 60.0            # seconds a host's deploy lock lasts unless the run renews it
    transport: str = ""                # ssh or nats; empty: what the estate says (`transport:`)

    def __post_init__(self) -> None:
        """The checks that need no file system: a Settings built any way is a valid one."""
        if self.lab not in LAB_CHOICES:
            raise SettingsError(f"-D lab={self.lab}: expected one of {', '.join(LAB_CHOICES)}")
        if self.lint not in LINT_CHOICES:
            raise SettingsError(f"-D lint={self.lint}: expected one of {', '.join(LINT_CHOICES)}")
        if not math.isfinite(self.lb_wait) or not 0 <= self.lb_wait <= MAX_LB_WAIT:
            raise SettingsError(f"-D lb_wait={self.lb_wait}: expected a number of seconds from 0 to {MAX_LB_WAIT:g}")
        if not math.isfinite(self.service_wait) or not MIN_SERVICE_WAIT <= self.service_wait <= MAX_SERVICE_WAIT:
            raise SettingsError(f"-D service_wait={self.service_wait}: expected a number of seconds from "
                                f"{MIN_SERVICE_WAIT:g} to {MAX_SERVICE_WAIT:g}")
        if not URL_PATH.fullmatch(self.health_path):
            raise SettingsError(f"-D health_path={self.health_path!r}: expected a URL path starting with / "
                                "(no spaces or control characters)")
        for option in ("backend", "notify_group"):
            value = getattr(self, option)
            if value and not NAME.fullmatch(value):
                raise SettingsError(f"-D {option}={value!r}: expected a name of letters, digits, '_', '.', ':' "
                                    "and '-' (at most 64)")
        if not math.isfinite(self.lease_ttl) or not 3 <= self.lease_ttl <= 3600:
            raise SettingsError(f"-D lease_ttl={self.lease_ttl}: expected a number of seconds from 3 to 3600")
        if self.resume and self.plan:
            raise SettingsError("-D resume and -D plan together: a plan changes nothing, so there is nothing to resume")
        if self.resume and not self.safeguards:
            raise SettingsError("-D resume needs the journal: drop -D safeguards=false")
        if self.transport not in ("", "ssh", "nats"):
            raise SettingsError(f"-D transport={self.transport}: expected ssh or nats")
        check_template(self.notify_webhook, "notify_webhook", WEBHOOK_FIELDS)
        check_webhook(self.notify_webhook)
        check_template(self.report, "report", REPORT_FIELDS)
        check_template(self.report_html, "report_html", REPORT_FIELDS)

    @property
    def report_template(self) -> str:
        if self.report:
            return self.report
        return "reports/plan-{feature}.json" if self.plan else "reports/deploy-{feature}.json"

    def html_path(self, json_path: Path, feature: str) -> Path:
        """Where the HTML report of the JSON at `json_path` goes: -D report_html, else beside it."""
        if self.report_html:
            return Path(self.report_html.format(feature=feature))
        return json_path.with_suffix(".html")

    def health_url(self, port: int) -> str:
        """The URL of "the health check on port N", as each host fetches it from itself."""
        return f"http://127.0.0.1:{port}{self.health_path}"

    def webhook(self, host: Host) -> str:
        """The notification URL on `host` (its fields were checked on construction)."""
        return self.notify_webhook.format(address=host.address, name=host.name)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_userdata(cls, userdata: Any) -> "Settings":
        """`userdata` is behave's UserData (a dict with getbool/getfloat). Every name must be
        known and every value valid: nothing here may fall back to a default silently."""
        for key in userdata:
            if key not in cls.names():
                raise SettingsError(f"-D {key}: unknown option '{key}'{_did_you_mean(key, cls.names())} "
                                    f"(known: {', '.join(cls.names())})")
        settings = cls(env=_text(userdata, "env", cls.env), lab=str(userdata.get("lab", cls.lab)).strip().lower(),
                       plan=_bool(userdata, "plan"), report=str(userdata.get("report", "")),
                       report_html=str(userdata.get("report_html", "")),
                       lint=str(userdata.get("lint", cls.lint)).strip().lower(),
                       backend=str(userdata.get("backend", "")), lb_wait=_seconds(userdata, "lb_wait", cls.lb_wait),
                       service_wait=_seconds(userdata, "service_wait", cls.service_wait),
                       health_path=_text(userdata, "health_path", cls.health_path),
                       notify_group=_text(userdata, "notify_group", cls.notify_group),
                       notify_webhook=_text(userdata, "notify_webhook", cls.notify_webhook),
                       seed=_seed(userdata),
                       resume=_bool(userdata, "resume"), safeguards=_bool(userdata, "safeguards", True),
                       lease_ttl=_seconds(userdata, "lease_ttl", cls.lease_ttl),
                       transport=str(userdata.get("transport", "")).strip().lower())
        check_report_path(settings.report_template)
        if settings.report_html:
            check_report_path(settings.report_html, "report_html")
        return settings

def _text(userdata: Any, name: str, default: str) -> str:
    value = str(userdata.get(name, default)).strip()
    if not value:
        raise SettingsError(f"-D {name}=: expected a value (default: {default})")
    return value


def _seed(userdata: Any) -> int | None:
    text = str(userdata.get("seed", "")).strip()
    if not text:
        return None
    if not text.isdigit() or len(text) > 12:
        raise SettingsError(f"-D seed={text}: expected a whole number, as a report's rollout seed")
    return int(text)


def _bool(userdata: Any, name: str, default: bool = False) -> bool:
    try:
        return bool(userdata.getbool(name, default))
    except ValueError:
        raise SettingsError(f"-D {name}={userdata.get(name)}: expected true or false") from None


def _seconds(userdata: Any, name: str, default: float) -> float:
    """A number (`inf` and `nan` pass float() but are refused by Settings' own check)."""
    try:
        return float(userdata.getfloat(name, default))
    except ValueError:
        raise SettingsError(f"-D {name}={userdata.get(name)}: expected a number of seconds, 0 or more") from None
