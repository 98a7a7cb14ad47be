"""Which hosts a scenario updates. The filters accumulate (AND) in the scenario, so a Background
can say the estate and a scenario narrow it; pre-discovery pings them and pins the count."""
from behave import given

from orchestrator_lib.discovery import CountContract
from steps.support import parsing  # noqa: F401  (registers the parameter types)
from steps.support.deploy import deploy_of, user_errors


@given("I want to update hosts with class {klass:Word}")
def step_class(context, klass):
    """Only hosts with this class (an exact name, or a /regex/), like `mco -C`."""
    target = deploy_of(context).scenario.target
    target.classes.append(klass)
    with user_errors():
        target.filter()


@given("I want to update hosts with fact {fact:Word}")
def step_fact(context, fact):
    """Only hosts whose fact matches: `country=de`, `load<2`, `os=~/deb/`, like `mco -W`."""
    target = deploy_of(context).scenario.target
    target.facts.append(fact)
    with user_errors():
        target.filter()


@given('I want to update hosts matching "{expression}"')
def step_compound(context, expression):
    """Only hosts matching a compound expression: `cluster=alfa and not hagroup=c`, like `mco -S`."""
    target = deploy_of(context).scenario.target
    target.compounds.append(expression)
    with user_errors():
        target.filter()


@given("I want to update hosts named {names:Names}")
def step_named(context, names):
    """Only these hosts (`web1, web2 and web3`; /regex/ allowed), like `mco -I`."""
    target = deploy_of(context).scenario.target
    target.identities.extend(names)
    with user_errors():
        target.filter()


@given("I want to update the hosts of group {group:Word}")
def step_group(context, group):
    """Only the hosts a group of the estate file lists."""
    d = deploy_of(context)
    with user_errors():
        d.scenario.target.identities.extend(h.name for h in d.inventory.group(group))


@given("I want to pre-discover how many hosts to update")
def step_pre_discover(context):
    """Discover and ping every host (and the load balancer); one that does not answer fails
    the step by name. The number found becomes the scenario's contract."""
    deploy_of(context).pre_discover(None)


@given("I expect to update {count:d} {word:Hosts}")
def step_expect_exactly(context, count, word):
    """Pre-discover, insisting on exactly this many hosts."""
    deploy_of(context).pre_discover(CountContract.exactly(count))


@given("I expect to update at least {count:d} {word:Hosts}")
def step_expect_at_least(context, count, word):
    """Pre-discover, insisting on at least this many hosts."""
    deploy_of(context).pre_discover(CountContract.at_least(count))


@given("I expect to update at most {count:d} {word:Hosts}")
def step_expect_at_most(context, count, word):
    """Pre-discover, insisting on at most this many hosts."""
    deploy_of(context).pre_discover(CountContract.at_most(count))
