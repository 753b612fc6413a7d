"""CON-4 in refsae.torch: tiny rows are directions in every dtype (torch's `vector_norm` does not
rescale, so the raw squares of a float32 row of 1e-23 are 0). Compared with the oracle exactly as the
table's rows are (`check.compare`: the rows' own bounds under the tolerance rule)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from refsae.cases import Case
from refsae.checking import table
from refsae.checking.check import compare
from refsae.checking.implementations import TorchImplementation
from refsae.checking.strategies import TORCH_DTYPES
from refsae.checking.tolerances import SMALLEST_NORMAL


@pytest.mark.parametrize("dtype", list(TORCH_DTYPES))
def test_a_tiny_row_renormalises_to_a_unit_row_and_loses_its_parallel_gradient(dtype: str) -> None:
    """CON-4: a row just above the dtype's smallest normal, whose squares underflow even float32, is
    renormalised and loses its parallel gradient as the oracle says; a zero row keeps its gradient."""
    tiny = 4 * SMALLEST_NORMAL[dtype]
    W = np.array([[tiny, -tiny, 0.0], [3.0, 4.0, 0.0], [0.0, 0.0, 0.0]])
    g = np.ones_like(W)
    impl = TorchImplementation("cpu")
    for name, case in (
        ("renormalise_rows", Case({"W_dec": W}, {}, dtype)),
        ("remove_parallel_component", Case({"W_dec": W, "grad_W_dec": g}, {}, dtype)),
    ):
        op = table.get(name)
        expected, actual = op.reference(case), impl.run(name, case)
        compare(op, case, expected, actual)  # raises Mismatch beyond the allowed error
    assert np.all(actual["grad_W_dec"][2] == 1.0)  # PAR-3


def test_resampling_takes_a_tiny_direction_as_a_direction_in_bfloat16() -> None:
    """CON-4 / RES-11: the `ci` case that found it: a chosen input 6.4e-28 away from b_dec, centred;
    checked as the `resample_anthropic` row checks it."""
    rng = np.random.default_rng(0)
    arrays = {
        "param.W_enc": rng.normal(size=(2, 3)),
        "param.b_enc": rng.normal(size=3),
        "param.W_dec": rng.normal(size=(3, 2)),
        "param.b_dec": np.array([0.0, 6.373996114185775e-28]),
        "dead": np.array([1, 0, 0]),
        "chosen": np.zeros((3, 2)),
    }
    arrays = {
        k: torch.tensor(v).to(torch.bfloat16).double().numpy() if k != "dead" else v
        for k, v in arrays.items()
    }
    op = table.get("resample_anthropic")
    case = Case(arrays, {"encoder_scale": 0.2, "centred": True}, "bfloat16")
    expected, actual = op.reference(case), TorchImplementation("cpu").run("resample_anthropic", case)
    assert expected["resampled"][0] and actual["resampled"][0]
    compare(op, case, expected, actual)
