"""`orch init DIR`: the starter repository, and that it never overwrites."""
import subprocess
import sys

from orchestrator_lib.cli import main
from orchestrator_lib.controller.inventory import load_inventory
from orchestrator_lib.starter import FILES


def test_init_writes_a_repository_behave_can_read(tmp_path, capsys):
    target = tmp_path / "deploys"
    assert main(["init", str(target)]) == 0
    assert sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file()) == sorted(FILES)
    assert len((target / "README.md").read_text().splitlines()) == 5
    for one_liner in ("features/steps/deploy.py", "features/environment.py"):
        code = [ln for ln in (target / one_liner).read_text().splitlines() if ln and not ln.startswith("#")]
        assert len(code) == 1 and code[0].startswith("from orchestrator_lib.behave.")
    assert load_inventory(target / "environments" / "production.yaml").host("web1").become == "sudo"
    done = subprocess.run([sys.executable, "-m", "behave", "--dry-run", "-f", "plain"], cwd=target,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "undefined" not in done.stdout.split("Took")[-2], done.stdout + done.stderr


def test_init_refuses_to_overwrite_and_touches_nothing(tmp_path, capsys):
    target = tmp_path / "deploys"
    (target / "features").mkdir(parents=True)
    (target / "features" / "environment.py").write_text("mine\n")
    assert main(["init", str(target)]) == 2
    err = capsys.readouterr().err
    assert "features/environment.py" in err and "never overwrites" in err and len(err.splitlines()) == 1
    assert (target / "features" / "environment.py").read_text() == "mine\n"
    assert not (target / "README.md").exists()
