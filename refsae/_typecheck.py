"""Runtime shape and dtype checking: jaxtyping annotations enforced by beartype at call time.

Every public array function of `refsae.oracle` and `refsae.torch` is wrapped by `typechecked`
(spec clause NOT-3). A wrong shape raises `jaxtyping.TypeCheckError` whose message names the
parameter and the current value of every dimension (`batch=…`, `d_in=…`).

Set `REFSAE_CHECKS=0` in the environment *before importing refsae* to turn the checks off (for
benchmarks only); value checks in `refsae._validate` obey the same switch.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

from beartype import BeartypeConf, beartype
from jaxtyping import jaxtyped

F = TypeVar("F", bound=Callable[..., object])

CHECKS_ENABLED: bool = os.environ.get("REFSAE_CHECKS", "1") != "0"


# PEP 484's numeric tower: an `int` is accepted where a `float` is annotated (eps=1, l1_coefficient=0).
_BEARTYPE = beartype(conf=BeartypeConf(is_pep484_tower=True))


def typechecked(fn: F) -> F:
    """Check `fn`'s jaxtyping annotations with beartype on every call (identity when checks are off)."""
    if not CHECKS_ENABLED:
        return fn
    return jaxtyped(typechecker=_BEARTYPE)(fn)
