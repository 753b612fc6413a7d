"""AuxK over the global dead set, across latent shards and batch slices (DIST-19, AUXK-10;
specs/distributed.md): the oracle's training step with an AuxK term, checked against autograd, and the
sharded and grid steps on real gloo groups against the oracle's trajectory."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
import torch

from refsae import oracle
from refsae import torch as rt
from refsae.checking.rows.auxk import auxk_loss_bound, auxk_loss_gradients_bound
from refsae.checking.tolerances import Bound, add, allowed_error, leaf, mul
from refsae.oracle.auxk import AuxKOptions, AuxKTerm, auxk_parameter_gradients
from refsae.oracle.optimizer import PARAMETERS
from refsae.torch.distributed.launch import run_ranks
from tests import distributed_workers as workers
from tests.test_distributed import CONVENTIONS, follows_the_oracle, make_spec, same_on_every_rank, tied_spec

OPTIONS = list(
    itertools.product(
        ("relu", "raw"),
        ("without_b_dec", "with_b_dec", "cancelled_b_dec"),
        ("unscaled", "dead_fraction"),
        ("residual_variance", "input_variance", "sum"),
    )
)
"""Every combination of AUXK-3..AUXK-7's options (the residual detached, as the step takes it)."""


def _auxk(rng: np.random.Generator, i: int, d_sae: int, dead: str = "some") -> dict[str, Any]:
    values, aux_decode, scale, normalisation = OPTIONS[i % len(OPTIONS)]
    mask = {"some": rng.random(d_sae) < 0.5, "none": np.zeros(d_sae, bool), "all": np.ones(d_sae, bool)}[dead]
    return {
        "coefficient": 0.5,
        "dead": mask,
        "k_aux": (2, 4, 16)[i % 3],
        "values": values,
        "aux_decode": aux_decode,
        "scale": scale,
        "normalisation": normalisation,
    }


def _specs(batch: int = 6) -> list[dict[str, Any]]:
    """Every option combination once, over the conventions, TopK (k 1, 3) and BatchTopK; no latent dead;
    every latent dead; the tied spec (every latent dead, so the auxiliary selection ties across shards)."""
    rng = np.random.default_rng(5)
    specs = []
    for i in range(len(OPTIONS)):
        spec = make_spec(1000 + i, CONVENTIONS[i % len(CONVENTIONS)], batch=batch, k=(1, 3)[i % 2])
        if i % 5 == 4:
            spec = spec | {"k": None, "batch_k": 2}
        specs.append(spec | {"auxk": _auxk(rng, i, 12)})
    specs.append(make_spec(1100, CONVENTIONS[3], batch=batch, k=3) | {"auxk": _auxk(rng, 0, 12, "none")})
    specs.append(make_spec(1101, CONVENTIONS[6], batch=batch, k=3) | {"auxk": _auxk(rng, 7, 12, "all")})
    specs.append(tied_spec() | {"auxk": _auxk(rng, 1, 12, "all") | {"k_aux": 3}})
    return specs


