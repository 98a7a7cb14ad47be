"""Deploy: a deploy run over a Session, as the behave steps speak it. The scenario's targets and
load balancer, pre-discovery, plan mode (every When sent as the hosts' dry run), the
operations behind the step vocabulary (packages, app revisions, services, health, notifications,
firewall and HAProxy), each recorded host by host into the result matrix.

`run` holds `Deploy`, `operations` and `loadbalancer` the verbs,
`targets` and `settings` the scenario's hosts and the run's options. Nothing here imports behave
or PyHamcrest: checks return one value per host and the caller asserts."""
from .run import Deploy, DeployError, LoadBalancer, StepOptions, ScenarioState, Unanswered
from .settings import Settings
from .targets import Target

__all__ = ["Deploy", "DeployError", "LoadBalancer", "StepOptions", "ScenarioState", "Settings", "Target",
           "Unanswered"]
