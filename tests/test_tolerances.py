"""The tolerance rule (TOL-1..TOL-7): its arithmetic, and that it is neither vacuous nor violated."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from refsae.checking import bounds
from refsae.checking.tolerances import (
    ACCUMULATOR,
    DTYPES,
    SMALLEST_NORMAL,
    UNIT_ROUNDOFF,
    Bound,
    allowed_error,
    gamma,
    leaf,
    magnitude_floor,
    mul,
)


def test_unit_roundoffs_are_half_the_machine_epsilon_of_each_dtype() -> None:
    """TOL-2."""
    for name in DTYPES:
        assert UNIT_ROUNDOFF[name] == torch.finfo(getattr(torch, name)).eps / 2


def test_half_precision_accumulates_in_float32() -> None:
    """TOL-3."""
    assert ACCUMULATOR["bfloat16"] == ACCUMULATOR["float16"] == "float32"


def test_gamma_is_n_u_over_one_minus_n_u_and_refuses_n_u_at_least_one() -> None:
    """TOL-1."""
    assert gamma(0, 0.5) == 0.0
    assert gamma(3, 2.0**-8) == 3 * 2.0**-8 / (1 - 3 * 2.0**-8)
    with pytest.raises(ValueError, match="n·u >= 1"):
        gamma(256, 2.0**-8)


def test_products_add_chains_and_the_oracle_term_is_included() -> None:
    """TOL-1, TOL-4, TOL-5."""
    a = Bound(np.array([2.0]), 3, 1)
    b = Bound(np.array([4.0]), 5, 2)
    p = mul(np.array([8.0]), a, b, k_acc=1, k_store=1)
    assert (p.k_acc, p.k_store) == (9, 4)
    u, u64 = UNIT_ROUNDOFF["float32"], UNIT_ROUNDOFF["float64"]
    expected = (gamma(4, u) + gamma(9, u) + gamma(13, u64)) * 8.0
    assert float(allowed_error(p, "float32")[0]) == expected


def test_an_exact_input_has_zero_allowed_error() -> None:
    """TOL-1: no rounding, no slack."""
    assert float(allowed_error(leaf(np.array([3.0])), "bfloat16")[0]) == 0.0


def test_the_floor_applies_only_to_stored_results_and_only_inside_its_context() -> None:
    """TOL-7."""
    with magnitude_floor("float16"):
        stored = Bound(np.array([0.0, 1e-9]), 0, 1)
        exact = leaf(np.array([1e-9]))
    assert stored.magnitude.tolist() == [SMALLEST_NORMAL["float16"]] * 2
    assert exact.magnitude.tolist() == [1e-9]
    assert Bound(np.array([1e-9]), 0, 1).magnitude.tolist() == [1e-9]


def test_the_encode_bound_is_respected_and_not_vacuous_on_a_worked_example() -> None:
    """TOL-1, TOL-4: bfloat16 encode of a 64-wide input errs within, and within a few times of, the bound."""
    rng = np.random.default_rng(0)

    def to_bf16(a: np.ndarray) -> np.ndarray:
        return torch.from_numpy(a).to(torch.bfloat16).double().numpy()

    x, W, b, bd = (to_bf16(rng.standard_normal(s)) for s in ((32, 64), (64, 16), (16,), (64,)))
    W = to_bf16(W / 8)
    exact = (x - bd) @ W + b
    computed = (
        (
            (torch.from_numpy(x).bfloat16() - torch.from_numpy(bd).bfloat16())
            @ torch.from_numpy(W).bfloat16()
            + torch.from_numpy(b).bfloat16()
        )
        .double()
        .numpy()
    )
    allowed = allowed_error(bounds.pre_activations(x, W, b, bd, "tied"), "bfloat16")
    ratio = np.abs(computed - exact) / allowed
    assert ratio.max() <= 1.0
    assert ratio.max() >= 0.05, "the bound is more than 20× the largest error seen: too loose to be useful"


def test_bfloat16_matrix_products_flush_subnormal_results_and_the_floor_covers_the_flush() -> None:
    """TOL-8: measured, not assumed: the flush happens in bfloat16 (not in float32), and the floor
    of a stored bfloat16 result allows an error of ν, so a flushed result passes."""
    import torch

    from refsae.checking.tolerances import (
        FLUSHES_SUBNORMALS,
        SMALLEST_NORMAL,
        Bound,
        allowed_error,
        magnitude_floor,
    )

    n = 64
    nu = SMALLEST_NORMAL["bfloat16"]
    u = torch.full((n, 16), -nu, dtype=torch.float64)
    g = torch.full((n, 23), 0.3 / n, dtype=torch.float64)
    exact = float((u.T @ g)[0, 0])
    flushed = float((u.bfloat16().T @ g.bfloat16())[0, 0])
    kept = float((u.float().T @ g.float())[0, 0])
    assert flushed == 0.0 and exact != 0.0 and kept != 0.0  # float32 keeps a subnormal result
    assert "bfloat16" in FLUSHES_SUBNORMALS and "float32" not in FLUSHES_SUBNORMALS
    with magnitude_floor("bfloat16"):
        b = Bound(np.array([abs(exact)]), k_acc=n, k_store=1)
    assert allowed_error(b, "bfloat16")[0] >= abs(exact - flushed)
