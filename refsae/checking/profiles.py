"""Hypothesis profiles (NOT-8): `dev` (quick, random), `ci` (200 examples, derandomized: the same
examples on every run), `thorough` (2000 examples, random). `REFSAE_PROFILE` picks one; default `dev`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

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


@contextmanager
def without_local_constants() -> Iterator[None]:
    """Draws that depend on nothing but the profile, the strategy and the hypothesis release (NOT-8).

    Hypothesis (since 6.131) sometimes draws a number from a pool of the literals it finds in the
    source of every *local* module imported so far (not site-packages, not tests). The pool grows
    as modules are imported, and a module with too many literals contributes none, so without this
    the `ci` profile's examples would change whenever code moves between modules, a literal is
    added anywhere in the package, or a library's test suite imports its own modules first (the
    pytest plugin). Inside this context the pool is empty: hypothesis's own global constants stay.
    Private API: on a release without `_get_local_constants` it does nothing."""
    try:
        from hypothesis.internal.conjecture import providers
    except ImportError:  # pragma: no cover - a release without the module
        yield
        return
    original: Any = getattr(providers, "_get_local_constants", None)
    cache: Any = getattr(providers, "CONSTANTS_CACHE", None)
    if original is None or cache is None:  # pragma: no cover - a release without the pool
        yield
        return
    empty = type(original())()
    providers._get_local_constants = lambda: empty
    cache.cache.clear()  # permitted constants are cached per choice type, with the local ones
    try:
        yield
    finally:
        providers._get_local_constants = original
        cache.cache.clear()
