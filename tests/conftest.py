"""Shared fixtures and Hypothesis profiles.

The ``ci`` profile (default) keeps the suite inside CI's budget on a 2-core machine; set
``HYPOTHESIS_PROFILE=thorough`` for long local runs.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
