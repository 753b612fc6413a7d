"""CON-4 in refsae.torch: tiny rows are directions in every dtype (torch's `vector_norm` does not
rescale, so the raw squares of a float32 row of 1e-23 are 0)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from refsae import oracle
from refsae import torch as rt
from refsae.oracle.optimizer import PARAMETERS
from refsae.strategies import TORCH_DTYPES
from refsae.tolerances import SMALLEST_NORMAL, UNIT_ROUNDOFF


@pytest.mark.parametrize("dtype", list(TORCH_DTYPES))
def test_a_tiny_row_renormalises_to_a_unit_row_and_loses_its_parallel_gradient(dtype: str) -> None:
    """CON-4: rows just above the dtype's smallest normal, whose squares underflow even float32."""
    tiny = 4 * SMALLEST_NORMAL[dtype]
    W = torch.tensor([[tiny, -tiny, 0.0], [3.0, 4.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    W = W.to(TORCH_DTYPES[dtype])
    unit = rt.renormalise_rows(W).double()
    u = UNIT_ROUNDOFF[dtype]
    assert torch.allclose(unit.norm(dim=-1), torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64), atol=8 * u)
    g = torch.ones_like(W)
    out = rt.remove_parallel_component(W, g).double()
    assert abs(float((out[0] * unit[0]).sum())) <= 8 * u * 3  # |g| = 1 per entry
    assert torch.equal(out[2], g[2].double())  # a zero row keeps its gradient (PAR-3)


def test_resampling_takes_a_tiny_direction_as_a_direction_in_bfloat16() -> None:
    """CON-4 / RES-11: the `ci` case that found it: a chosen input 6.4e-28 away from b_dec, centred."""
    rng = np.random.default_rng(0)
    param = {
        "W_enc": rng.normal(size=(2, 3)),
        "b_enc": rng.normal(size=3),
        "W_dec": rng.normal(size=(3, 2)),
        "b_dec": np.array([0.0, 6.373996114185775e-28]),
    }
    param = {k: v.astype(np.float32).astype(np.float64) for k, v in param.items()}  # bf16-exact below
    param = {k: torch.tensor(v).to(torch.bfloat16).double().numpy() for k, v in param.items()}
    dead = np.array([True, False, False])
    chosen = np.zeros((3, 2))
    expected = oracle.resample_anthropic(param, dead, chosen, centred=True)
    actual = rt.resample_anthropic(
        {k: torch.tensor(v).to(torch.bfloat16) for k, v in param.items()},
        torch.tensor(dead),
        torch.tensor(chosen).to(torch.bfloat16),
        centred=True,
    )
    assert bool(expected["resampled"][0]) and bool(actual["resampled"][0])
    for name in PARAMETERS:
        np.testing.assert_allclose(actual["param"][name].double().numpy(), expected["param"][name], atol=1e-2)
