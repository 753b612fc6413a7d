"""The order of a training step (STEP-1..STEP-4): the specified order, the normalised decoder, the
hook, and the two other orders found in the field, which a conformance run must tell apart."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from refsae import oracle
from refsae import torch as rt
from refsae.cases import Case
from refsae.checking import table
from refsae.checking.check import compare
from refsae.conventions import Conventions
from refsae.oracle.optimizer import PARAMETERS

ORDERS_ELSEWHERE = ("constraint_before_step", "removal_after_step")
GROUPS = ("param", "exp_avg", "exp_avg_sq")


def _state(seed: int, d_in: int = 6, d_sae: int = 10, batch: int = 16) -> tuple[np.ndarray, dict[str, Any]]:
    """A generic batch and state: unit decoder rows, Adam moments of an earlier step."""
    rng = np.random.default_rng(seed)
    W_dec = oracle.renormalise_rows(rng.standard_normal((d_sae, d_in)))
    param = {
        "W_enc": W_dec.T + 0.1 * rng.standard_normal((d_in, d_sae)),
        "b_enc": 0.1 * rng.standard_normal(d_sae),
        "W_dec": W_dec,
        "b_dec": 0.1 * rng.standard_normal(d_in),
    }
    exp_avg = {k: 0.01 * rng.standard_normal(v.shape) for k, v in param.items()}
    exp_avg_sq = {k: 1e-4 * rng.standard_normal(v.shape) ** 2 for k, v in param.items()}
    return rng.standard_normal((batch, d_in)) + 0.5, {
        "param": param,
        "exp_avg": exp_avg,
        "exp_avg_sq": exp_avg_sq,
    }


OPTIONS: dict[str, Any] = {"step": 7, "lr": 1e-3, "l1_coefficient": 0.05}


def _oracle(x: np.ndarray, state: dict[str, Any], c: Conventions, order: Any = "specified") -> dict[str, Any]:
    return oracle.training_step(
        x, state["param"], state["exp_avg"], state["exp_avg_sq"], conventions=c, order=order, **OPTIONS
    )


def _torch(x: np.ndarray, state: dict[str, Any], c: Conventions, *, hook: bool = False) -> dict[str, Any]:
    """`train_step_` on a live SAE and torch.optim.Adam loaded with the state, in float64."""
    sae = rt.SAE(
        rt.SAEConfig(
            d_in=x.shape[-1],
            d_sae=state["param"]["b_enc"].shape[-1],
            dtype=torch.float64,
            l1_coefficient=OPTIONS["l1_coefficient"],
            conventions=c,
            parallel_grad_hook=hook,
        )
    )
    with torch.no_grad():
        for k in PARAMETERS:
            getattr(sae, k).copy_(torch.from_numpy(state["param"][k]))
    optimizer = torch.optim.Adam(sae.parameters(), lr=OPTIONS["lr"])
    for k in PARAMETERS:
        optimizer.state[getattr(sae, k)] = {
            "step": torch.tensor(float(OPTIONS["step"])),
            "exp_avg": torch.from_numpy(state["exp_avg"][k].copy()),
            "exp_avg_sq": torch.from_numpy(state["exp_avg_sq"][k].copy()),
        }
    loss = rt.train_step_(sae, optimizer, torch.from_numpy(x))
    return {
        "param": {k: getattr(sae, k).detach().numpy() for k in PARAMETERS},
        "exp_avg": {k: optimizer.state[getattr(sae, k)]["exp_avg"].numpy() for k in PARAMETERS},
        "exp_avg_sq": {k: optimizer.state[getattr(sae, k)]["exp_avg_sq"].numpy() for k in PARAMETERS},
        "loss": loss.numpy(),
    }


def _flat(result: dict[str, Any]) -> dict[str, np.ndarray]:
    out = {f"{g}.{k}": np.asarray(result[g][k]) for g in GROUPS for k in PARAMETERS}
    out["loss"] = np.asarray(result["loss"])
    return out


def _ratio(x: np.ndarray, state: dict[str, Any], c: Conventions, actual: dict[str, Any]) -> float:
    """The worst |actual − specified| / allowed of the table row `training_step` (raises above 1)."""
    arrays = {"x": x, **{f"{g}.{k}": state[g][k] for g in GROUPS for k in PARAMETERS}}
    options = {**OPTIONS, "conventions": c, "betas": (0.9, 0.999), "adam_eps": 1e-8, "weight_decay": 0.0}
    case = Case(arrays, options, "float64")
    op = table.get("training_step")
    return compare(op, case, op.reference(case), _flat(actual))[0]


CONSTRAINED = [
    Conventions(encode=e, reconstruction=r, sparsity=s)
    for e in ("tied", "untied")
    for r in ("sum", "fvu")
    for s in ("l1", "l1_decoder_norm")
]


@pytest.mark.parametrize("c", CONSTRAINED, ids=[c.label() for c in CONSTRAINED])
@pytest.mark.parametrize("hook", [False, True], ids=["explicit-removal", "hook"])
def test_train_step_performs_the_specified_order_with_the_hook_or_without(c: Conventions, hook: bool) -> None:
    """STEP-1, STEP-3, PAR-4: a live SAE and torch.optim.Adam stepped by `train_step_` land within
    the tolerance rule of the oracle's specified step, whether the parallel part is removed by the
    explicit call or by the backward hook; the rows come out unit."""
    x, state = _state(0)
    result = _torch(x, state, c, hook=hook)
    assert _ratio(x, state, c, result) <= 1.0
    norms = np.linalg.norm(result["param"]["W_dec"], axis=-1)
    assert np.abs(norms - 1).max() <= 1e-14


@pytest.mark.parametrize("c", CONSTRAINED, ids=[c.label() for c in CONSTRAINED])
@pytest.mark.parametrize("order", ORDERS_ELSEWHERE)
def test_each_order_found_in_the_field_differs_from_the_specified_step_beyond_the_tolerance(
    c: Conventions, order: str
) -> None:
    """STEP-4: on generic data the two other orders give W_dec (and, removal after the step, Adam's
    moments) outside the allowed error of the specified step, by orders of magnitude, while the
    torch step stays inside it: one step is enough to tell a library's order."""
    for seed in range(3):
        x, state = _state(seed)
        other = _oracle(x, state, c, order)
        with pytest.raises(
            AssertionError,
            match=r"training_step \[float64\] differs from the oracle at "
            r"(param\.W_dec|exp_avg\.W_dec|exp_avg_sq\.W_dec)",
        ):
            _ratio(x, state, c, other)
        specified = _oracle(x, state, c)
        gap = np.abs(other["param"]["W_dec"] - specified["param"]["W_dec"]).max()
        assert gap > 1e-6, f"{order} moved W_dec only {gap:.3g} from the specified step"


