"""Hypothesis profiles: "ci" (bounded and reproducible), "dev" (the default), "deep" (bug hunts).

Pick one with ``HYPOTHESIS_PROFILE=deep``; without it, "ci" when the ``CI`` variable is set and
"dev" otherwise.

A test that needs another example count or machine length than the profile's says so through
``examples(n)`` and ``steps(n)`` below, never with a bare number, so that "deep" deepens every
test and "ci" stays bounded.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=100,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile("dev", deadline=None)
settings.register_profile(
    "deep",
    max_examples=5000,
    stateful_step_count=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)

_default = "ci" if os.environ.get("CI") else "dev"
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or _default)


def examples(n: int) -> int:
    """``max_examples`` for a test that wants ``n`` where "ci" runs 100: scaled by the active
    profile (n under "ci" and "dev", 50 n under "deep"), and never above the profile's own
    ``max_examples``, so a cheap test cannot make a CI run longer than the profile promises."""
    active = settings.default.max_examples
    scaled = n * active // settings.get_profile("ci").max_examples
    return max(1, min(scaled, active))


def steps(n: int) -> int:
    """``stateful_step_count`` for a machine that wants ``n`` steps under "ci": scaled by the
    active profile's step count (4 n under "deep"), so long runs also reach deeper states."""
    return max(1, n * settings.default.stateful_step_count
               // settings.get_profile("ci").stateful_step_count)
