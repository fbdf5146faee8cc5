"""Shared test settings: Hypothesis profiles.

The default profile keeps the whole suite well under 2 minutes per interpreter on 2 cores;
`HYPOTHESIS_PROFILE=more-examples` is for a slower, deeper run before a release.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("default", max_examples=100, deadline=None)
settings.register_profile(
    "more-examples",
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
