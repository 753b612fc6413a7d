"""The `SAE` module: its loss and autograd gradients are the oracle's, the parallel-gradient hook
equals the explicit call, the constraint runs after the optimizer step (CON-3, PAR-4, GRAD-1)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from refsae import torch as rt
from refsae.cases import Case
from refsae.checking import table
from refsae.checking.check import compare
from refsae.checking.tolerances import UNIT_ROUNDOFF, gamma
from refsae.conventions import Conventions
from refsae.torch import SAE, SAEConfig


def _sae(conventions: Conventions, *, hook: bool = False, n_inst: int | None = None, seed: int = 0) -> SAE:
    config = SAEConfig(
        d_in=6,
        d_sae=10,
        n_inst=n_inst,
        l1_coefficient=0.3,
        conventions=conventions,
        parallel_grad_hook=hook,
        dtype=torch.float64,
    )
    sae = SAE(config, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        sae.b_enc.add_(0.1)
        sae.b_dec.add_(torch.linspace(-0.5, 0.5, 6, dtype=torch.float64))
    return sae


def _params(sae: SAE) -> dict[str, np.ndarray]:
    return {k: getattr(sae, k).detach().numpy().copy() for k in ("W_enc", "b_enc", "W_dec", "b_dec")}


def _matches_table_row(
    op_name: str, x: torch.Tensor, sae: SAE, c: Conventions, actual: dict[str, np.ndarray]
) -> None:
    """Compare with the oracle through the operation table's own bounds (TOL-1), in float64."""
    op = table.get(op_name)
    case = Case(
        {"x": x.numpy(), **_params(sae)}, {"l1_coefficient": sae.config.l1_coefficient, "conventions": c}
    )
    compare(op, case, op.reference(case), actual)


@given(
    st.builds(
        Conventions,
        encode=st.sampled_from(("tied", "untied")),
        decoder=st.sampled_from(("constrained", "normalised")),
        reconstruction=st.sampled_from(("sum", "mean", "fvu")),
        sparsity=st.sampled_from(("l1", "l1_decoder_norm")),
    ),
    st.sampled_from((None, 2)),
)
def test_module_loss_and_gradients_equal_the_oracle(c: Conventions, n_inst: int | None) -> None:
    """LOSS-6, GRAD-1 through the module API, every convention, with and without instances."""
    sae = _sae(c, n_inst=n_inst)
    x = torch.randn(
        8,
        *(() if n_inst is None else (n_inst,)),
        6,
        generator=torch.Generator().manual_seed(1),
        dtype=torch.float64,
    )
    loss = sae.loss(x)
    loss.backward()
    _matches_table_row("total_loss", x, sae, c, {"loss": loss.detach().numpy()})
    grads = {k: getattr(sae, k).grad for k in ("W_enc", "b_enc", "W_dec", "b_dec")}
    _matches_table_row("loss_gradients", x, sae, c, {k: g.numpy() for k, g in grads.items() if g is not None})


def test_the_parallel_gradient_hook_equals_the_explicit_removal() -> None:
    """PAR-4: hook on W_dec (sparse_autoencoder's UnitNormDecoder) == explicit call after backward."""
    x = torch.randn(16, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    explicit, hooked = _sae(Conventions()), _sae(Conventions(), hook=True)
    explicit.loss(x).backward()
    explicit.remove_parallel_grad_()
    hooked.loss(x).backward()
    assert explicit.W_dec.grad is not None and hooked.W_dec.grad is not None
    torch.testing.assert_close(explicit.W_dec.grad, hooked.W_dec.grad, rtol=0, atol=0)
    dots = (hooked.W_dec.grad * hooked.W_dec.detach()).sum(-1)
    scale = (hooked.W_dec.grad.abs() * hooked.W_dec.detach().abs()).sum(-1)
    assert bool((dots.abs() <= 4 * gamma(16, UNIT_ROUNDOFF["float64"]) * scale).all())
    with pytest.raises(RuntimeError, match="hook is registered"):
        hooked.remove_parallel_grad_()


def test_a_training_step_in_the_specified_order_keeps_unit_rows() -> None:
    """CON-3: forward, loss, backward, parallel removal, optimizer step, then the constraint."""
    sae = _sae(Conventions())
    optimizer = torch.optim.Adam(sae.parameters(), lr=1e-2)
    x = torch.randn(32, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    for _ in range(3):
        optimizer.zero_grad()
        sae.loss(x).backward()
        sae.remove_parallel_grad_()
        optimizer.step()
        drift = (torch.linalg.vector_norm(sae.W_dec.detach(), dim=-1) - 1).abs().max()
        assert float(drift) > 0  # Adam moved rows off the sphere despite parallel removal (CON-3)
        sae.constrain_()
        norms = torch.linalg.vector_norm(sae.W_dec.detach(), dim=-1)
        assert float((norms - 1).abs().max()) <= gamma(8, UNIT_ROUNDOFF["float64"])


def test_module_forward_is_encode_then_decode() -> None:
    """FWD-1."""
    sae = _sae(Conventions(decoder="normalised"))
    x = torch.randn(4, 6, dtype=torch.float64)
    f, x_hat = sae(x)
    torch.testing.assert_close(f, sae.encode(x), rtol=0, atol=0)
    expected = rt.decode(f, sae.W_dec, sae.b_dec, decoder="normalised")
    torch.testing.assert_close(x_hat, expected, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("field", "value"), [("d_in", 0), ("d_sae", -3), ("n_inst", 0), ("l1_coefficient", -1.0)]
)
def test_config_rejects_invalid_sizes_and_coefficients(field: str, value: float) -> None:
    """NOT-1, LOSS-7."""
    kwargs = {"d_in": 4, "d_sae": 8, field: value}
    with pytest.raises(ValueError, match=field):
        SAEConfig(**kwargs)  # type: ignore[arg-type]


def test_module_initialises_unit_norm_decoder_rows_and_encoder_as_transpose() -> None:
    """CON-1 at initialisation."""
    sae = SAE(SAEConfig(d_in=5, d_sae=7, n_inst=3))
    norms = torch.linalg.vector_norm(sae.W_dec.detach().double(), dim=-1)
    assert float((norms - 1).abs().max()) <= gamma(8, UNIT_ROUNDOFF["float32"])
    assert sae.W_enc.shape == (3, 5, 7)
