"""Matryoshka SAEs beyond the table rows (MAT-1..MAT-7, PERF-7): the widths' rules on every side, one
level as the plain BatchTopK SAE, the two level weightings' ratio, which levels train which latents,
the fast path's two-stage batch selection, and the training step. The rows are proved against the
oracle by `tests/test_torch_matches_oracle.py`; the checker's power on them by the mutants of
`refsae.conform.mutants.matryoshka`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from jaxtyping import TypeCheckError

from refsae import oracle
from refsae import torch as rt
from refsae.cases import Case
from refsae.checking import table
from refsae.checking.cases import pre_activations_of
from refsae.conventions import Conventions, ReconstructionConvention
from refsae.oracle.gradients import gradients_given_mask
from refsae.torch.fast import matryoshka as fast
from tests.float64_agreement import agree


def _case(
    seed: int, batch: int = 12, d_in: int = 4, d_sae: int = 10
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, d_in))
    params = {
        "W_enc": rng.standard_normal((d_in, d_sae)),
        "b_enc": 0.1 * rng.standard_normal(d_sae),
        "W_dec": rng.standard_normal((d_sae, d_in)),
        "b_dec": 0.1 * rng.standard_normal(d_in),
    }
    return x, params


def _tensors(x: np.ndarray, params: dict[str, np.ndarray]) -> list[torch.Tensor]:
    return [torch.from_numpy(a) for a in (x, *params.values())]


SIDES: dict[str, Callable[..., Any]] = {
    "oracle": lambda x, p, **o: oracle.matryoshka_batchtopk_total_loss(x, *p.values(), **o),
    "torch": lambda x, p, **o: rt.matryoshka_batchtopk_total_loss(*_tensors(x, p), **o),
    "fast": lambda x, p, **o: fast.matryoshka_batchtopk_fused_loss_and_gradients(*_tensors(x, p), **o),
}


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize(
    ("widths", "message"),
    [
        ((), "non-empty"),
        ((4, 8), "last width must be d_sae"),
        ((4, 4, 10), "increase strictly"),
        ((0, 10), "increase strictly"),
    ],
)
def test_widths_that_are_not_increasing_prefixes_ending_at_d_sae_raise_value_error(
    side: str, widths: Any, message: str
) -> None:
    """MAT-1, on the oracle, refsae.torch and the fast path alike."""
    x, params = _case(0)
    with pytest.raises(ValueError, match=message):
        SIDES[side](x, params, k=2, widths=widths)


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("widths", [(2.0, 10), "10"])
def test_widths_that_are_not_integers_raise_an_error_naming_widths(side: str, widths: Any) -> None:
    """MAT-1: the annotation `Sequence[int]` rejects them at the call (jaxtyping's TypeCheckError, NOT-3);
    with the runtime checks off the value check does (ValueError)."""
    x, params = _case(0)
    with pytest.raises((TypeCheckError, ValueError), match="widths"):
        SIDES[side](x, params, k=2, widths=widths)


def test_one_level_is_the_batchtopk_sae() -> None:
    """MAT-1, MAT-3, MAT-7: `widths = (d_sae,)` is BTOPK-3's loss and gradients without a penalty,
    exactly (the same operations on the same latents)."""
    x, params = _case(1)
    loss = oracle.matryoshka_batchtopk_total_loss(x, *params.values(), k=3, widths=(10,))
    assert loss == oracle.batchtopk_total_loss(x, *params.values(), k=3)
    grads = oracle.matryoshka_batchtopk_loss_gradients(x, *params.values(), k=3, widths=(10,)).as_dict()
    plain = oracle.batchtopk_loss_gradients(x, *params.values(), k=3).as_dict()
    for name, g in grads.items():
        np.testing.assert_array_equal(g, plain[name])


@pytest.mark.parametrize("reconstruction", ["sum", "mean", "fvu"])
def test_summed_levels_are_n_times_averaged_levels(reconstruction: ReconstructionConvention) -> None:
    """MAT-5, MAT-6: loss and gradients scale by the number of levels, under every reconstruction."""
    x, params = _case(2)
    widths = (2, 5, 7, 10)
    c = Conventions(reconstruction=reconstruction)
    summed: dict[str, Any] = {"k": 2, "widths": widths, "levels": "summed", "conventions": c}
    averaged = {**summed, "levels": "averaged"}
    a = oracle.matryoshka_batchtopk_total_loss(x, *params.values(), **summed)
    b = oracle.matryoshka_batchtopk_total_loss(x, *params.values(), **averaged)
    chain = 4 * len(widths) + x.size  # the levels' sums and the loss's own accumulation
    assert agree(a, len(widths) * b, np.abs(a), chain)
    ga = oracle.matryoshka_batchtopk_loss_gradients(x, *params.values(), **summed).as_dict()
    gb = oracle.matryoshka_batchtopk_loss_gradients(x, *params.values(), **averaged).as_dict()
    for name in ga:
        magnitude = np.abs(ga[name]) + np.abs(ga[name]).max()  # a sum of the levels' terms
        assert agree(ga[name], len(widths) * gb[name], magnitude, chain), name


def test_the_last_level_is_the_decode_of_all_latents() -> None:
    """MAT-2: the level of width d_sae is DEC-1's x̂, exactly; every level includes b_dec."""
    x, params = _case(3)
    f = oracle.batchtopk(oracle.pre_activations(x, params["W_enc"], params["b_enc"], params["b_dec"]), k=3)
    x_hats = oracle.matryoshka_decode(f, params["W_dec"], params["b_dec"], widths=(3, 6, 10))
    np.testing.assert_array_equal(x_hats[-1], oracle.decode(f, params["W_dec"], params["b_dec"]))
    zero = oracle.matryoshka_decode(np.zeros_like(f), params["W_dec"], params["b_dec"], widths=(3, 6, 10))
    np.testing.assert_array_equal(zero, np.broadcast_to(params["b_dec"], zero.shape))


def test_each_group_of_latents_is_trained_by_the_levels_that_contain_it() -> None:
    """MAT-7: the decoder rows of the last group get the full level's gradient alone (times its weight),
    those of the first group every level's; an inner level reaches no row beyond its width."""
    x, params = _case(4)
    widths, k = (3, 6, 10), 4
    z = oracle.pre_activations(x, params["W_enc"], params["b_enc"], params["b_dec"])
    active = oracle.batchtopk(z, k=k) > 0
    per_level = [
        gradients_given_mask(
            x,
            params["W_enc"],
            params["b_enc"],
            params["W_dec"],
            params["b_dec"],
            z,
            active & (np.arange(10) < m),
            0.0,
            Conventions(),
        )
        for m in widths
    ]
    grads = oracle.matryoshka_batchtopk_loss_gradients(
        x, *params.values(), k=k, widths=widths, levels="averaged"
    )
    np.testing.assert_array_equal(grads.W_dec[6:], (1.0 / 3) * per_level[-1].W_dec[6:])
    for level, m in zip(per_level, widths, strict=True):
        assert not level.W_dec[m:].any() and not level.W_enc[:, m:].any()
    assert np.abs(grads.W_dec[:3] - per_level[-1].W_dec[:3] / 3).max() > 0  # the inner levels count


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("crowded", [False, True])
def test_the_two_stage_batch_selection_selects_the_batch_topk_entries(seed: int, crowded: bool) -> None:
    """PERF-7, BTOPK-1: the fast path's selection (candidates per example, then the batch's k·B largest)
    is BatchTopK's, also when one example holds more than its candidates (the flat fallback)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((16, 64))
    if crowded:
        z[0] += 10.0  # example 0 holds every selected entry: more than CAPACITY · k
    k = 2
    example, latent, values = fast.batch_selection(torch.from_numpy(z), k)
    mask = np.zeros_like(z, dtype=bool)
    mask[example.numpy(), latent.numpy()] = True
    # the same entries wherever the latent is non-zero (a selected z <= 0 is a 0 latent, BTOPK-1)
    np.testing.assert_array_equal(mask & (z > 0), oracle.batchtopk(z, k=k) > 0)
    assert mask.sum() == k * z.shape[0]
    np.testing.assert_array_equal(values.numpy(), z[example.numpy(), latent.numpy()])
    assert not crowded or mask[0].sum() > fast.CAPACITY * k


def test_the_fused_and_autograd_matryoshka_steps_follow_one_trajectory() -> None:
    """PERF-7, STEP-1: `matryoshka_train_step_` gives the same parameters after several steps with the
    fused backward and with autograd (float64; both are checked against the oracle's gradients by the
    row; this checks the step around them: removal, Adam, the constraint)."""
    results = []
    for backward in ("fused", "autograd"):
        sae = rt.SAE(rt.SAEConfig(6, 24, dtype=torch.float64), generator=torch.Generator().manual_seed(0))
        opt = torch.optim.Adam(sae.parameters(), lr=1e-2)
        x = torch.randn(32, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        losses = [
            float(rt.matryoshka_train_step_(sae, opt, x, k=3, widths=(4, 12, 24), backward=backward))
            for _ in range(4)
        ]
        results.append((losses, {n: p.detach().numpy().copy() for n, p in sae.named_parameters()}))
    (loss_a, params_a), (loss_b, params_b) = results
    np.testing.assert_allclose(loss_a, loss_b, rtol=1e-12)
    for name in params_a:  # Adam divides by √v: float64 rounding differences of the gradients stay ~1e-15
        np.testing.assert_allclose(params_a[name], params_b[name], rtol=1e-9, atol=1e-12)
    norms = np.linalg.norm(params_a["W_dec"], axis=-1)
    assert agree(norms, np.ones_like(norms), np.ones_like(norms), 2 * (6 + 4))  # the constraint ran (CON-1)


def test_the_cases_keep_the_batch_selection_certain() -> None:
    """MAT-8: the loss rows' cases are BatchTopK's (the k chosen latents ahead of every other entry of
    the batch by the margin) with drawn widths and no sparsity coefficient."""
    op = table.get("matryoshka_batchtopk_total_loss")
    from hypothesis import given, settings

    seen: list[Case] = []

    @settings(max_examples=20, database=None)
    @given(op.cases("float32"))
    def collect(case: Case) -> None:
        seen.append(case)

    collect()
    for case in seen:
        widths = case.options["widths"]
        assert widths[-1] == case.arrays["b_enc"].shape[-1] and list(widths) == sorted(set(widths))
        assert "l1_coefficient" not in case.options
        z = pre_activations_of(case)
        f = oracle.batchtopk(z, k=case.options["k"])
        assert np.all((f == 0) | (f == z))
