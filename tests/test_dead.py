"""Dead-latent detection: the two rules, their invariants, edge cases and errors (DEAD-1..DEAD-7).

The table rows (`refsae.checking.table`: fire_counts, dead_by_fire_fraction, update_steps_since_fired,
dead_by_steps) check refsae.torch against the oracle exactly; this file checks what the rules mean,
on both sides. The checker's power on these rows (plausible bugs in the rules) is shown by the
registry's mutants (`refsae.conform.mutants`), run by `tests/test_checker_power.py`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from refsae import oracle
from refsae import torch as rt
from refsae.checking import strategies as rs
from refsae.checking.rows.dead import latents_with_dead

SIDES = ("oracle", "torch")


def _call(side: str, name: str, *arrays: np.ndarray, **options: Any) -> np.ndarray:
    """Run `name` on the oracle or on refsae.torch (float64 / int64 tensors) and return NumPy."""
    if side == "oracle":
        return np.asarray(getattr(oracle, name)(*arrays, **options))
    result = getattr(rt, name)(*(torch.from_numpy(np.array(a)) for a in arrays), **options)
    return np.asarray(result.numpy())


def _shape_and_latents(dtype: str = "float64") -> st.SearchStrategy[tuple[rs.Shape, np.ndarray]]:
    return rs.shapes(max_dim=16, max_batch=16).flatmap(
        lambda s: latents_with_dead(s, dtype).map(lambda f: (s, f))
    )


# --- DEAD-1: firing is strictly positive ------------------------------------------------------------


@pytest.mark.parametrize("side", SIDES)
def test_a_latent_fires_exactly_when_its_value_is_strictly_positive(side: str) -> None:
    """DEAD-1: a zero (a TopK latent selected with value 0), a negative zero and a negative value do
    not fire; the smallest positive subnormal does."""
    tiny = np.nextafter(0.0, 1.0)
    f = np.array([[0.0, -0.0, -3.0, tiny, 2.0], [0.0, 0.0, 0.0, 0.0, 5.0]])
    assert _call(side, "fire_counts", f).tolist() == [0, 0, 0, 1, 2]
    assert _call(side, "update_steps_since_fired", np.array([4, 4, 4, 4, 4]), f).tolist() == [5, 5, 5, 0, 0]


@pytest.mark.parametrize("dtype", ["float64", "float32", "bfloat16", "float16"])
def test_torch_counts_firing_latents_in_every_dtype_as_int64(dtype: str) -> None:
    """DEAD-1, DEAD-5: counts are int64 and steps int64 whatever the dtype of f; masks are bool."""
    f = torch.tensor([[0.0, 1.0], [2.0, 0.0], [3.0, 0.0]], dtype=getattr(torch, dtype))
    counts = rt.fire_counts(f)
    assert counts.dtype == torch.int64 and counts.tolist() == [2, 1]
    steps = rt.update_steps_since_fired(torch.tensor([7, 7], dtype=torch.int32), f[1:2])
    assert steps.dtype == torch.int64 and steps.tolist() == [0, 8]
    assert rt.dead_by_steps(steps, 7).dtype == torch.bool
    assert rt.dead_by_fire_fraction(counts, 3, 0.5).dtype == torch.bool


@given(_shape_and_latents(), st.integers(1, 15))
def test_fire_counts_of_a_batch_are_the_sum_of_the_counts_of_its_parts(
    case: tuple[rs.Shape, np.ndarray], split: int
) -> None:
    """DEAD-1: counts add over examples, so a window's count is the sum over its batches."""
    _, f = case
    split = min(split, f.shape[0] - 1)
    whole = oracle.fire_counts(f)
    if split >= 1:
        np.testing.assert_array_equal(whole, oracle.fire_counts(f[:split]) + oracle.fire_counts(f[split:]))
    assert np.all((whole >= 0) & (whole <= f.shape[0]))


# --- DEAD-2: the fire-fraction rule ---------------------------------------------------------------


