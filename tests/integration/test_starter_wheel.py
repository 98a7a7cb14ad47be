"""Acceptance: the package used from another repository. Build the wheel, install it into a fresh
virtual environment outside this repository (dependencies from the package index), `orch init` a
starter repository in a temporary directory, point its estate at the lab and pass the seed deploy
with plain `behave` -- no path into this repository anywhere."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

CLEAN_ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def run(argv, cwd, timeout=600):
    done = subprocess.run(argv, cwd=cwd, env=CLEAN_ENV, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{argv}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
    return done


def test_a_starter_repository_passes_the_seed_deploy_from_the_installed_wheel(lab, tmp_path):
    wheels = tmp_path / "wheels"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT)],
        cwd=tmp_path)
    wheel = next(wheels.glob("orchestrator_lib-*.whl"))
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", str(wheel)], cwd=tmp_path)
    repo = tmp_path / "deploys"
    run([str(venv / "bin" / "orch"), "init", str(repo)], cwd=tmp_path)

    # Point the starter estate at the lab: its key, its known_hosts, its addresses.
    estate = repo / "environments" / "production.yaml"
    text = estate.read_text()
    text = text.replace("known_hosts: ~/.ssh/known_hosts", f"known_hosts: {lab.known_hosts}")
    text = text.replace("key: ~/.ssh/id_ed25519", f"key: {lab.client_key}")
    addresses = {"lb1": "10.231.0.2", "web1": "10.231.0.11", "web2": "10.231.0.12", "web3": "10.231.0.13"}
    for name, address in addresses.items():
        text = re.sub(rf"(\n  {name}:(?:\n    |\s*\{{))address: 192\.0\.2\.\d+", rf"\1address: {address}", text)
    assert "192.0.2." not in text
    estate.write_text(text)

    done = subprocess.run([str(venv / "bin" / "behave")], cwd=repo, env=CLEAN_ENV, capture_output=True, text=True,
                          timeout=600)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    assert "Release gate: PASSED" in out, out[-2000:]
    assert str(ROOT) not in (venv / "bin" / "behave").read_text()
    imported = run([str(venv / "bin" / "python"), "-c", "import orchestrator_lib; print(orchestrator_lib.__file__)"],
                   cwd=tmp_path).stdout
    assert imported.startswith(str(venv)), imported
