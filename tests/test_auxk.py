"""AuxK beyond the table rows (AUXK-1..AUXK-9): the selection, each named convention against the
formula a library writes, no dead latent, central differences, bad input. The checker's power on
the rows: the registry's mutants (`refsae.conform.mutants`), run by `tests/test_checker_power.py`."""

from __future__ import annotations

from typing import Any

import jaxtyping
import numpy as np
import pytest
import torch

from refsae import oracle
from refsae import torch as rt


def _case(seed: int, batch: int = 5, d_in: int = 3, d_sae: int = 6) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, d_in))
    return {
        "x": x,
        "x_hat": x + 0.5 * rng.standard_normal((batch, d_in)),
        "z": rng.standard_normal((batch, d_sae)),
        "W_dec": rng.standard_normal((d_sae, d_in)),
        "b_dec": rng.standard_normal(d_in),
        "dead": (np.arange(d_sae) % 2).astype(np.int64),  # 3 dead latents: 1, 3, 5
    }


def _t(a: dict[str, Any]) -> dict[str, Any]:
    return {k: torch.from_numpy(v) for k, v in a.items()}


def test_live_latents_are_never_selected_and_each_example_keeps_min_k_aux_n_dead() -> None:
    """AUXK-1, AUXK-2: only dead latents appear; with k_aux above n_dead all dead ones are kept."""
    z = np.array([[9.0, 1.0, 8.0, 3.0, 7.0, -2.0], [9.0, -1.0, 8.0, -3.0, 7.0, 2.0]])
    dead = np.array([0, 1, 0, 1, 0, 1])
    for side in ("oracle", "torch"):
        a2 = oracle.auxk_latents(z, dead, k_aux=2, values="raw")
        a9 = oracle.auxk_latents(z, dead, k_aux=9, values="raw")
        if side == "torch":
            a2 = rt.auxk_latents(torch.from_numpy(z), torch.from_numpy(dead), k_aux=2, values="raw").numpy()
            a9 = rt.auxk_latents(torch.from_numpy(z), torch.from_numpy(dead), k_aux=9, values="raw").numpy()
        assert a2.tolist() == [[0.0, 1.0, 0.0, 3.0, 0.0, 0.0], [0.0, -1.0, 0.0, 0.0, 0.0, 2.0]]
        assert (a9 == np.where(dead, z, 0.0)).all()


def test_relu_values_drop_selected_negative_pre_activations_and_raw_keeps_them() -> None:
    """AUXK-3: with every dead z negative, `relu` gives no auxiliary latent, `raw` gives k of them."""
    z, dead = -np.abs(_case(0)["z"]), np.ones(6, dtype=np.int64)
    assert (oracle.auxk_latents(z, dead, k_aux=2) == 0).all()
    assert ((oracle.auxk_latents(z, dead, k_aux=2, values="raw") != 0).sum(axis=-1) == 2).all()


def _library_style(a: dict[str, Any], k_aux: int, *, relu: bool, bias: str, scale: bool, norm: str) -> float:
    """The AuxK loss written the way the libraries write it (torch, −inf masking, topk, scatter),
    independently of refsae: see the table in specs/auxk.md for who writes which."""
    t = _t(a)
    dead = t["dead"].bool()
    n_dead = int(dead.sum())
    e = (t["x"] - t["x_hat"]).detach()
    k = min(k_aux, n_dead)
    top = torch.where(dead[None], t["z"], -torch.inf).topk(k, sorted=False)
    values = torch.relu(top.values) if relu else top.values
    acts = torch.zeros_like(t["z"]).scatter_(-1, top.indices, values)
    recon = acts @ t["W_dec"] + (t["b_dec"] if bias == "with" else 0.0)
    target = e + t["b_dec"].detach() if bias == "cancelled" else e
    if bias == "cancelled":
        recon = recon + t["b_dec"]
    if norm == "sum":
        loss = (recon - target).pow(2).sum(dim=-1).mean()
    else:
        centred = target if norm == "residual" else t["x"]
        loss = (recon - target).pow(2).sum() / (centred - centred.mean(0)).pow(2).sum()
    return float((min(n_dead / k_aux, 1.0) if scale else 1.0) * loss)