@pytest.mark.parametrize("side", SIDES)
def test_the_fraction_rule_compares_the_float64_quotient_so_exact_decimal_ties_are_dead(side: str) -> None:
    """DEAD-2: 63 fires in 90 examples is a fraction of exactly 0.7, dead at threshold 0.7; the
    product form `count <= threshold * n` would say alive, since 0.7 · 90 rounds to 62.99999999999999."""
    counts = np.array([62, 63, 64])
    assert _call(side, "dead_by_fire_fraction", counts, n_examples=90, threshold=0.7).tolist() == [
        True,
        True,
        False,
    ]
    assert 0.7 * 90 < 63  # the product form's rounding, for the record
    below = float(np.nextafter(0.7, 0.0))
    assert _call(side, "dead_by_fire_fraction", counts, n_examples=90, threshold=below).tolist() == [
        True,
        False,
        False,
    ]


@pytest.mark.parametrize("side", SIDES)
def test_threshold_zero_marks_exactly_the_latents_the_dead_fraction_counts(side: str) -> None:
    """DEAD-2, DEAD-7, MET-2: threshold 0 means "never fired in the window"."""
    counts = np.array([[0, 3, 0, 1], [5, 0, 0, 0]])
    dead = _call(side, "dead_by_fire_fraction", counts, n_examples=5, threshold=0.0)
    assert dead.tolist() == [[True, False, True, False], [False, True, True, True]]
    np.testing.assert_array_equal(dead.mean(axis=-1), oracle.dead_fraction(counts))


@given(
    st.integers(1, 1000).flatmap(
        lambda n: st.tuples(st.just(n), st.lists(st.integers(0, n), min_size=1, max_size=20))
    ),
    st.floats(0.0, 1.0, exclude_max=True),
    st.floats(0.0, 1.0, exclude_max=True),
)
def test_the_dead_mask_grows_with_the_threshold(window: tuple[int, list[int]], t1: float, t2: float) -> None:
    """DEAD-2: a higher threshold marks a superset of latents dead."""
    n, counts = window
    lo, hi = sorted((t1, t2))
    a = oracle.dead_by_fire_fraction(np.array(counts), n, lo)
    b = oracle.dead_by_fire_fraction(np.array(counts), n, hi)
    assert np.all(b[a])


# --- DEAD-3, DEAD-4: the steps-since-fired rule ---------------------------------------------------


@given(
    st.integers(1, 6).flatmap(
        lambda d: st.lists(
            st.lists(
                st.lists(st.sampled_from((0.0, 0.0, 1.5, -1.0)), min_size=d, max_size=d),
                min_size=1,
                max_size=4,
            ),
            min_size=1,
            max_size=12,
        )
    ),
    st.sampled_from(SIDES),
)
def test_steps_since_fired_grows_by_one_per_silent_batch_and_resets_to_zero_when_the_latent_fires(
    batches: list[list[list[float]]], side: str
) -> None:
    """DEAD-3: replayed against a per-latent loop over a sequence of batches, from counters of 0."""
    d_sae = len(batches[0][0])
    steps = np.zeros(d_sae, dtype=np.int64)
    expected = [0] * d_sae
    for batch in batches:
        f = np.array(batch)
        steps = _call(side, "update_steps_since_fired", steps, f)
        for j in range(d_sae):
            expected[j] = 0 if any(row[j] > 0 for row in batch) else expected[j] + 1
        assert steps.tolist() == expected


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("n", [0, 1, 5])
def test_a_latent_becomes_dead_by_steps_after_exactly_n_plus_one_silent_batches(side: str, n: int) -> None:
    """DEAD-3, DEAD-4, DEAD-7: the rule is `steps_since > n`; a latent firing every batch never dies."""
    only_latent_1_fires = np.array([[0.0, 1.0], [0.0, 0.0]])
    steps = np.zeros(2, dtype=np.int64)
    for step in range(1, n + 3):
        steps = _call(side, "update_steps_since_fired", steps, only_latent_1_fires)
        assert _call(side, "dead_by_steps", steps, n=n).tolist() == [step > n, False]


