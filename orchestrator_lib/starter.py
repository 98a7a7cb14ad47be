"""`orch init DIR`: a starter deploy repository, for a team that gates its releases with this
package from its own repository. Everything it needs from the package is two import lines (the
step library and the hooks); the rest is the team's: features, the estate file, CI."""
from __future__ import annotations

from pathlib import Path

from .controller.errors import OrchestratorError

README = """\
# Deploys
Gherkin deploys for our fleet, run by [orchestrator-lib](https://pypi.org/project/orchestrator-lib/) under behave.
Setup: `python3 -m venv .venv && .venv/bin/pip install orchestrator-lib` (Ansible inventories: `orchestrator-lib[ansible]`).
Run: `behave` (all features), `behave -D plan` (read-only: what would change), `behave -D env=staging` (another estate).
The fleet is `environments/production.yaml`; the hosts need the agent's sudo rule: `orch sudoers deploy` prints it.
"""

FEATURE = """\
Feature: Update the production systems
  The seed deploy: the German web hosts get mywebapp 4.2.6-3.el5 while the load balancer
  sends them no traffic. A host that fails stays blocked; the others keep serving.

  Background:
    Given the load balancer is lb1
    And I want to update hosts with class roles::web
    And I want to update hosts with fact country=de
    And I want to pre-discover how many hosts to update

  Scenario: Update the website
    When I block the load balancer
    Then traffic from the load balancer should be blocked
    When I update the package mywebapp to 4.2.6-3.el5
    Then the package version for mywebapp should be 4.2.6-3.el5
    When I restart the service mywebapp unless port 8080 already reports version 4.2.6-3.el5
    Then the health check on port 8080 should report version 4.2.6-3.el5 within 100 seconds
    When I unblock the load balancer
    Then traffic from the load balancer should be unblocked
"""

STEPS = """\
# The step library (`behave --steps-catalog` lists it). Steps of your own can go below, with
# `@given/@when/@then` and `deploy_of(context)` from the same import.
from orchestrator_lib.behave.steps import *  # noqa: F401,F403
"""

ENVIRONMENT = """\
# The deploy hooks: one SSH session per run, the result matrix, the release gate, the report.
from orchestrator_lib.behave.hooks import *  # noqa: F401,F403
"""

ESTATE = """\
# The fleet this repository deploys to (`behave -D env=production`, the default in pyproject.toml).
# An Ansible inventory works too: `behave -D env=path/to/hosts.ini` (needs orchestrator-lib[ansible]).
name: production
# Host keys are checked against this file (OpenSSH format); paths are relative to this file.
known_hosts: ~/.ssh/known_hosts
# ssh_config: ~/.ssh/config     # Host, HostName, User, Port, IdentityFile, ProxyJump are read from it;
                                 # a value set here wins over the ssh config, which wins over the defaults.
defaults:
  user: deploy                   # log in as deploy ...
  become: sudo                   # ... and run the agent as root by `sudo -n` (rule: `orch sudoers deploy`)
  key: ~/.ssh/id_ed25519
  # jump: bastion1               # reach the hosts through a bastion (a host below, or user@host:port)
loadbalancer:
  host: lb1                      # the HAProxy host (`orch lb`; features may name another)
  backend: app                   # the HAProxy backend whose servers are the web hosts
hosts:
  lb1:
    address: 192.0.2.2
    classes: [roles::lb, haproxy]
    facts: {country: de}
  web1: {address: 192.0.2.11, classes: [roles::web], facts: {country: de, cluster: alfa}}
  web2: {address: 192.0.2.12, classes: [roles::web], facts: {country: de, cluster: alfa}}
  web3: {address: 192.0.2.13, classes: [roles::web], facts: {country: nl, cluster: bravo}}
groups:
  web: [web1, web2, web3]          # or {hosts: [...], user: ..., jump: ...} to set logins per group
"""

PYPROJECT = """\
# behave reads its settings here; `behave -D env=NAME` picks another estate from environments/.
[tool.behave]
paths = ["features"]
junit_directory = "reports/junit"

[tool.behave.userdata]
env = "production"     # the estate: environments/production.yaml
"""

CI = """\
# A CI example (GitHub Actions): the deploy gates the release; JUnit for the CI's test view,
# the JSON result matrix as an artifact. Secrets: the deploy key and known_hosts.
name: deploy
on: {workflow_dispatch: {}}
jobs:
  deploy:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with: {python-version: "3.11"}
      - run: pip install orchestrator-lib
      - run: |
          install -d -m 700 ~/.ssh
          printf '%s\\n' "$DEPLOY_KEY" > ~/.ssh/id_ed25519 && chmod 600 ~/.ssh/id_ed25519
          printf '%s\\n' "$KNOWN_HOSTS" > ~/.ssh/known_hosts
        env: {DEPLOY_KEY: "${{ secrets.DEPLOY_KEY }}", KNOWN_HOSTS: "${{ secrets.KNOWN_HOSTS }}"}
      - run: behave --junit -D report=reports/deploy.json
      - uses: actions/upload-artifact@v4
        if: always()
        with: {name: deploy-report, path: reports/}
"""

#: path in the new repository -> text
FILES = {
    "README.md": README,
    "pyproject.toml": PYPROJECT,
    "features/deploy_webapp.feature": FEATURE,
    "features/steps/deploy.py": STEPS,
    "features/environment.py": ENVIRONMENT,
    "environments/production.yaml": ESTATE,
    "ci/deploy.yml": CI,
    ".gitignore": "reports/\n",
}


class InitError(OrchestratorError):
    """The starter cannot be written (it would overwrite something)."""


def write_starter(directory: Path) -> list[str]:
    """Write the starter into `directory` (created if missing); refuse, touching nothing, when any
    of its files already exists. Returns the lines to print."""
    existing = [name for name in FILES if (directory / name).exists()]
    if existing:
        more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
        raise InitError(f"{directory / existing[0]}{more} already exist(s): orch init never overwrites; "
                        f"choose an empty directory")
    if directory.exists() and not directory.is_dir():
        raise InitError(f"{directory}: not a directory")
    for name, text in FILES.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "x", encoding="utf-8") as out:   # "x": never over a file that appeared meanwhile
            out.write(text)
    return [f"wrote {directory / name}" for name in FILES] + [
        f"next: edit {directory / 'environments/production.yaml'}, then run `behave` in {directory}"]
