"""Hypothesis profiles for the whole suite, picked with HYPOTHESIS_PROFILE (default: "dev").

"dev" is quick for the edit-test loop; "ci" tries more examples, derandomized so a failure on CI
reproduces locally with `HYPOTHESIS_PROFILE=ci pytest ...`. Both have no deadline: the first call
of a Numba kernel compiles it. A test's own @settings(max_examples=...) still wins.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=10, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True,
                          print_blob=True, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
