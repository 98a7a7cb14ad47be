"""Which hosts a scenario updates. The filters accumulate (AND) in the scenario, so a Background
can say the estate and a scenario narrow it; pre-discovery pings them and pins the count."""
from orchestrator_lib.controller.discovery import CountContract
from orchestrator_lib.behave import parsing  # noqa: F401  (registers the parameter types)
from orchestrator_lib.behave.binding import deploy_of, given


@given("I want to update hosts with class {klass:Word}")
def step_class(context, klass):
    """Only hosts with this class (an exact name, or a /regex/), like `mco -C`."""
    deploy_of(context).narrow(classes=[klass])


@given("I want to update hosts with fact {fact:Word}")
def step_fact(context, fact):
    """Only hosts whose fact matches: `country=de`, `load<2`, `os=~/deb/`, like `mco -W`."""
    deploy_of(context).narrow(facts=[fact])


@given('I want to update hosts matching "{expression}"')
def step_compound(context, expression):
    """Only hosts matching a compound expression: `cluster=alfa and not hagroup=c`, like `mco -S`."""
    deploy_of(context).narrow(compounds=[expression])


@given("I want to update hosts named {names:Names}")
def step_named(context, names):
    """Only these hosts (`web1, web2 and web3`; /regex/ allowed), like `mco -I`."""
    deploy_of(context).narrow(identities=names)


@given("I want to update the hosts of group {group:Word}")
def step_group(context, group):
    """Only the hosts a group of the estate file lists."""
    deploy_of(context).narrow_to_group(group)


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