class _SameValue(torch.autograd.Function):
    """`value` in the forward, the gradient passed to `through` unchanged in the backward: autograd pulls
    back through torch's own z = u W_enc + b_enc while the auxiliary term sees the oracle's z bit for bit."""

    @staticmethod
    def forward(ctx: Any, through: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        return value.clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad, None


def _pull_back_bounds(
    x: np.ndarray, param: dict[str, np.ndarray], x_hat: np.ndarray, z: np.ndarray, term: AuxKTerm, **o: Any
) -> tuple[Bound, dict[str, Bound | None]]:
    """TOL-4's bounds of AUXK-10's loss and gradients, for either float64 evaluation given the same z:
    the `auxk_loss` and `auxk_loss_gradients` rows' bounds (AUXK-9), then the pull-back's products,
    `∂W_enc = uᵀ ∂z` (length B), `∂b_enc = Σ_b ∂z` (length B) and, under `tied`, `∂b_dec − W_enc ∂b_enc`
    (length d_sae, then the difference). The coefficient 1/2 is exact."""
    options = AuxKOptions(**{k: getattr(term, k) for k in ("k_aux", "values", "aux_decode", "scale")},
                          normalisation=term.normalisation, decoder=o["decoder"])  # fmt: skip
    args = (x, x_hat, z, param["W_dec"], param["b_dec"], term.dead, options)
    loss, g = auxk_loss_bound(*args), auxk_loss_gradients_bound(*args)
    gz = g["z"]
    assert gz is not None
    u = x - param["b_dec"] if o["encode"] == "tied" else x
    batch, d_sae = x.shape[0], z.shape[-1]
    grads: dict[str, Bound | None] = {
        "W_enc": mul(np.abs(u).T @ gz.magnitude, leaf(u), gz, k_acc=batch, k_store=1),
        "b_enc": add(gz.magnitude.sum(axis=0), gz, k_acc=batch, k_store=1),
        "W_dec": g["W_dec"],
        "b_dec": g["b_dec"],
    }
    if o["encode"] == "tied":
        b_enc = grads["b_enc"]
        assert b_enc is not None
        pulled = mul(
            np.abs(param["W_enc"]) @ b_enc.magnitude, leaf(param["W_enc"]), b_enc, k_acc=d_sae, k_store=1
        )
        direct = g["b_dec"] or Bound(np.zeros_like(pulled.magnitude), 0, 0)
        grads["b_dec"] = add(direct.magnitude + pulled.magnitude, direct, pulled, k_store=1)
    return loss, grads


def _agree(a: np.ndarray, b: np.ndarray, bound: Bound | None) -> bool:
    """Two float64 evaluations, each within TOL-1's allowed error of the exact value (None: exactly 0)."""
    if bound is None:
        return bool(np.all(np.asarray(a) == 0) and np.all(np.asarray(b) == 0))
    return bool(np.all(np.abs(np.asarray(a) - np.asarray(b)) <= 2 * allowed_error(bound, "float64")))


@pytest.mark.parametrize("i", range(0, len(OPTIONS), 5))
def test_the_oracles_auxk_parameter_gradients_are_autograds(i: int) -> None:
    """AUXK-10: the oracle's pull-back of AUXK-8's ∂z to W_enc, b_enc and (tied) b_dec, plus ∂W_dec and
    ∂b_dec, equals autograd through refsae.torch's `auxk_loss` of z = u W_enc + b_enc in float64, with
    the main reconstruction x̂ held fixed (the residual is detached): both within TOL-1's allowed error
    of the exact value, from the rows' bounds and the pull-back's products (`_pull_back_bounds`)."""
    spec = _specs()[i]
    c, term = spec["conventions"], AuxKTerm(**spec["auxk"])
    encode, decoder = c.get("encode", "tied"), c.get("decoder", "constrained")
    x, param = spec["x"][0], spec["param"]
    x_hat = x * 0.5 + 0.1  # any reconstruction: it is a constant to the term
    loss, grads = auxk_parameter_gradients(x, param, x_hat, term, encode=encode, decoder=decoder)
    u_np = x - param["b_dec"] if encode == "tied" else x
    z = np.einsum("b...i,...ij->b...j", u_np, param["W_enc"]) + param["b_enc"]  # as the oracle computes z
    t = {n: torch.tensor(v, requires_grad=True) for n, v in param.items()}
    xt = torch.from_numpy(x)
    u = xt - t["b_dec"] if encode == "tied" else xt
    z_t = _SameValue.apply(u @ t["W_enc"] + t["b_enc"], torch.from_numpy(z))
    options = {k: v for k, v in spec["auxk"].items() if k not in ("coefficient", "dead")}
    aux = rt.auxk_loss(
        xt, torch.from_numpy(x_hat), z_t, t["W_dec"], t["b_dec"],
        torch.from_numpy(term.dead), decoder=decoder, **options,
    )  # fmt: skip
    (term.coefficient * aux).backward()
    loss_bound, bounds = _pull_back_bounds(x, param, x_hat, z, term, encode=encode, decoder=decoder)
    assert _agree(np.array(loss), np.array(term.coefficient * aux.item()), loss_bound.then(k_store=1))
    assert loss > 0
    for name in PARAMETERS:
        grad = t[name].grad  # None: the term does not reach it (untied b_dec without it in the decode)
        expected = np.zeros_like(param[name]) if grad is None else grad.numpy()
        assert _agree(grads[name], expected, bounds[name]), name


def test_the_auxk_term_and_its_global_dead_set_change_the_step() -> None:
    """DIST-19: the oracle step with the AuxK term differs from the step without it, and selecting
    among each shard's own dead latents (k_aux per shard of 2, then all of them decoded) differs from
    the global selection on some example, so the trajectories below test both."""
    spec = _specs()[1]
    state = {"param": spec["param"]} | {
        g: {n: np.zeros_like(v) for n, v in spec["param"].items()} for g in ("m", "v")
    }
    options = {"step": 0, "lr": 1e-2, "l1_coefficient": 0.3, "k": spec["k"]}
    args = (spec["x"][0], state["param"], state["m"], state["v"])
    with_term = oracle.training_step(*args, **options, auxk=AuxKTerm(**spec["auxk"]))
    without = oracle.training_step(*args, **options)
    assert not np.allclose(with_term["param"]["W_enc"], without["param"]["W_enc"])
    term = AuxKTerm(**spec["auxk"])
    z = spec["x"][0] @ spec["param"]["W_enc"] + spec["param"]["b_enc"]
    global_selection = oracle.auxk_latents(z, term.dead, k_aux=term.k_aux) != 0
    halves = [np.where(np.arange(12) // 6 == h, term.dead, False) for h in (0, 1)]
    per_shard = np.logical_or(*(oracle.auxk_latents(z, d, k_aux=term.k_aux) != 0 for d in halves))
    assert not np.array_equal(global_selection, per_shard)


@pytest.mark.parametrize("world_size", [2, 4])
def test_every_latent_shard_follows_the_oracle_trajectory_with_auxk(world_size: int) -> None:
    """DIST-19, DIST-1: TopK and BatchTopK steps with an AuxK term under every option combination (the
    dead set global: its count, selection and decode over all shards), with no latent dead and every
    latent dead, and on the tied spec: every step's loss, parameters and Adam moments, gathered, are the
    oracle's within 1e-9."""
    specs = _specs()
    results = same_on_every_rank(run_ranks(world_size, workers.sharded_trajectories, specs, timeout=300))
    for spec, result in zip(specs, results, strict=True):
        follows_the_oracle(spec, result)


def test_the_grid_follows_the_oracle_trajectory_with_auxk() -> None:
    """DIST-19, DIST-17: on the 2 × 2 grid (and 4 × 1) the AuxK term's normaliser is the whole batch's
    (the residual's or the input's variance over the slices): every step matches the oracle's on the
    whole batch."""
    specs = [spec | {"grid": (2, 2)} for spec in _specs()[::4]]
    specs += [spec | {"grid": (4, 1)} for spec in _specs(batch=8)[1::9]]  # data parallel, one shard
    results = same_on_every_rank(run_ranks(4, workers.grid_trajectories, specs, timeout=300))
    for spec, result in zip(specs, results, strict=True):
        follows_the_oracle(spec, result)


def test_a_dead_mask_of_the_wrong_shape_on_one_process_fails_on_every_process() -> None:
    """DIST-19, DIST-6: one process passing the whole dead mask instead of its shard's part makes every
    process raise the same ValueError (the settings are compared before any other collective), none
    waits for the others."""
    outcomes = run_ranks(2, workers.sharded_auxk_errors, _specs()[0], timeout=120)
    assert all(status == "ok" for status, _ in outcomes), outcomes
    messages = [message for _, message in outcomes]
    assert messages[0] == messages[1] and messages[0].startswith("ValueError: the processes disagree on")
