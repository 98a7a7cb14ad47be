"""Packages and app revisions. Updates are idempotent: a host already at the version is left
alone, so re-running a deploy changes only what is not yet done."""
from hamcrest import equal_to

from orchestrator_lib.controller.deploy import operations as ops
from orchestrator_lib.behave import parsing  # noqa: F401  (registers the parameter types)
from orchestrator_lib.behave.binding import deploy_of, then, when
from orchestrator_lib.behave.matchers import check


@when("I update the package {name:Word}{options:RunOptions}")
def step_update_newest(context, name, options):
    """To the newest version the hosts' package sources offer.
    Options: `in batches of 2` (or 25%, or 1,2,50%) and `with 2 tries`."""
    ops.update_package(deploy_of(context), name, None, options)


@when("I update the package {name:Word} to {version:Word}{options:RunOptions}")
def step_update_to(context, name, version, options):
    """To exactly this version (never a downgrade). Options as above."""
    ops.update_package(deploy_of(context), name, version, options)


@when("I downgrade the package {name:Word} to {version:Word}{options:RunOptions}")
def step_downgrade_to(context, name, version, options):
    """To exactly this version, older than the installed one included (an explicit downgrade)."""
    ops.update_package(deploy_of(context), name, version, options, downgrade=True)


@when("I roll back the package {name:Word}{options:RunOptions}")
def step_roll_back(context, name, options):
    """Each host back to the version it had before this run (from the run's journal), for a
    `@rollback` scenario: those hosts are recorded `rolled back`."""
    ops.rollback_package(deploy_of(context), name, options)


@when("I report the installed version of {name:Word}")
def step_report(context, name):
    """Read-only: each host's version of the package, and how many hosts have which."""
    ops.report_versions(deploy_of(context), name)


@when("I deploy revision {revision:Word} of {app:Word}{options:RunOptions}")
def step_deploy_app(context, revision, app, options):
    """appmgr: package to the revision, restart where needed, wait until the app reports it."""
    ops.deploy_app(deploy_of(context), app, revision, options)


@then("the package version for {name:Word} should be {version:Word}")
def step_package_version(context, name, version):
    """Every host has exactly this version of the package installed."""
    d = deploy_of(context)
    if d.plan_skips_check(f"package version for {name}"):
        return
    check(d, ops.package_versions(d, name), equal_to(version), f"package version for {name}", "package#status")
