"""Dead latents (dead-latents.md): case strategies and rows of fire counts and the two dead rules.

Every float array is representable in the case's dtype (STR-1); integer arrays (fire counts, steps
since fired) are int64 and need no rounding. The strategies aim at the edges of each rule: latents
that never fire, exact zeros and negative values of `f` (DEAD-1), counts and thresholds that tie
exactly (DEAD-2, DEAD-4).
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from refsae.cases import Case
from refsae.checking import strategies as rs
from refsae.checking.equivalence import Equivalence
from refsae.checking.examples import BATCH
from refsae.checking.operation import Operation, exact
from refsae.oracle.dead import dead_by_fire_fraction_product_form


@st.composite
def latents_with_dead(draw: st.DrawFn, shape: rs.Shape, dtype: str) -> np.ndarray:
    """f of shape (batch, *inst, d_sae): ReLU-like (non-negative with exact zeros) two times in three,
    signed otherwise (a negative value does not fire, DEAD-1); some latents are 0 on every example."""
    scale = draw(rs.scales(dtype))
    f = draw(rs.arrays((shape.batch, *shape.inst, shape.d_sae), dtype, scale)).copy()
    if draw(st.integers(0, 2)) > 0:
        f = np.maximum(f, 0.0)
    silent = draw(st.lists(st.booleans(), min_size=shape.d_sae, max_size=shape.d_sae))
    f[..., np.array(silent, dtype=bool)] = 0.0
    return f


def seeded_rng(draw: st.DrawFn) -> np.random.Generator:
    return np.random.default_rng(draw(st.integers(0, 2**32 - 1)))


@st.composite
def fire_count_cases(draw: st.DrawFn, dtype: str) -> Case:
    """f for `fire_counts` (DEAD-1)."""
    shape = draw(rs.shapes())
    return Case({"f": draw(latents_with_dead(shape, dtype))}, {}, dtype)


PRODUCT_FORM_TIES: tuple[tuple[int, int], ...] = tuple(
    (k, n) for n in range(1, 200) for k in range(n) if (k / n) * n < k
)
"""(k, n) whose float64 quotient k/n, multiplied back by n, rounds below k: there the quotient rule
of DEAD-2 and the product form `count <= threshold * n` disagree at the tie."""


@st.composite
def fraction_cases(draw: st.DrawFn, dtype: str) -> Case:
    """Counts in 0 … n_examples with thresholds at, just beside, and away from a tie k/n; a third of
    the time the threshold is a tie where the product form rounds the other way, with a count on it
    (DEAD-2)."""
    shape = draw(rs.shapes())
    hard = draw(st.integers(0, 2)) == 0
    if hard:
        k, n = draw(st.sampled_from(PRODUCT_FORM_TIES))
    else:
        n = draw(st.integers(1, 64) | st.integers(65, 100_000))
        k = draw(st.integers(0, n - 1))
    tie = k / n
    beside = (float(np.nextafter(tie, 1.0)), max(0.0, float(np.nextafter(tie, -1.0))), 0.0, 0.1, 0.3)
    threshold = (
        tie if hard else draw(st.just(tie) | st.sampled_from(beside) | st.floats(0.0, 1.0, exclude_max=True))
    )
    rng = seeded_rng(draw)
    size = (*shape.inst, shape.d_sae)
    counts = rng.integers(0, n + 1, size)
    special = rng.choice(np.array([0, k, k + 1, n, 3 * n // 10]), size)
    counts = np.where(rng.uniform(size=size) < 0.5, special, counts).astype(np.int64)
    if hard:
        counts.flat[0] = k  # a count exactly at the tie
    return Case({"fire_counts": counts}, {"n_examples": n, "threshold": threshold}, dtype)


@st.composite
def steps_update_cases(draw: st.DrawFn, dtype: str) -> Case:
    """steps_since in 0 … 999 (zeros often) and a batch of latents (DEAD-3)."""
    shape = draw(rs.shapes())
    rng = seeded_rng(draw)
    size = (*shape.inst, shape.d_sae)
    steps = np.where(rng.uniform(size=size) < 0.3, 0, rng.integers(0, 1000, size)).astype(np.int64)
    return Case({"steps_since": steps, "f": draw(latents_with_dead(shape, dtype))}, {}, dtype)


@st.composite
def dead_by_steps_cases(draw: st.DrawFn, dtype: str) -> Case:
    """steps_since around the limit n (n − 1, n, n + 1) and anywhere else (DEAD-4)."""
    shape = draw(rs.shapes())
    n = draw(st.integers(0, 10) | st.integers(11, 100_000))
    rng = seeded_rng(draw)
    size = (*shape.inst, shape.d_sae)
    near = np.maximum(0, n + rng.integers(-1, 2, size))
    steps = np.where(rng.uniform(size=size) < 0.6, near, rng.integers(0, 2 * n + 2, size)).astype(np.int64)
    return Case({"steps_since": steps}, {"n": n}, dtype)


# Integer-input rows run in float64 only: the case dtype converts float arrays, and they have none.
ROWS = (
    Operation(
        name="fire_counts",
        summary="#{b : f_bj > 0} per latent: firing is strictly positive",
        clauses=("DEAD-1", "DEAD-5"),
        arrays=("f",),
        outputs=("fire_counts",),
        cases=fire_count_cases,
        bounds=exact("fire_counts"),
    ),
    Operation(
        name="dead_by_fire_fraction",
        summary="dead where fire_counts / n_examples <= threshold (float64 quotient)",
        clauses=("DEAD-2", "DEAD-5"),
        arrays=("fire_counts",),
        outputs=("dead",),
        cases=fraction_cases,
        bounds=exact("dead"),
        example={"n_examples": BATCH, "threshold": 0.25},
        dtypes=("float64",),
    ),
    Operation(
        name="update_steps_since_fired",
        summary="0 where the latent fired in the batch, steps_since + 1 elsewhere",
        clauses=("DEAD-3", "DEAD-5"),
        arrays=("steps_since", "f"),
        outputs=("steps_since",),
        cases=steps_update_cases,
        bounds=exact("steps_since"),
    ),
    Operation(
        name="dead_by_steps",
        summary="dead where steps_since > n",
        clauses=("DEAD-4", "DEAD-5"),
        arrays=("steps_since",),
        outputs=("dead",),
        cases=dead_by_steps_cases,
        bounds=exact("dead"),
        example={"n": 1},
        dtypes=("float64",),
    ),
)


def _product_form(op: Operation, case: Case, params: object) -> dict[str, np.ndarray]:
    o = case.options
    counts = case.arrays["fire_counts"]
    return {"dead": dead_by_fire_fraction_product_form(counts, o["n_examples"], o["threshold"])}


EQUIVALENCES = (
    Equivalence(
        name="fire_fraction_product_form",
        formula="dead where count <= threshold · n_examples (the float64 product) instead of the quotient "
        "count / n_examples <= threshold: the same rule but at the kink, where the fraction equals the "
        "threshold before rounding",
        clause="EQ-10",
        rows=("dead_by_fire_fraction",),
        reference=_product_form,
        kind="tie",
        about=("DEAD-2",),
    ),
)
