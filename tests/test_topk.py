"""TopK beyond the table rows (TOPK-1..TOPK-7): the order of ReLU and selection, ties, the sparse
decode's memory, the gradient mask, bad input. The checker's power on plausible TopK bugs: the
registry's mutants (`refsae.conform.mutants`), run by `tests/test_checker_power.py`."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.utils._python_dispatch import TorchDispatchMode

from refsae import oracle
from refsae import torch as rt
from refsae.checking import strategies as rs
from refsae.conventions import Conventions


@given(st.data())
def test_clamping_before_or_after_the_selection_gives_the_same_latents(data: st.DataObject) -> None:
    """TOPK-1: TopK(max(z, 0)) and max(TopK(z), 0) agree, ties and zeros included (grid draws)."""
    shape = data.draw(rs.shapes(max_dim=16))
    z = data.draw(rs.arrays((shape.batch, *shape.inst, shape.d_sae), "float64"))
    k = data.draw(st.integers(1, shape.d_sae))
    assert np.array_equal(oracle.topk(np.maximum(z, 0.0), k=k), oracle.topk(z, k=k))
    assert (np.count_nonzero(oracle.topk(z, k=k), axis=-1) <= k).all()


def test_the_canonical_rule_takes_the_lower_index_and_torch_takes_a_valid_selection() -> None:
    """TOPK-2: at a tie across the k-th value the oracle keeps the lower index; torch.topk keeps
    either, and whichever it keeps has the same values, from the tied candidates."""
    z = np.array([[5.0, 2.0, 7.0, 2.0, 2.0, -1.0]])
    f = oracle.topk(z, k=3)
    assert f.tolist() == [[5.0, 2.0, 7.0, 0.0, 0.0, 0.0]]
    ft = rt.topk(torch.from_numpy(z), k=3).numpy()
    assert sorted(ft[0].tolist()) == sorted(f[0].tolist())
    assert {j for j in range(6) if ft[0, j] == 2.0} <= {1, 3, 4}
    assert ft[0, 0] == 5.0 and ft[0, 2] == 7.0


class _Sizes(TorchDispatchMode):
    """Records the number of elements of every tensor an operator returns."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, tuple | list) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


@pytest.mark.parametrize("decoder", ["constrained", "normalised"])
def test_the_sparse_decode_and_its_backward_never_create_a_batch_by_d_sae_tensor(decoder: str) -> None:
    """TOPK-4: with d_sae = 50,000, batch = 64, k = 8, d_in = 4, every tensor created by the sparse
    decode and its backward has fewer than batch·d_sae/10 elements (the largest is W_dec's own
    gradient, d_sae·d_in), while the dense decode of the same latents creates batch·d_sae ones (the
    recorder sees them); both give the oracle's result."""
    batch, d_sae, d_in, k = 64, 50_000, 4, 8
    gen = torch.Generator().manual_seed(0)
    W_dec = torch.randn(d_sae, d_in, generator=gen, dtype=torch.float64, requires_grad=True)
    b_dec = torch.randn(d_in, generator=gen, dtype=torch.float64)
    values = torch.rand(batch, k, generator=gen, dtype=torch.float64, requires_grad=True)
    indices = torch.stack([torch.randperm(d_sae, generator=gen)[:k] for _ in range(batch)])
    sizes = _Sizes()
    with sizes:
        x_hat = rt.decode_sparse(values, indices, W_dec, b_dec, decoder=decoder)  # type: ignore[arg-type]
        x_hat.square().sum().backward()
    assert sizes.largest < batch * d_sae // 10, sizes.largest
    assert W_dec.grad is not None and values.grad is not None
    expected = oracle.decode_sparse(
        values.detach().numpy(),
        indices.numpy(),
        W_dec.detach().numpy(),
        b_dec.numpy(),
        decoder=decoder,  # type: ignore[arg-type]
    )
    assert np.abs(x_hat.detach().numpy() - expected).max() <= 1e-12
    dense = torch.zeros(batch, d_sae, dtype=torch.float64).scatter(-1, indices, values.detach())
    sizes_dense = _Sizes()
    with sizes_dense:
        rt.decode(dense, W_dec.detach(), b_dec, decoder=decoder)  # type: ignore[arg-type]
    assert sizes_dense.largest >= batch * d_sae


