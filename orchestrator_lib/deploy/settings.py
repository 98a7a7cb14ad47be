"""A deploy run's settings, from behave's userdata (`-D NAME=VALUE`, defaults in pyproject.toml's
[tool.behave.userdata]) or any mapping with its getbool/getfloat. One place, so a typo'd value
fails before any host is touched."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import OrchestratorError

LAB_CHOICES = ("keep", "down")


@dataclass(frozen=True)
class Settings:
    env: str = "local"                 # environment name or path to an estate file
    lab: str = "keep"                  # local lab at the end of the run: keep it running, or down
    plan: bool = False                 # read-only: say what would change, change nothing
    report: str = ""                   # JSON report path; may contain {feature}
    backend: str = ""                  # HAProxy backend when no step names one
    lb_wait: float = 10.0              # seconds HAProxy may take to see a host go down or up
    health_path: str = "/health"       # path of "the health check on port N"
    notify_group: str = "notify"       # the estate's notification hosts (a group, else class roles::notify)
    notify_webhook: str = "http://{address}:8025/notify"

    @property
    def report_template(self) -> str:
        if self.report:
            return self.report
        return "reports/plan-{feature}.json" if self.plan else "reports/deploy-{feature}.json"

    @classmethod
    def from_userdata(cls, userdata: Any) -> "Settings":
        """`userdata` is behave's UserData (a dict with getbool/getfloat)."""
        lab = str(userdata.get("lab", "keep")).strip().lower()
        if lab not in LAB_CHOICES:
            raise OrchestratorError(f"-D lab={lab}: expected one of {', '.join(LAB_CHOICES)}")
        try:
            plan = userdata.getbool("plan", False)
            lb_wait = userdata.getfloat("lb_wait", cls.lb_wait)
        except ValueError as e:
            raise OrchestratorError(f"userdata: {e}") from None
        return cls(env=str(userdata.get("env", "local")), lab=lab, plan=plan,
                   report=str(userdata.get("report", "")), backend=str(userdata.get("backend", "")),
                   lb_wait=lb_wait, health_path=str(userdata.get("health_path", cls.health_path)),
                   notify_group=str(userdata.get("notify_group", cls.notify_group)),
                   notify_webhook=str(userdata.get("notify_webhook", cls.notify_webhook)))
