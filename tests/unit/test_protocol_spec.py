"""The request's `spec` (which feature, scenario, step and commit asked): carried to the host and
into both audit logs, redacted there like everything else; a malformed one is refused."""
from __future__ import annotations

import json

import pytest

from orchestrator_lib.host.audit import entry
from orchestrator_lib.protocol import ProtocolError, Reply, Request

SPEC = {"file": "features/x.feature", "scenario": "s", "step": "When I notify ops that \"http://u:pw@h/x\"",
        "line": 7, "commit": "0123abcd"}


def test_the_spec_travels_with_the_request_and_lands_in_the_host_audit_line_redacted():
    sent = Request("rpcutil", "ping", reqid="r1", caller="me@c", spec=SPEC)
    back = Request.from_obj(json.loads(sent.encode({})))
    assert back.spec == SPEC
    line = entry(back, Reply.ok("pong"), None)
    assert line["spec"]["line"] == 7 and line["spec"]["file"] == "features/x.feature"
    assert "pw" not in line["spec"]["step"]


def test_a_request_without_a_spec_has_no_spec_key_and_a_bad_one_is_refused():
    assert "spec" not in Request("rpcutil", "ping").to_obj()
    assert "spec" not in entry(Request("rpcutil", "ping"), Reply.ok("pong"), None)
    for bad in ("text", {"line": [1]}, {"x": True}):
        with pytest.raises(ProtocolError, match="'spec'"):
            Request.from_obj({"agent": "rpcutil", "action": "ping", "spec": bad})
