"""notify: tell people a deploy happened (MCollective's angelia). With a webhook, POST JSON and
insist on a 2xx; without one, the message lives in the audit log and the reply only. The webhook
URL (its path is often the secret) never appears in a reply; the payload in the reply's data is
redacted here (audit.redact), the message, as every agent's, in core.dispatch."""
from __future__ import annotations

import json
import socket

from .. import audit, core
from . import health
from ..core import ActionError, Reply, Request

agent = core.Agent(__name__, "send a message to a recipient through a webhook")

def post_json(url: str, payload: dict, timeout: float) -> tuple[int, str]:
    """POST and return (status, first bytes of body); raises ActionError when nothing answered."""
    import urllib.error
    import urllib.request
    body = json.dumps(payload).encode()
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "orchestrator-notify"})
    try:
        with health.opener().open(request, timeout=timeout) as resp:
            return resp.status, resp.read(4096).decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, (e.read(4096).decode(errors="replace") if e.fp else "")
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise ActionError(f"notify: cannot reach webhook: {core.one_line(getattr(e, 'reason', e), 200)}") from None


@agent.action
def send(req: Request) -> Reply:
    recipient = req.str_arg("recipient")
    message = req.str_arg("message")
    sender = req.str_arg("sender", req.caller or f"orchestrator@{socket.gethostname()}")
    webhook = req.str_arg("webhook", None)
    payload = {"recipient": recipient, "message": message, "sender": sender}
    if not webhook:
        return Reply.ok(f"logged for {recipient} (no webhook): {core.one_line(message, 200)}",
                        data={"delivered": False, **audit.redact(payload)})
    if not webhook.startswith(("http://", "https://")):
        raise ActionError(f"{req.label}: webhook must be an http(s) URL")
    if req.dry_run:
        return Reply.done(True, f"would send to {recipient}", dry_run=True,
                          data={"delivered": False, **audit.redact(payload)})
    status, answer = post_json(webhook, payload, req.float_arg("timeout", 10.0))
    if not 200 <= status < 300:
        raise ActionError(f"notify: webhook answered {status}: {core.one_line(answer, 200)}")
    return Reply.done(True, f"sent to {recipient} (webhook answered {status})",
                      data={"delivered": True, "status": status, **audit.redact(payload)})