def test_latents_that_were_not_selected_receive_no_gradient() -> None:
    """TOPK-5: with k = 1 and every pre-activation positive, only the selected latent's encoder
    column and bias get gradient from an example, where ReLU would pass it to all of them."""
    x = np.array([[1.0, 0.5]])
    W_enc = np.array([[1.0, 0.5, 0.25], [0.0, 0.5, 1.0]])
    b_enc = np.array([0.1, 0.2, 0.3])
    W_dec = oracle.renormalise_rows(np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]))
    b_dec = np.zeros(2)
    topk = oracle.topk_loss_gradients(x, W_enc, b_enc, W_dec, b_dec, k=1).as_dict()
    relu = oracle.loss_gradients(x, W_enc, b_enc, W_dec, b_dec, l1_coefficient=0.0).as_dict()
    selected = int(np.argmax(oracle.pre_activations(x, W_enc, b_enc, b_dec)[0]))
    others = [j for j in range(3) if j != selected]
    assert (topk["b_enc"][others] == 0).all() and (topk["W_enc"][:, others] == 0).all()
    assert (topk["W_dec"][others] == 0).all()
    assert (relu["b_enc"][others] != 0).all()


@pytest.mark.parametrize("seed", range(4))
def test_topk_gradients_match_central_differences_of_the_topk_loss(seed: int) -> None:
    """TOPK-5: on cases whose selection and ReLU signs are far from any switch (a gap of 0.5 at the
    k-th value, |z| >= 0.25), the analytic gradient of every parameter entry matches the central
    difference of `topk_total_loss` with step 1e-6 to 1e-6 relative."""
    rng = np.random.default_rng(seed)
    batch, d_in, d_sae, k = 3, 3, 6, 2
    while True:  # draw until the margins hold (deterministic for a seed)
        x = rng.standard_normal((batch, d_in))
        W_enc = rng.standard_normal((d_in, d_sae)) * 0.3
        W_dec = oracle.renormalise_rows(rng.standard_normal((d_sae, d_in)))
        b_dec = rng.standard_normal(d_in) * 0.1
        z0 = (x - b_dec) @ W_enc
        # latents 0, 1 win everywhere (z >= 3); 2, 4 are positive but lose (ReLU would keep them)
        b_enc = np.array([3.0, 3.0, 0.6, -0.6, 0.6, -0.6]) - np.where(np.arange(d_sae) < k, z0.min(0), 0.0)
        z = oracle.pre_activations(x, W_enc, b_enc, b_dec)
        ordered = -np.sort(-z, axis=-1)
        if (
            (ordered[:, k - 1] - ordered[:, k] > 0.5).all()
            and (np.abs(z) >= 0.25).all()
            and (z[:, 2] > 0).all()
        ):
            break
    c = Conventions(reconstruction="mean", sparsity="l1_decoder_norm")
    params = {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": b_dec}
    grads = oracle.topk_loss_gradients(x, **params, k=k, l1_coefficient=0.1, conventions=c).as_dict()
    h = 1e-6
    for name, p in params.items():
        for index in np.ndindex(p.shape):
            plus = {n: v.copy() for n, v in params.items()}
            minus = {n: v.copy() for n, v in params.items()}
            plus[name][index] += h
            minus[name][index] -= h
            fd = (
                float(oracle.topk_total_loss(x, **plus, k=k, l1_coefficient=0.1, conventions=c))
                - float(oracle.topk_total_loss(x, **minus, k=k, l1_coefficient=0.1, conventions=c))
            ) / (2 * h)
            assert abs(fd - grads[name][index]) <= 1e-6 * max(1.0, abs(fd)), f"{name}{index}"


@pytest.mark.parametrize("side", ["oracle", "torch"])
@pytest.mark.parametrize("k", [0, 6, -1])
def test_k_outside_one_to_d_sae_raises_value_error(side: str, k: int) -> None:
    """TOPK-1."""
    z = np.zeros((2, 5))
    fn = oracle.topk if side == "oracle" else rt.topk
    arg: Any = z if side == "oracle" else torch.from_numpy(z)
    with pytest.raises(ValueError, match="k must be an integer in 1"):
        fn(arg, k=k)


@pytest.mark.parametrize("side", ["oracle", "torch"])
@pytest.mark.parametrize("bad", [-1, 5])
def test_an_index_outside_the_dictionary_raises_value_error(side: str, bad: int) -> None:
    """TOPK-4."""
    values, indices = np.ones((2, 2)), np.array([[0, 1], [2, bad]])
    W_dec, b_dec = np.ones((5, 3)), np.zeros(3)
    with pytest.raises(ValueError, match="indices must lie in 0"):
        if side == "oracle":
            oracle.decode_sparse(values, indices, W_dec, b_dec)
        else:
            rt.decode_sparse(*(torch.from_numpy(a) for a in (values, indices, W_dec, b_dec)))
