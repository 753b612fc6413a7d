"""Hypothesis profiles (NOT-8): `dev` (quick, random), `ci` (200 examples, derandomized: the same
examples on every run), `thorough` (2000 examples, random). `REFSAE_PROFILE` picks one; default `dev`."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

PROFILES = ("dev", "ci", "thorough")

# too_slow / filter_too_much: several strategies filter (FVU needs a certain variance, gradients a
# kink margin) and draw up to 64×64 arrays; data generation is then legitimately the slow part.
_SLOW_DATA = [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large]

settings.register_profile("dev", max_examples=50, deadline=None, suppress_health_check=_SLOW_DATA)
settings.register_profile(
    "ci",
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=_SLOW_DATA,
)
settings.register_profile("thorough", max_examples=2000, deadline=None, suppress_health_check=_SLOW_DATA)


def resolve(name: str | None = None) -> str:
    """`name`, or `$REFSAE_PROFILE`, or `dev`; `ValueError` for an unknown one."""
    chosen = name or os.environ.get("REFSAE_PROFILE", "dev")
    if chosen not in PROFILES:
        raise ValueError(f"unknown hypothesis profile {chosen!r}; expected one of {', '.join(PROFILES)}")
    return chosen


def get(name: str | None = None) -> settings:
    """The settings of profile `name` (resolved as `resolve` does), without loading it globally."""
    return settings.get_profile(resolve(name))


def load(name: str | None = None) -> str:
    """Load profile `name` (or `$REFSAE_PROFILE`, or `dev`) and return its name."""
    chosen = name or os.environ.get("REFSAE_PROFILE", "dev")
    if chosen not in PROFILES:
        raise ValueError(f"unknown hypothesis profile {chosen!r}; expected one of {', '.join(PROFILES)}")
    settings.load_profile(chosen)
    return chosen
