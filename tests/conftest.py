"""Shared fixtures and Hypothesis profiles.

The ``ci`` profile (default) keeps the suite inside CI's budget on a 2-core machine and is
derandomised: every run draws the same examples, so a landing never fails on a counterexample that
one run happened to draw and the next did not. Exploration is the ``thorough`` profile's job
(``HYPOTHESIS_PROFILE=thorough``: 1,000 random examples a test); pin what it finds as an
``@example``.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("thorough", max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