LIBRARIES = [
    ("openai", {"values": "relu", "aux_decode": "cancelled_b_dec", "normalisation": "residual_variance"},
     {"relu": True, "bias": "cancelled", "scale": False, "norm": "residual"}),
    ("dictionary_learning", {"values": "relu", "aux_decode": "without_b_dec"},
     {"relu": True, "bias": "without", "scale": False, "norm": "residual"}),
    ("sparsify", {"values": "relu", "aux_decode": "with_b_dec", "scale": "dead_fraction",
                  "normalisation": "input_variance"},
     {"relu": True, "bias": "with", "scale": True, "norm": "input"}),
    ("saelens-old", {"values": "raw", "aux_decode": "with_b_dec", "scale": "dead_fraction",
                     "normalisation": "sum"},
     {"relu": False, "bias": "with", "scale": True, "norm": "sum"}),
    ("saelens-new", {"values": "raw", "scale": "dead_fraction", "normalisation": "sum"},
     {"relu": False, "bias": "without", "scale": True, "norm": "sum"}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("options", "style"), [(o, s) for _, o, s in LIBRARIES], ids=[n for n, _, _ in LIBRARIES]
)
def test_each_named_convention_is_the_formula_a_library_writes(
    options: dict[str, Any], style: dict[str, Any]
) -> None:
    """AUXK-3, AUXK-4, AUXK-5, AUXK-7: the oracle under a library's options equals that library's way of
    writing the loss (k_aux = 4 > n_dead = 3, so the scale is 3/4 where used)."""
    a = _case(1)
    expected = _library_style(a, 4, **style)
    got = float(oracle.auxk_loss(*a.values(), k_aux=4, **options))
    assert abs(got - expected) <= 1e-12 * abs(expected)
    assert expected > 0


@pytest.mark.parametrize("normalisation", ["residual_variance", "input_variance", "sum"])
@pytest.mark.parametrize("side", ["oracle", "torch"])
def test_no_dead_latent_gives_exactly_zero_loss_and_gradients(side: str, normalisation: str) -> None:
    """AUXK-6: even with a batch of one (a zero variance normaliser), no NaN and no error."""
    a = {k: (v[:1] if k in ("x", "x_hat", "z") else v) for k, v in _case(2).items()}
    a["dead"] = np.zeros(6, dtype=np.int64)
    kw: dict[str, Any] = {"k_aux": 3, "normalisation": normalisation, "aux_decode": "with_b_dec"}
    loss: Any
    grads: dict[str, Any]
    if side == "oracle":
        loss, grads = oracle.auxk_loss(*a.values(), **kw), oracle.auxk_loss_gradients(*a.values(), **kw)
    else:
        t = _t(a)
        loss, grads = rt.auxk_loss(*t.values(), **kw), rt.auxk_loss_gradients(*t.values(), **kw)
    assert float(loss) == 0.0
    assert all(bool((np.asarray(g) == 0).all()) for g in grads.values())


@pytest.mark.parametrize("normalisation", ["residual_variance", "input_variance"])
@pytest.mark.parametrize("side", ["oracle", "torch"])
def test_a_zero_variance_normaliser_with_dead_latents_raises(side: str, normalisation: Any) -> None:
    """AUXK-7."""
    a = {k: (v[:1] if k in ("x", "x_hat", "z") else v) for k, v in _case(3).items()}
    with pytest.raises(ValueError, match="normaliser is zero"):
        if side == "oracle":
            oracle.auxk_loss(*a.values(), k_aux=2, normalisation=normalisation)
        else:
            rt.auxk_loss(*_t(a).values(), k_aux=2, normalisation=normalisation)


OPTION_SETS = [
    {},
    {"values": "raw", "aux_decode": "with_b_dec", "scale": "dead_fraction", "residual": "attached"},
    {
        "aux_decode": "cancelled_b_dec",
        "normalisation": "input_variance",
        "decoder": "normalised",
        "eps": 1e-3,
    },
    {"values": "raw", "normalisation": "sum", "residual": "attached", "decoder": "normalised"},
]


@pytest.mark.parametrize("options", OPTION_SETS, ids=range(len(OPTION_SETS)))
def test_auxk_gradients_match_central_differences(options: dict[str, Any]) -> None:
    """AUXK-8: ∂z, ∂W_dec, ∂b_dec match central differences of `auxk_loss` (the selection is far
    from any tie), and ∂x_hat too where the residual is attached and D does not depend on it; the
    detached and undecoded ones are exactly 0."""
    a = _case(4)
    kw: dict[str, Any] = {"k_aux": 2, **options}
    grads = oracle.auxk_loss_gradients(*a.values(), **kw)
    # cancelled_b_dec's b_dec gradient is by definition not that of the value (AUXK-4, tested below)
    names = ["z", "W_dec"] + ([] if options.get("aux_decode") == "cancelled_b_dec" else ["b_dec"])
    if (
        options.get("residual") == "attached"
        and options.get("normalisation", "residual_variance") != "residual_variance"
    ):
        names.append("x_hat")  # under residual_variance D moves with x_hat, and the spec holds D fixed
    h = 1e-6
    for name in names:
        for index in np.ndindex(a[name].shape):
            plus, minus = {k: v.copy() for k, v in a.items()}, {k: v.copy() for k, v in a.items()}
            plus[name][index] += h
            minus[name][index] -= h
            fd = (
                float(oracle.auxk_loss(*plus.values(), **kw)) - float(oracle.auxk_loss(*minus.values(), **kw))
            ) / (2 * h)
            assert abs(fd - grads[name][index]) <= 1e-6 * max(1.0, abs(fd)), f"{name}{index}"
    if options.get("residual", "detached") == "detached":
        assert (grads["x_hat"] == 0).all()
    if options.get("aux_decode", "without_b_dec") == "without_b_dec":
        assert (grads["b_dec"] == 0).all()


def test_the_cancelled_bias_has_the_value_without_b_dec_and_the_bias_gradient_with_it() -> None:
    """AUXK-4: OpenAI's `cancelled_b_dec` in torch: the loss of `without_b_dec`, the b_dec gradient of
    `with_b_dec` (when the added b_dec is kept out of the value)."""
    a = _t(_case(5))
    loss = {
        o: float(rt.auxk_loss(*a.values(), k_aux=2, aux_decode=o))
        for o in ("without_b_dec", "cancelled_b_dec")
    }
    assert abs(loss["without_b_dec"] - loss["cancelled_b_dec"]) <= 1e-12 * loss["without_b_dec"]
    g = rt.auxk_loss_gradients(*a.values(), k_aux=2, aux_decode="cancelled_b_dec")["b_dec"]
    assert bool((g != 0).any())


@pytest.mark.parametrize("side", ["oracle", "torch"])
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"k_aux": 0}, "k_aux must be an integer >= 1"),
        ({"dead": np.array([0, 2, 0, 1, 0, 1])}, "dead must be a 0/1 or boolean mask"),
        ({"scale": "clipped"}, "scale"),
        ({"normalisation": "fvu"}, "normalisation"),
    ],
    ids=["k-aux-zero", "dead-not-a-mask", "scale-unknown", "normalisation-unknown"],
)
def test_bad_k_aux_dead_masks_and_option_names_raise(side: str, change: dict[str, Any], message: str) -> None:
    """AUXK-1 (beartype rejects an unknown `Literal` first, with the names in its message)."""
    a = _case(6)
    kw: dict[str, Any] = {"k_aux": 2}
    for k, v in change.items():
        (a if k == "dead" else kw)[k] = v
    with pytest.raises((ValueError, jaxtyping.TypeCheckError), match=message):
        if side == "oracle":
            oracle.auxk_loss(*a.values(), **kw)
        else:
            rt.auxk_loss(*_t(a).values(), **kw)


def test_no_dead_latent_gives_zero_gradients_in_float16_whatever_the_residual_variance() -> None:
    """AUXK-6: with no dead latent the normaliser must not matter; a residual variance of 4.8e-7 would
    overflow the backward's 1/D in float16 and 0 · inf would be NaN (found by the ci profile)."""
    x = torch.tensor([[1.0, 1.0], [1.0, 1.0009765625]], dtype=torch.float16)
    x_hat = torch.zeros_like(x)
    z = torch.tensor([[0.5, 2.0], [1.0, 0.25]], dtype=torch.float16)
    W_dec = torch.tensor([[0.5, 0.25], [0.125, 1.0]], dtype=torch.float16, requires_grad=True)
    b_dec = torch.zeros(2, dtype=torch.float16, requires_grad=True)
    grads = rt.auxk_loss_gradients(x, x_hat, z, W_dec, b_dec, torch.zeros(2, dtype=torch.bool), k_aux=1)
    for name, g in grads.items():
        assert torch.equal(g, torch.zeros_like(g)), name
