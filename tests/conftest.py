"""Shared pytest set-up: the hypothesis profiles.

``default`` is quick, for a developer's edit-test loop; ``ci`` searches much
harder. ``HYPOTHESIS_PROFILE`` picks one; without it, ``ci`` is used when
``CI=true`` and ``default`` otherwise.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("default", max_examples=50, deadline=None)
settings.register_profile(
    "ci",
    max_examples=1000,
    deadline=None,
    derandomize=False,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)

_fallback = "ci" if os.environ.get("CI", "").lower() == "true" else "default"
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", _fallback))
