"""An Ansible inventory (INI and YAML: groups, children, vars, ranges web[1:4]) of the default lab
passes the seed deploy. Addresses of the ranged hosts come from the ssh config the inventory names
with -F (HostName), as they would from DNS or ssh config in a real fleet."""
from __future__ import annotations

import subprocess
import sys

import pytest

from orchestrator_lib.controller.reporting import ResultMatrix
from tests.conftest import ROOT

pytest.importorskip("ansible")
INVENTORIES = ROOT / "tests" / "unit" / "ansible"


@pytest.mark.parametrize("name", ["lab.ini", "lab.yml"])
def test_the_seed_deploy_passes_on_an_ansible_inventory_of_the_lab(fresh_lab, tmp_path, name):
    seed = (ROOT / "features" / "deploy_webapp.feature").read_text()
    feature = tmp_path / "ansible_seed.feature"   # a name no feature of features/ has (--include)
    feature.write_text(seed.replace("hosts with class roles::web", "hosts with class web"))   # Ansible group names
    report = tmp_path / "report.json"
    done = subprocess.run([sys.executable, "-m", "behave", "features/", str(feature), "--include", feature.name,
                           "-D", f"env={INVENTORIES / name}", "-D", "backend=app", "-D", f"report={report}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    matrix = ResultMatrix.read_json(report)
    assert matrix.passed and {"web1", "web2", "web3", "web4"} <= set(matrix.hosts), out[-2000:]
    for host in ("web1", "web4"):
        assert fresh_lab.exec_in(host, ["dpkg-query", "-W", "-f=${Version}", "mywebapp"]).stdout == "4.2.6-3.el5"
