"""lease: the deploy lock on one host, against a real file under tmp_path and a fake clock."""
import pathlib
import sys
import threading

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from test_agents_fakes import FakeSystem  # noqa: E402

from orchestrator_lib import protocol_args  # noqa: E402
from orchestrator_lib.host import core  # noqa: E402
from orchestrator_lib.host.agents import lease  # noqa: E402


class RealFiles(FakeSystem):
    """A fake clock over real files: the lease lives in tmp_path."""

    def read_text(self, path):
        return core.System().read_text(path)


@pytest.fixture
def host(tmp_path, monkeypatch):
    monkeypatch.setattr(lease, "LEASE_DIR", str(tmp_path))
    return RealFiles()


def ask(fake, action, caller="alice@ci", **args):
    with core.use_system(fake):
        return core.dispatch(core.Request("lease", action, args, reqid="q1", caller=caller))


def test_one_run_holds_the_lease_and_another_is_refused_naming_it(host):
    got = ask(host, "acquire", run="runA", feature="deploy_webapp", ttl=60)
    assert got.status == "changed" and got.data["lease"]["caller"] == "alice@ci"
    refused = ask(host, "acquire", caller="bob@laptop", run="runB", feature="deploy_webapp", ttl=60)
    assert refused.status == "failed"
    assert refused.data["holder"]["run"] == "runA"
    assert "alice@ci running deploy_webapp (run runA)" in refused.message and "expires in 60 s" in refused.message
    again = ask(host, "acquire", run="runA", feature="deploy_webapp", ttl=60)   # its own: a renewal
    assert again.status == "ok"


def test_an_expired_lease_is_taken_over_and_the_reply_says_whose(host):
    ask(host, "acquire", run="runA", feature="f", ttl=5)
    host.clock += 6
    taken = ask(host, "acquire", caller="bob@ci", run="runB", feature="f", ttl=5)
    assert taken.status == "changed" and taken.data["took_over"]["run"] == "runA"
    assert "took over the expired lease of alice@ci" in taken.message
    assert ask(host, "status").data["lease"]["run"] == "runB"


def test_renew_pushes_the_expiry_and_a_lost_lease_fails(host):
    ask(host, "acquire", run="runA", ttl=5)
    host.clock += 4
    assert ask(host, "renew", run="runA", ttl=5).status == "ok"
    host.clock += 4
    assert ask(host, "acquire", run="runB", ttl=5).status == "failed"   # renewed: still held
    host.clock += 2
    assert ask(host, "acquire", run="runB", ttl=5).status == "changed"
    lost = ask(host, "renew", run="runA", ttl=5)
    assert lost.status == "failed" and "lost" in lost.message


def test_release_frees_only_the_runs_own_lease(host):
    ask(host, "acquire", run="runA", ttl=60)
    assert ask(host, "release", run="runB").status == "ok"             # not its lease: left alone
    assert ask(host, "status").data["lease"]["run"] == "runA"
    assert ask(host, "release", run="runA").status == "changed"
    assert ask(host, "status").data["lease"] is None
    assert ask(host, "acquire", run="runB", ttl=60).status == "changed"


@pytest.mark.parametrize("args", [{"run": "a b"}, {"run": "../x"}, {"run": "r", "ttl": "nan"},
                                  {"run": "r", "ttl": 0}, {"run": "r", "ttl": 1e9}, {}])
def test_bad_arguments_are_refused_in_one_line(args):
    """The host refuses them before dispatch (protocol_args, checked by core.handle)."""
    with pytest.raises(protocol_args.ArgError) as refused:
        protocol_args.check("lease", "acquire", args)
    assert "\n" not in str(refused.value)


def test_a_torn_lease_file_holds_nothing(host, tmp_path):
    (tmp_path / lease.LEASE_FILE).write_text('{"run": "runA", "expi')
    assert ask(host, "acquire", run="runB").status == "changed"


def test_concurrent_acquires_leave_exactly_one_holder(tmp_path, monkeypatch):
    monkeypatch.setattr(lease, "LEASE_DIR", str(tmp_path))
    real = RealFiles()
    replies = {}

    def take(run):
        replies[run] = core.dispatch(core.Request("lease", "acquire", {"run": run, "ttl": 60}))

    with core.use_system(real):
        threads = [threading.Thread(target=take, args=(f"run{i}",)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sorted(r.status for r in replies.values()) == ["changed"] + ["failed"] * 7


def test_a_dry_run_takes_nothing(host):
    with core.use_system(host):
        r = core.dispatch(core.Request("lease", "acquire", {"run": "runA"}, dry_run=True))
    assert str(r.status) == "would change" and ask(host, "status").data["lease"] is None
