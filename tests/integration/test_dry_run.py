"""Plan mode is the hosts' own dry run: for every agent action the features use, the dry run's
predicted change on a lab host equals what the real run then reports, on a host that needs the
change and on one that does not (restarts and notifications always change: both hosts need them)."""
from __future__ import annotations

from orchestrator_lib.controller.orchestration import RunResult, Status
from orchestrator_lib.controller.session import Session

OLD, NEW = "4.2.5-1.el5", "4.2.6-3.el5"  # NEW is also the newest release (4.2.7 is only proposed)
#: what a dry run's status says the real run will report
REAL = {Status.WOULD_CHANGE: Status.CHANGED, Status.OK: Status.OK}


def agree(session: Session, names: list[str], agent: str, action: str, args: dict,
          expect: dict[str, Status]) -> RunResult:
    """Dry run, then the real run, of one request on `names`: the dry run predicted `expect` per
    host, and the real run reports that status with the same before and after (and, from the
    LB, the same servers changed)."""
    hosts = [session.host(n) for n in names]
    dry = session.call(hosts, agent, action, args, dry_run=True)
    real = session.call(hosts, agent, action, args)
    assert {h: r.status for h, r in dry.results.items()} == expect, dry.tally()
    for name in names:
        d, r = dry.results[name], real.results[name]
        assert (REAL[d.status], d.before, d.after, d.data.get("changed")) == \
            (r.status, r.before, r.after, r.data.get("changed")), f"{agent}#{action} on {name}: {d} / {r}"
    return real


def test_the_dry_run_predicts_the_real_run_of_every_action_the_features_use(fresh_lab, session):
    would, ok = Status.WOULD_CHANGE, Status.OK
    lb = {"source": "10.231.0.2"}
    # each case: the host listed second is brought to the wanted state first (for real), so it needs nothing
    session.call([session.host("web2")], "firewall", "block", lb)
    agree(session, ["web1", "web2"], "firewall", "block", lb, {"web1": would, "web2": ok})
    session.call([session.host("web2")], "firewall", "unblock", lb)
    agree(session, ["web1", "web2"], "firewall", "unblock", lb, {"web1": would, "web2": ok})

    servers = {"backend": "app", "servers": ["web1", "web2"]}
    session.call([session.host("lb1")], "haproxy", "disable", {"backend": "app", "servers": ["web2"]})
    real = agree(session, ["lb1"], "haproxy", "disable", servers, {"lb1": would})
    assert real.results["lb1"].data["changed"] == ["web1"]
    session.call([session.host("lb1")], "haproxy", "enable", {"backend": "app", "servers": ["web2"]})
    real = agree(session, ["lb1"], "haproxy", "enable", servers, {"lb1": would})
    assert real.results["lb1"].data["changed"] == ["web1"]
    agree(session, ["lb1"], "haproxy", "enable", servers, {"lb1": ok})

    app = {"app": "mywebapp", "revision": NEW}
    session.call([session.host("web2")], "appmgr", "deploy", app)
    agree(session, ["web1", "web2"], "appmgr", "deploy", app, {"web1": would, "web2": ok})
    session.call([session.host("web4")], "package", "update", {"name": "mywebapp", "version": NEW})
    agree(session, ["web3", "web4"], "package", "update", {"name": "mywebapp", "version": NEW},
          {"web3": would, "web4": ok})
    session.call([session.host("web8")], "package", "update", {"name": "mywebapp"})  # the newest release
    real = agree(session, ["web7", "web8"], "package", "update", {"name": "mywebapp"}, {"web7": would, "web8": ok})
    assert real.results["web7"].after == NEW
    openssl = {"name": "openssl-lab", "version": "3.0.13-1"}
    session.call([session.host("web6")], "package", "update", openssl)
    agree(session, ["web5", "web6"], "package", "update", openssl, {"web5": would, "web6": ok})

    for service in ("mywebapp", "nginx"):
        agree(session, ["web5", "web6"], "service", "restart", {"name": service}, {"web5": would, "web6": would})
    message = {"recipient": "ops@example.com", "message": "dry run test", "webhook": "http://10.231.0.21:8025/notify"}
    agree(session, ["notify1"], "notify", "send", message, {"notify1": would})


def test_a_dry_run_changes_nothing(fresh_lab, session):
    """What the dry runs above would do, done dry on a fresh host: nothing on it differs after."""
    web1, lb1 = session.host("web1"), session.host("lb1")
    before = [session.call([web1], "package", "status", {"name": "mywebapp"}).results["web1"].after,
              session.call([web1], "firewall", "status", {"source": "10.231.0.2"}).results["web1"].after,
              session.call([lb1], "haproxy", "status", {"backend": "app"}).results["lb1"].after]
    for agent, action, args, host in (("firewall", "block", {"source": "10.231.0.2"}, web1),
                                      ("haproxy", "disable", {"backend": "app", "servers": ["web1"]}, lb1),
                                      ("appmgr", "deploy", {"app": "mywebapp", "revision": NEW}, web1),
                                      ("package", "update", {"name": "mywebapp"}, web1)):
        assert session.call([host], agent, action, args, dry_run=True).results[host.name].status is Status.WOULD_CHANGE
    after = [session.call([web1], "package", "status", {"name": "mywebapp"}).results["web1"].after,
             session.call([web1], "firewall", "status", {"source": "10.231.0.2"}).results["web1"].after,
             session.call([lb1], "haproxy", "status", {"backend": "app"}).results["lb1"].after]
    assert after == before and before[:2] == [OLD, "unblocked"] and before[2]["web1"] == "ready"