def test_constraint_before_the_step_leaves_rows_off_the_sphere_and_removal_after_it_leaves_them_on() -> None:
    """STEP-4: what a conformance run sees without the oracle: after `constraint_before_step` the rows
    are not unit (the step moved them off the sphere); after `removal_after_step` they are, yet Adam's
    first moment of W_dec has a component along the rows that the specified step removes."""
    x, state = _state(4)
    c = Conventions()
    before = _oracle(x, state, c, "constraint_before_step")
    assert np.abs(np.linalg.norm(before["param"]["W_dec"], axis=-1) - 1).max() > 1e-6
    after = _oracle(x, state, c, "removal_after_step")
    assert np.abs(np.linalg.norm(after["param"]["W_dec"], axis=-1) - 1).max() <= 1e-14
    specified = _oracle(x, state, c)
    W = state["param"]["W_dec"]
    # (1 − β1)·g·w_j, the part of this step's gradient along each row that entered the first moment
    along = {
        name: np.abs(np.sum((r["exp_avg"]["W_dec"] - 0.9 * state["exp_avg"]["W_dec"]) * W, axis=-1))
        for name, r in (("specified", specified), ("after", after))
    }
    assert along["specified"].max() <= 1e-15  # the new gradient contributed nothing along the rows
    assert along["after"].max() > 1e-6


@pytest.mark.parametrize("encode", ["tied", "untied"])
def test_under_the_normalised_decoder_the_step_is_adam_on_the_raw_gradient(encode: str) -> None:
    """STEP-2: no parallel removal and no constraint: the oracle's step equals `adam_step` on the
    plain gradients, the rows keep Adam's norms, and the torch step agrees within the tolerance rule."""
    x, state = _state(5)
    c = Conventions(encode=encode, decoder="normalised")  # type: ignore[arg-type]
    step = _oracle(x, state, c)
    p = state["param"]
    grads = oracle.loss_gradients(
        x,
        p["W_enc"],
        p["b_enc"],
        p["W_dec"],
        p["b_dec"],
        l1_coefficient=OPTIONS["l1_coefficient"],
        conventions=c,
    ).as_dict()
    plain = oracle.adam_step(
        p, grads, state["exp_avg"], state["exp_avg_sq"], step=OPTIONS["step"], lr=OPTIONS["lr"]
    )
    for k in PARAMETERS:
        assert np.array_equal(step["param"][k], plain.param[k])
    assert np.abs(np.linalg.norm(step["param"]["W_dec"], axis=-1) - 1).max() > 1e-6
    assert _ratio(x, state, c, _torch(x, state, c)) <= 1.0


def test_an_unknown_order_raises_listing_the_known_ones() -> None:
    """STEP-4: the orders are a closed set of names; refsae.torch implements the specified one only."""
    x, state = _state(6)
    with pytest.raises(ValueError, match="removal_after_step"):
        _oracle(x, state, Conventions(), "bogus")
    tensors = {g: {k: torch.from_numpy(v) for k, v in state[g].items()} for g in GROUPS}
    with pytest.raises(ValueError, match="specified order only"):
        rt.training_step(
            torch.from_numpy(x),
            tensors["param"],
            tensors["exp_avg"],
            tensors["exp_avg_sq"],
            order="removal_after_step",
            **OPTIONS,
        )
