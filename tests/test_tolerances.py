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


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("n", [2, 17, 64, 1000])
def test_half_precision_matrix_products_accumulate_in_float32(dtype: str, n: int) -> None:
    """TOL-3: measured, not assumed. With e = 2u, the dtype's spacing at 1, a length-n product whose
    only non-zero terms are p1 = (1 + e)·(1 + e) = 1 + 2e + e² (first) and
    p2 = (1 + e)·(−(1 + 2e)) = −(1 + 3e + 2e²) (last) has the exact value −e(1 + e), a number of the
    dtype. In `ACCUMULATOR[dtype]` (float32) the products need at most 2p <= 24 bits and the sum
    is exact, so the stored result is −e(1 + e) exactly. A half-precision accumulator holds p1 or
    p2 alone at some point, rounded to 1 + 2e or −(1 + 3e) (e², 2e² < e/2): the sum then comes out
    −e (both products rounded), −e(1 + 2e) or −e(1 − e) (one rounded, the other added exactly),
    never −e(1 + e). Every column of a (16, n) × (n, 23) product is measured."""
    torch_dtype = getattr(torch, dtype)
    e = 2 * UNIT_ROUNDOFF[dtype]
    exact = -e * (1 + e)
    a = torch.zeros(16, n, dtype=torch.float64)
    b = torch.zeros(n, 23, dtype=torch.float64)
    a[:, 0], a[:, -1] = 1 + e, 1 + e
    b[0, :], b[-1, :] = 1 + e, -(1 + 2 * e)
    assert torch.equal(a.to(torch_dtype).double(), a) and torch.equal(b.to(torch_dtype).double(), b)
    assert float(torch.tensor(exact).to(torch_dtype)) == exact  # representable: a single rounding keeps it

    def rounded(v: float) -> float:
        return float(torch.tensor(v, dtype=torch.float64).to(torch_dtype).double())

    p1, p2 = (1 + e) * (1 + e), (1 + e) * -(1 + 2 * e)
    half_accumulated = {
        rounded(rounded(p1) + rounded(p2)),
        rounded(rounded(p1) + p2),
        rounded(p1 + rounded(p2)),
    }
    assert exact not in half_accumulated  # the measurement tells the two accumulators apart

    accumulator = getattr(torch, ACCUMULATOR[dtype])
    in_accumulator = (a.to(torch_dtype).to(accumulator) @ b.to(torch_dtype).to(accumulator)).to(torch_dtype)
    assert torch.all(in_accumulator.double() == exact)  # the arithmetic above, in float32
    measured = (a.to(torch_dtype) @ b.to(torch_dtype)).double()
    assert torch.all(measured == exact), sorted(set(measured.flatten().tolist()))


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


def test_bfloat16_matrix_products_may_flush_subnormal_results_and_the_floor_covers_a_flush() -> None:
    """TOL-8: measured, not assumed: a bfloat16 product either flushes the subnormal result to 0 (the
    oneDNN path of CPUs with bfloat16 instructions) or keeps it, never anything else; float32 keeps it;
    and the floor of a stored bfloat16 result allows an error of ν, so a flushed result passes."""
    import torch

    from refsae.checking.tolerances import (
        FLUSHES_SUBNORMALS,
        SMALLEST_NORMAL,
        UNIT_ROUNDOFF,
        Bound,
        allowed_error,
        magnitude_floor,
    )

    n = 64
    nu = SMALLEST_NORMAL["bfloat16"]
    u = torch.full((n, 16), -nu, dtype=torch.float64)
    g = torch.full((n, 23), 0.3 / n, dtype=torch.float64)
    exact = float((u.T @ g)[0, 0])
    half = float((u.bfloat16().T @ g.bfloat16())[0, 0])
    kept = float((u.float().T @ g.float())[0, 0])
    assert exact != 0.0 and kept != 0.0  # float32 keeps a subnormal result
    # flushed, or kept: within the rounding of a float32 accumulation then one bfloat16 store (≤ ν·u)
    assert half == 0.0 or abs(half - exact) <= nu * UNIT_ROUNDOFF["bfloat16"] + abs(kept - exact), half
    assert "bfloat16" in FLUSHES_SUBNORMALS and "float32" not in FLUSHES_SUBNORMALS
    with magnitude_floor("bfloat16"):
        b = Bound(np.array([abs(exact)]), k_acc=n, k_store=1)
    assert allowed_error(b, "bfloat16")[0] >= abs(exact)  # the error of a flush, wherever it happens
