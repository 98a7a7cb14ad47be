"""behave reads its hooks from environment.py next to steps/, here at the repository root; the
hooks themselves live with the features, in features/support/environment.py."""
from features.support.environment import (  # noqa: F401
    after_all, after_scenario, after_step, before_all, before_feature, before_scenario, before_step)