@given(_shape_and_latents(), st.integers(0, 50), st.floats(0.0, 1.0, exclude_max=True))
def test_a_latent_that_fires_on_every_example_is_never_dead_by_either_rule(
    case: tuple[rs.Shape, np.ndarray], n: int, threshold: float
) -> None:
    """DEAD-7: after any history, a batch in which latent j fires everywhere leaves it alive under
    both rules (its fraction is 1 > threshold, its counter 0 <= n)."""
    shape, f = case
    f = f.copy()
    f[..., 0] = 1.0
    counts = oracle.fire_counts(f)
    steps = oracle.update_steps_since_fired(np.full(counts.shape, 10**6, dtype=np.int64), f)
    assert not oracle.dead_by_fire_fraction(counts, shape.batch, threshold)[..., 0].any()
    assert not oracle.dead_by_steps(steps, n)[..., 0].any()


@given(st.lists(st.integers(0, 100), min_size=1, max_size=20), st.integers(0, 99))
def test_the_dead_mask_by_steps_shrinks_as_the_limit_grows(steps: list[int], n: int) -> None:
    """DEAD-4: a latent dead at limit n + 1 is dead at n."""
    s = np.array(steps)
    assert np.all(oracle.dead_by_steps(s, n)[oracle.dead_by_steps(s, n + 1)])


# --- DEAD-5, DEAD-6: results, shapes, edge cases, errors ------------------------------------------


@pytest.mark.parametrize("side", SIDES)
def test_instances_are_checked_independently_and_no_latents_give_empty_results(side: str) -> None:
    """DEAD-5, DEAD-6, NOT-2: shapes follow (*inst, d_sae); d_sae = 0 is valid and empty."""
    f = np.zeros((4, 3, 0))
    assert _call(side, "fire_counts", f).shape == (3, 0)
    assert _call(side, "update_steps_since_fired", np.zeros((3, 0), dtype=np.int64), f).shape == (3, 0)
    assert _call(side, "dead_by_steps", np.zeros((3, 0), dtype=np.int64), n=2).shape == (3, 0)
    empty_counts = np.zeros((3, 0), dtype=np.int64)
    assert _call(side, "dead_by_fire_fraction", empty_counts, n_examples=4, threshold=0.0).shape == (3, 0)
    f = np.zeros((2, 2, 3))
    f[:, 1, 2] = 1.0
    assert _call(side, "fire_counts", f).tolist() == [[0, 0, 0], [0, 0, 2]]


BAD_CALLS: list[tuple[str, tuple[Any, ...], dict[str, Any], str]] = [
    (
        "dead_by_fire_fraction",
        (np.array([0, -1]),),
        {"n_examples": 3, "threshold": 0.0},
        "fire_counts must be >= 0",
    ),
    ("dead_by_fire_fraction", (np.array([0, 4]),), {"n_examples": 3, "threshold": 0.0}, "<= n_examples"),
    ("dead_by_fire_fraction", (np.array([0]),), {"n_examples": 0, "threshold": 0.0}, "n_examples must be"),
    ("dead_by_fire_fraction", (np.array([0]),), {"n_examples": 3, "threshold": -0.1}, "threshold must be"),
    ("dead_by_fire_fraction", (np.array([0]),), {"n_examples": 3, "threshold": 1.0}, "threshold must be"),
    ("dead_by_fire_fraction", (np.array([0]),), {"n_examples": 3, "threshold": float("nan")}, "threshold"),
    ("dead_by_steps", (np.array([0, -1]),), {"n": 3}, "steps_since must be >= 0"),
    ("dead_by_steps", (np.array([0]),), {"n": -1}, "n must be an integer >= 0"),
    ("update_steps_since_fired", (np.array([-1]), np.ones((2, 1))), {}, "steps_since must be >= 0"),
    ("update_steps_since_fired", (np.array([0]), np.ones((0, 1))), {}, "empty batch"),
    ("fire_counts", (np.full((2, 1), np.inf),), {}, "f contains NaN or Inf"),
]


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize(("name", "arrays", "options", "message"), BAD_CALLS, ids=[b[3] for b in BAD_CALLS])
def test_invalid_counts_steps_windows_and_thresholds_raise_value_error(
    side: str, name: str, arrays: tuple[Any, ...], options: dict[str, Any], message: str
) -> None:
    """DEAD-6, NOT-5, NOT-6."""
    with pytest.raises(ValueError, match=message):
        _call(side, name, *arrays, **options)
