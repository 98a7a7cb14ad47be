"""One hypothesis budget for every fuzz target in the suite (issue 12): deterministic (derandomize,
no example database), at least 500 inputs per target, no input may take over 2 s."""
from hypothesis import HealthCheck, settings

FUZZ = settings(max_examples=500, derandomize=True, database=None, deadline=2000,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
