"""Hypothesis profiles for refcnn's own tests, chosen by ``HYPOTHESIS_PROFILE``.

``dev`` (default) is quick for local edits, ``ci`` is derandomized so the gate is
reproducible, ``ci-quick`` is ``dev``'s size derandomized (what ``.ci/run`` uses for the eight
test sessions: a red CI must be reproducible, not a draw of luck), ``thorough`` is
nightly-size. ``quick`` is accepted as an alias of ``dev`` so one
environment variable can drive both this suite and the conformance suite.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_COMMON = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
settings.register_profile("dev", max_examples=60, **_COMMON)
settings.register_profile("quick", max_examples=60, **_COMMON)
settings.register_profile("ci", max_examples=150, derandomize=True, print_blob=True, **_COMMON)
settings.register_profile("ci-quick", max_examples=60, derandomize=True, print_blob=True, **_COMMON)
settings.register_profile("thorough", max_examples=2000, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
