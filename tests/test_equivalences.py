"""The named equivalences (specs/equivalences.md, EQ-1..EQ-9). Each reference is checked against an
independent computation (a direct formula, or torch autograd of an implementation written here, in
float64) on cases drawn by its rows' strategies, and each is a real alternative: on generic cases the
row's own check (`check.compare`, the tolerance rule) tells it from the spec; a tie only at a tie."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from refsae import oracle
from refsae.cases import Case
from refsae.checking import table
from refsae.checking.cases import conventions_of
from refsae.checking.check import Mismatch, compare
from refsae.checking.equivalence import Equivalence
from refsae.checking.strategies import round_to
from refsae.conventions import Conventions
from refsae.oracle.gradients import gradients_given_mask

ROOT = Path(__file__).resolve().parent.parent
EQ: dict[str, Equivalence] = {e.name: e for e in table.EQUIVALENCES}
PARAMETERS = ("W_enc", "b_enc", "W_dec", "b_dec")
Tensor = torch.Tensor


def _under(name: str, row: str, case: Case) -> dict[str, np.ndarray]:
    return EQ[name].outputs(table.get(row), case)


def _assert_close(
    row: str, case: Case, actual: dict[str, Any], expected: dict[str, Any], rtol: float = 1e-9
) -> None:
    """Equal to float64 rounding: within `rtol` times the magnitude M of each element (TOL-4, the row's
    bound: sums of absolute values, so that a gradient computed through cancellation is compared at the
    scale of its terms), or of the output's largest element where the row requires exactness."""
    op = table.get(row)
    bounds = op.bounds(case, {k: np.asarray(v, dtype=np.float64) for k, v in expected.items()})
    assert set(actual) == set(expected)
    for k, e in expected.items():
        a, e = np.asarray(actual[k], dtype=np.float64), np.asarray(e, dtype=np.float64)
        assert a.shape == e.shape, k
        bound = bounds[k]
        largest = float(np.max(np.abs(e), initial=0.0)) or 1.0
        scale = np.maximum(bound.magnitude, np.abs(e)) if bound is not None else largest
        assert np.all(np.abs(a - e) <= rtol * scale), (k, float(np.max(np.abs(a - e))))


def _told_apart(row: str, case: Case, alternative: dict[str, np.ndarray], name: str | None = None) -> bool:
    """Whether the row's check fails `alternative` as an implementation of the spec on `case`; with the
    equivalence `name`, also that its own check (its bounds, `Equivalence.row`) fails the spec's outputs
    as an implementation of the equivalence: told apart both ways, or neither."""
    op = table.get(row)
    spec = op.reference(case)

    def fails(checked: Any, expected: dict[str, np.ndarray], actual: dict[str, np.ndarray]) -> bool:
        if op.compare_via is not None:  # the objective at a returned minimiser (the checker does so)
            expected, actual = op.compare_via(case, expected), op.compare_via(case, actual)
        try:
            compare(checked, case, expected, actual)
        except Mismatch:
            return True
        return False

    apart = fails(op, spec, alternative)
    if name is not None and op.compare_via is None:  # a minimiser's check is one-sided (INIT-6)
        assert fails(EQ[name].row(op), alternative, spec) == apart
    return apart


def _t(a: np.ndarray, dtype: torch.dtype = torch.float64) -> Tensor:
    return torch.from_numpy(np.array(a, dtype=np.float64)).to(dtype)


def _sae_case(
    seed: int,
    *,
    batch: int = 6,
    n_inst: int | None = None,
    d_in: int = 3,
    d_sae: int = 5,
    dtype: str = "float64",
    **options: Any,
) -> Case:
    """A generic SAE case: normal parameters and inputs, rounded to `dtype`, rows of norm about 1."""
    rng = np.random.default_rng(seed)
    inst = () if n_inst is None else (n_inst,)
    arrays = {
        "x": rng.standard_normal((batch, *inst, d_in)) + 0.5,
        "W_enc": rng.standard_normal((*inst, d_in, d_sae)),
        "b_enc": 0.1 * rng.standard_normal((*inst, d_sae)),
        "W_dec": rng.standard_normal((*inst, d_sae, d_in)) / np.sqrt(d_in),
        "b_dec": 0.1 * rng.standard_normal((*inst, d_in)),
    }
    return Case({k: round_to(v, dtype) for k, v in arrays.items()}, options, dtype)


# --- an SAE in torch, written here: the independent side of the loss and gradient checks ---------


def _relu(z: Tensor) -> Tensor:
    return torch.relu(z)


def _topk(k: int) -> Callable[[Tensor], Tensor]:
    def latents(z: Tensor) -> Tensor:
        mask = torch.zeros_like(z).scatter(-1, torch.topk(z, k, dim=-1).indices, 1.0)
        return torch.relu(z) * mask

    return latents


def _batchtopk(k: int) -> Callable[[Tensor], Tensor]:
    def latents(z: Tensor) -> Tensor:
        per_inst = z.movedim(0, -2)  # (*inst, batch, d_sae)
        flat = per_inst.reshape(*per_inst.shape[:-2], -1)
        mask = torch.zeros_like(flat).scatter(-1, torch.topk(flat, k * z.shape[0], dim=-1).indices, 1.0)
        return torch.relu(z) * mask.reshape(per_inst.shape).movedim(-2, 0)

    return latents


def _latents_of(row: str, case: Case) -> Callable[[Tensor], Tensor]:
    if row.startswith("topk"):
        return _topk(case.options["k"])
    if row.startswith("batchtopk"):
        return _batchtopk(case.options["k"])
    return _relu


def _reconstruction(x: Tensor, x_hat: Tensor, reconstruction: str) -> Tensor:
    squared = ((x_hat - x) ** 2).sum(dim=(0, -1))
    if reconstruction == "sum":
        return squared / x.shape[0]
    if reconstruction == "mean":
        return squared / (x.shape[0] * x.shape[-1])
    return squared / ((x - x.mean(dim=0)) ** 2).sum(dim=(0, -1))


def _torch_loss(
    case: Case,
    p: dict[str, Tensor],
    latents: Callable[[Tensor], Tensor],
    *,
    batch_sum: bool = False,
    rescaled: bool = False,
) -> Tensor:
    """LOSS-6 in torch; `batch_sum`: the penalty summed over the batch; `rescaled`: SAELens's
    `rescale_acts_by_decoder_norm=True` (latents of z‖W_dec_j‖, decoded as (f/‖W_dec_j‖) @ W_dec)."""
    c, x = conventions_of(case), _t(case.arrays["x"], p["W_enc"].dtype)
    u = x - p["b_dec"] if c.encode == "tied" else x
    z = torch.einsum("b...i,...ij->b...j", u, p["W_enc"]) + p["b_enc"]
    norms = torch.linalg.vector_norm(p["W_dec"], dim=-1)
    if rescaled:
        f = latents(z * norms)
        x_hat = torch.einsum("b...j,...ji->b...i", f * (1 / norms), p["W_dec"]) + p["b_dec"]
    else:
        f = latents(z)
        W_hat = p["W_dec"] / (norms[..., None] + c.eps) if c.decoder == "normalised" else p["W_dec"]
        x_hat = torch.einsum("b...j,...ji->b...i", f, W_hat) + p["b_dec"]
    magnitude = f.abs() * norms if c.sparsity == "l1_decoder_norm" else f.abs()
    penalty = magnitude.sum(dim=(0, -1)) / (1 if batch_sum else x.shape[0])
    lam: float = case.options["l1_coefficient"]
    return (_reconstruction(x, x_hat, c.reconstruction) + lam * penalty).sum()


def _autograd(
    case: Case, loss: Callable[[dict[str, Tensor]], Tensor], dtype: torch.dtype = torch.float64
) -> tuple[float, dict[str, np.ndarray]]:
    p = {k: _t(case.arrays[k], dtype).requires_grad_(True) for k in PARAMETERS}
    value = loss(p)
    value.backward()
    return float(value.detach()), {k: v.grad.double().numpy() for k, v in p.items() if v.grad is not None}


def _loss_and_gradients(
    row: str, case: Case, loss: Callable[[dict[str, Tensor]], Tensor], dtype: torch.dtype = torch.float64
) -> dict[str, Any]:
    value, grads = _autograd(case, loss, dtype)
    return {"loss": np.asarray(value)} if row.endswith("total_loss") else grads


def _passes_under_its_bounds(name: str, row: str, case: Case, actual: dict[str, Any]) -> None:
    """`actual`, computed in the case's dtype, passes the equivalence's check (`Equivalence.row`)."""
    op = table.get(row)
    compare(EQ[name].row(op), case, EQ[name].outputs(op, case), actual)


def _draw_float64(row: str) -> st.SearchStrategy[Case]:
    return table.get(row).cases("float64")


# --- EQ-1 -------------------------------------------------------------------------------------------


def test_the_table_gathers_every_named_equivalence_each_defined_by_a_clause_of_the_spec_page() -> None:
    """EQ-1: the records, their rows and their clauses; every clause of specs/equivalences.md but EQ-1
    defines at least one record."""
    defined = set(re.findall(r"\*\*(EQ-\d+)\*\*", (ROOT / "specs" / "equivalences.md").read_text("utf-8")))
    assert set(EQ) == {
        "l1_batch_sum",
        "components_mean",
        "centred_residual",
        "rescaled_by_decoder_norm",
        "target_l0_penalty",
        "quadratic_l0_penalty",
        "threshold_at_or_above",
        "fire_fraction_product_form",
        "weiszfeld_stopped",
        "l1_batch_sum_renormalised_in_place",
        "norm_guard_1e-4",
        "fires_if_positive",
        "norm_clamped_1e-8",
        "shard_capacity_factor",
        "kth_at_or_above",
        *(
            f"{form}({eps})"
            for form in ("norm_plus_eps", "project_on_norm_plus_eps")
            for eps in ("finfo", "1e-6", "1e-8")
        ),
    }
    assert {e.clause for e in EQ.values()} == defined - {"EQ-1"}
    for e in EQ.values():
        assert e.formula and e.rows and e.kind in ("convention", "tie")
        row_clauses = {c for row in e.rows for c in table.get(row).clauses}
        assert e.about and set(e.about) <= row_clauses, e.name  # what a finding under it is about
    assert [e.name for e in table.equivalences_of("total_loss")] == ["l1_batch_sum", "components_mean"]
    assert [e.name for e in table.equivalences_of("loss_gradients")] == [
        "l1_batch_sum",
        "components_mean",
        "l1_batch_sum_renormalised_in_place",
    ]
    assert sorted(e.name for e in EQ.values() if e.kind == "tie") == [
        "fire_fraction_product_form",
        "kth_at_or_above",
        "threshold_at_or_above",
    ]


# --- EQ-2 l1_batch_sum ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "row",
    [
        "total_loss",
        "loss_gradients",
        "topk_total_loss",
        "topk_loss_gradients",
        "batchtopk_total_loss",
        "batchtopk_loss_gradients",
    ],
)
@settings(max_examples=10)
@given(data=st.data())
def test_l1_batch_sum_is_the_loss_with_the_penalty_summed_over_the_batch(
    row: str, data: st.DataObject
) -> None:
    """EQ-2: the reference (the row with λ' = λ·B) equals torch autograd of a loss whose penalty is
    λ Σ_b Σ_j |f_bj| (times ‖W_dec_j‖ under l1_decoder_norm)."""
    case = data.draw(_draw_float64(row))
    expected = _loss_and_gradients(
        row, case, lambda p: _torch_loss(case, p, _latents_of(row, case), batch_sum=True)
    )
    _assert_close(row, case, _under("l1_batch_sum", row, case), expected)


def test_l1_batch_sum_of_the_sparsity_loss_sums_the_penalty_over_the_batch() -> None:
    """EQ-2: the sparsity term alone is Σ_b Σ_j |f_bj|, B times LOSS-4's, and the check tells it apart."""
    f = np.abs(np.random.default_rng(0).standard_normal((4, 3)))
    case = Case({"f": f, "W_dec": np.eye(3)}, {"sparsity": "l1"}, "float64")
    assert float(_under("l1_batch_sum", "sparsity_loss", case)["loss"]) == pytest.approx(f.sum(), rel=1e-15)
    assert _told_apart("sparsity_loss", case, _under("l1_batch_sum", "sparsity_loss", case), "l1_batch_sum")


@pytest.mark.parametrize(
    "row", ["total_loss", "loss_gradients", "topk_total_loss", "batchtopk_loss_gradients"]
)
@settings(max_examples=10)
@given(data=st.data())
def test_l1_batch_sum_bounds_hold_for_a_float32_implementation(row: str, data: st.DataObject) -> None:
    """EQ-2: the loss written here, computed in float32, passes the equivalence's own check (the row's
    bounds at λ' = λ·B)."""
    case = data.draw(table.get(row).cases("float32"))
    latents = _latents_of(row, case)
    actual = _loss_and_gradients(
        row, case, lambda p: _torch_loss(case, p, latents, batch_sum=True), torch.float32
    )
    _passes_under_its_bounds("l1_batch_sum", row, case, actual)


@pytest.mark.parametrize(
    "row", ["total_loss", "loss_gradients", "topk_total_loss", "batchtopk_loss_gradients"]
)
def test_l1_batch_sum_is_told_apart_from_the_spec_on_a_generic_case(row: str) -> None:
    """EQ-2: with λ > 0, B > 1 and active latents, the loss and its gradients differ from LOSS-6's."""
    k: dict[str, Any] = {"k": 2} if row.startswith(("topk", "batchtopk")) else {}
    case = _sae_case(1, l1_coefficient=0.25, conventions=Conventions(), **k)
    assert _told_apart(row, case, _under("l1_batch_sum", row, case), "l1_batch_sum")


# --- EQ-12 l1_batch_sum_renormalised_in_place -------------------------------------------------------


@pytest.mark.parametrize("row", ["loss_gradients", "topk_loss_gradients", "batchtopk_loss_gradients"])
@settings(max_examples=10)
@given(data=st.data())
def test_renormalised_in_place_is_the_constrained_gradient_at_the_unit_dictionary(
    row: str, data: st.DataObject
) -> None:
    """EQ-12: under `normalised`, the reference equals torch autograd of the constrained loss (penalty
    summed over the batch) at Ŵ = W_dec / (‖W_dec_j‖ + eps), Ŵ a leaf (no gradient through the norm)."""
    case = data.draw(_draw_float64(row))
    c = conventions_of(case)
    assume(c.decoder == "normalised")
    w = case.arrays["W_dec"]
    unit = w / (np.linalg.norm(w, axis=-1, keepdims=True) + c.eps)
    constrained = Conventions(c.encode, "constrained", c.reconstruction, c.sparsity, c.eps)
    seen = Case({**case.arrays, "W_dec": unit}, {**case.options, "conventions": constrained}, "float64")
    expected = _loss_and_gradients(
        row, seen, lambda p: _torch_loss(seen, p, _latents_of(row, seen), batch_sum=True)
    )
    _assert_close(row, seen, _under("l1_batch_sum_renormalised_in_place", row, case), expected)


def test_renormalised_in_place_is_told_apart_from_the_normalised_decoders_gradient() -> None:
    """EQ-12: GRAD-5's pull-back through the norm differs on rows that are not unit vectors."""
    case = _sae_case(2, l1_coefficient=0.25, conventions=Conventions(decoder="normalised"))
    name = "l1_batch_sum_renormalised_in_place"
    assert _told_apart("loss_gradients", case, _under(name, "loss_gradients", case), name)
    assert _told_apart("loss_gradients", case, _under(name, "loss_gradients", case))


# --- EQ-3 components_mean ---------------------------------------------------------------------------


@pytest.mark.parametrize("row", ["total_loss", "loss_gradients"])
@settings(max_examples=10)
@given(data=st.data())
def test_components_mean_is_the_loss_averaged_over_the_instances(row: str, data: st.DataObject) -> None:
    """EQ-3: the reference equals torch autograd of LOSS-6 divided by the number of instances."""
    case = data.draw(_draw_float64(row))
    n = case.arrays["x"].shape[1] if case.arrays["x"].ndim == 3 else 1
    expected = _loss_and_gradients(row, case, lambda p: _torch_loss(case, p, _relu) / n)
    _assert_close(row, case, _under("components_mean", row, case), expected)


def _torch_training_step(case: Case, loss_scale: float) -> dict[str, np.ndarray]:
    """STEP-1 with torch.optim.Adam and autograd of `loss_scale` × the loss written above."""
    a, o, c = case.arrays, case.options, conventions_of(case)
    p = {k: _t(a[f"param.{k}"]).requires_grad_(True) for k in PARAMETERS}
    loss = loss_scale * _torch_loss(Case({"x": a["x"]}, o, case.dtype), p, _relu)
    loss.backward()
    constrained = c.decoder == "constrained"
    with torch.no_grad():
        if constrained:
            g, w = p["W_dec"].grad, p["W_dec"]
            assert g is not None
            g -= (g * w).sum(-1, keepdim=True) / (w * w).sum(-1, keepdim=True) * w
        opt = torch.optim.Adam(
            list(p.values()), lr=o["lr"], betas=o["betas"], eps=o["adam_eps"], weight_decay=o["weight_decay"]
        )
        for k, t in p.items():
            opt.state[t] = {
                "step": torch.tensor(float(o["step"])),
                "exp_avg": _t(a[f"exp_avg.{k}"]),
                "exp_avg_sq": _t(a[f"exp_avg_sq.{k}"]),
            }
        opt.step()
        if constrained:
            p["W_dec"] /= torch.linalg.vector_norm(p["W_dec"], dim=-1, keepdim=True)
    out: dict[str, np.ndarray] = {"loss": np.asarray(float(loss.detach()))}
    for k, t in p.items():
        out |= {
            f"param.{k}": t.detach().numpy(),
            f"exp_avg.{k}": opt.state[t]["exp_avg"].numpy(),
            f"exp_avg_sq.{k}": opt.state[t]["exp_avg_sq"].numpy(),
        }
    return out


@settings(max_examples=10)
@given(case=_draw_float64("training_step"))
def test_components_mean_of_the_training_step_is_adam_fed_the_averaged_loss(case: Case) -> None:
    """EQ-3: the step of the averaged loss equals torch's Adam stepping on autograd of loss / n_inst
    (parallel component removed before the step and rows renormalised after it, STEP-1)."""
    n = case.arrays["x"].shape[1] if case.arrays["x"].ndim == 3 else 1
    expected = _torch_training_step(case, 1.0 / n)
    _assert_close("training_step", case, _under("components_mean", "training_step", case), expected, 1e-8)


@pytest.mark.parametrize("row", ["total_loss", "loss_gradients"])
def test_components_mean_is_told_apart_from_the_spec_with_two_instances_or_more(row: str) -> None:
    """EQ-3: one instance changes nothing; with two, the loss and the gradients are halved."""
    options: dict[str, Any] = {"l1_coefficient": 0.25, "conventions": Conventions()}
    one, two = _sae_case(2, **options), _sae_case(2, n_inst=2, **options)
    assert not _told_apart(row, one, _under("components_mean", row, one), "components_mean")
    assert _told_apart(row, two, _under("components_mean", row, two), "components_mean")


# --- EQ-4 norm_plus_eps, EQ-5 project_on_norm_plus_eps ----------------------------------------------

EPS = {"finfo": None, "1e-6": 1e-6, "1e-8": 1e-8}


def _eps(label: str, dtype: str) -> float:
    value = EPS[label]
    return float(torch.finfo(getattr(torch, dtype)).eps) if value is None else value


@pytest.mark.parametrize("label", list(EPS))
@pytest.mark.parametrize("dtype", ["float64", "float32", "bfloat16", "float16"])
@settings(max_examples=10)
@given(data=st.data())
def test_norm_plus_eps_divides_each_row_by_its_norm_plus_eps(
    label: str, dtype: str, data: st.DataObject
) -> None:
    """EQ-4: the reference equals W_j / (torch.linalg.vector_norm(W_j) + eps), eps = torch.finfo of the
    case's dtype for `finfo`; zero rows stay zero."""
    case = data.draw(table.get("renormalise_rows").cases(dtype))
    W = _t(case.arrays["W_dec"])
    expected = W / (torch.linalg.vector_norm(W, dim=-1, keepdim=True) + _eps(label, dtype))
    got = _under(f"norm_plus_eps({label})", "renormalise_rows", case)
    _assert_close("renormalise_rows", case, got, {"W_dec": expected.numpy()}, 1e-14)
    assert np.all(got["W_dec"][np.all(case.arrays["W_dec"] == 0, axis=-1)] == 0)


@pytest.mark.parametrize("label", list(EPS))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@settings(max_examples=10)
@given(data=st.data())
def test_project_on_norm_plus_eps_projects_on_the_guarded_direction(
    label: str, dtype: str, data: st.DataObject
) -> None:
    """EQ-5: the reference equals g − (g·ŵ) ŵ with ŵ = w / (‖w‖ + eps), written in torch; a zero row
    keeps its gradient."""
    case = data.draw(table.get("remove_parallel_component").cases(dtype))
    w, g = _t(case.arrays["W_dec"]), _t(case.arrays["grad_W_dec"])
    unit = w / (torch.linalg.vector_norm(w, dim=-1, keepdim=True) + _eps(label, dtype))
    expected = g - (g * unit).sum(-1, keepdim=True) * unit
    got = _under(f"project_on_norm_plus_eps({label})", "remove_parallel_component", case)
    _assert_close("remove_parallel_component", case, got, {"grad_W_dec": expected.numpy()}, 1e-13)
    zero = np.all(case.arrays["W_dec"] == 0, axis=-1)
    assert np.array_equal(got["grad_W_dec"][zero], case.arrays["grad_W_dec"][zero])


@pytest.mark.parametrize("label", list(EPS))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_eps_guarded_forms_are_told_apart_from_the_spec_on_rows_of_small_norm(
    label: str, dtype: str
) -> None:
    """EQ-4, EQ-5: the relative change eps/‖w‖ exceeds the allowed error once a row is short enough
    (norm about 2^-10 here; the findings on sparsify and dictionary_learning had 0.1257 in float64)."""
    rng = np.random.default_rng(3)
    W = round_to(2.0**-10 * rng.standard_normal((4, 3)) / np.sqrt(3), dtype)
    g = round_to(rng.standard_normal((4, 3)), dtype)
    rows, pair = Case({"W_dec": W}, {}, dtype), Case({"W_dec": W, "grad_W_dec": g}, {}, dtype)
    renormalised = _under(f"norm_plus_eps({label})", "renormalise_rows", rows)
    assert _told_apart("renormalise_rows", rows, renormalised, f"norm_plus_eps({label})")
    projected = _under(f"project_on_norm_plus_eps({label})", "remove_parallel_component", pair)
    assert _told_apart("remove_parallel_component", pair, projected, f"project_on_norm_plus_eps({label})")


def test_an_eps_below_the_rounding_of_the_dtype_is_not_told_apart_on_rows_of_unit_norm() -> None:
    """EQ-4: in float32, 1e-8 on rows of norm about 1 changes them by less than their rounding error:
    there the guarded form and CON-1 are the same result, and only short rows tell them apart."""
    W = round_to(np.random.default_rng(6).standard_normal((4, 3)), "float32")
    W = round_to(W / np.linalg.norm(W, axis=-1, keepdims=True), "float32")
    case = Case({"W_dec": W}, {}, "float32")
    for eps, shows in (("1e-8", False), ("1e-6", True)):
        name = f"norm_plus_eps({eps})"
        assert _told_apart("renormalise_rows", case, _under(name, "renormalise_rows", case), name) == shows


# --- EQ-6 centred_residual --------------------------------------------------------------------------


@settings(max_examples=20)
@given(case=_draw_float64("explained_variance"))
def test_centred_residual_is_one_minus_the_variance_of_the_residual_over_that_of_x(case: Case) -> None:
    """EQ-6: the reference equals dictionary_learning's formula written in torch,
    1 − Σ_d var_b(x − x_hat) / Σ_d var_b(x) (unbiased variances: the correction cancels)."""
    x, x_hat = _t(case.arrays["x"]), _t(case.arrays["x_hat"])
    expected = 1 - torch.var(x - x_hat, dim=0).sum(-1) / torch.var(x, dim=0).sum(-1)
    got = _under("centred_residual", "explained_variance", case)
    _assert_close("explained_variance", case, got, {"explained_variance": expected.numpy()})


def test_centred_residual_is_sklearns_variance_weighted_explained_variance_score() -> None:
    """EQ-6: scikit-learn's explained_variance_score with multioutput="variance_weighted"."""
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(4)
    x = rng.standard_normal((9, 4)) + np.arange(4)
    x_hat = x + 0.3 * rng.standard_normal((9, 4)) + 0.5
    case = Case({"x": x, "x_hat": x_hat}, {}, "float64")
    expected = metrics.explained_variance_score(x, x_hat, multioutput="variance_weighted")
    assert float(
        _under("centred_residual", "explained_variance", case)["explained_variance"]
    ) == pytest.approx(expected, rel=1e-12)


def test_centred_residual_ignores_a_constant_offset_that_the_spec_counts() -> None:
    """EQ-6: x_hat = x + 1 explains all the variance under the centred residual, none under MET-3."""
    x = np.array([[0.0, 4.0], [2.0, 6.0]])
    case = Case({"x": x, "x_hat": x + 1.0}, {}, "float64")
    got = _under("centred_residual", "explained_variance", case)
    assert float(got["explained_variance"]) == 1.0
    assert float(table.get("explained_variance").reference(case)["explained_variance"]) == 0.0
    assert _told_apart("explained_variance", case, got, "centred_residual")


# --- EQ-7 rescaled_by_decoder_norm ------------------------------------------------------------------


@pytest.mark.parametrize(
    "row", ["topk_total_loss", "topk_loss_gradients", "batchtopk_total_loss", "batchtopk_loss_gradients"]
)
@settings(max_examples=10)
@given(data=st.data())
def test_rescaled_by_decoder_norm_is_autograd_of_saelens_selection_and_decode(
    row: str, data: st.DataObject
) -> None:
    """EQ-7: the reference (the chain rule written in NumPy) equals torch autograd of an SAE that selects
    on z_j ‖W_dec_j‖ and decodes (f_j / ‖W_dec_j‖) @ W_dec, the gradient flowing through both norms, under
    every convention the row draws (λ > 0 too: the penalty of the returned latents)."""
    case = data.draw(_draw_float64(row))
    latents = _latents_of(row, case)
    expected = _loss_and_gradients(row, case, lambda p: _torch_loss(case, p, latents, rescaled=True))
    _assert_close(row, case, _under("rescaled_by_decoder_norm", row, case), expected)


@pytest.mark.parametrize(
    "row", ["topk_total_loss", "topk_loss_gradients", "batchtopk_total_loss", "batchtopk_loss_gradients"]
)
@settings(max_examples=10)
@given(data=st.data())
def test_rescaled_by_decoder_norm_bounds_hold_for_a_float32_implementation(
    row: str, data: st.DataObject
) -> None:
    """EQ-7: SAELens's computation written here, run in float32, passes the equivalence's own check
    (the row's bounds in the equivalent normalised form, with the path through the norms)."""
    case = data.draw(table.get(row).cases("float32"))
    latents = _latents_of(row, case)
    actual = _loss_and_gradients(
        row, case, lambda p: _torch_loss(case, p, latents, rescaled=True), torch.float32
    )
    _passes_under_its_bounds("rescaled_by_decoder_norm", row, case, actual)


@pytest.mark.parametrize("row", ["topk_loss_gradients", "batchtopk_loss_gradients"])
@settings(max_examples=10)
@given(data=st.data())
def test_rescaled_gradients_at_lambda_zero_are_the_constrained_ones_with_the_selection_on_z_times_the_norm(
    row: str, data: st.DataObject
) -> None:
    """EQ-7: the two paths through ‖W_dec_j‖ cancel (f_j / ‖W_dec_j‖ = max(z_j, 0)): without a penalty the
    gradients are GRAD's under the constrained decoder with the mask 1[selected(z ‖W_dec‖) ∧ z > 0]."""
    case = data.draw(_draw_float64(row))
    assume(case.options["l1_coefficient"] == 0.0)
    a, c = case.arrays, conventions_of(case)
    z = oracle.pre_activations(a["x"], a["W_enc"], a["b_enc"], a["b_dec"], encode=c.encode)
    h = _t(z * np.linalg.norm(a["W_dec"], axis=-1))
    active = (_latents_of(row, case)(h) > 0).numpy()
    expected = gradients_given_mask(
        a["x"],
        a["W_enc"],
        a["b_enc"],
        a["W_dec"],
        a["b_dec"],
        z,
        active,
        0.0,
        Conventions(encode=c.encode, reconstruction=c.reconstruction),
    ).as_dict()
    _assert_close(row, case, _under("rescaled_by_decoder_norm", row, case), expected)


@pytest.mark.parametrize("decoder", ["constrained", "normalised"])
@pytest.mark.parametrize(
    "row", ["topk_total_loss", "topk_loss_gradients", "batchtopk_total_loss", "batchtopk_loss_gradients"]
)
def test_rescaled_by_decoder_norm_is_told_apart_from_the_spec_under_either_decoder(
    decoder: str, row: str
) -> None:
    """EQ-7: with rows not of unit norm, neither decoder convention gives SAELens's loss or gradients;
    the hand example of the finding (x = (1, 1.5), W_enc = I, W_dec = diag(2, 1), k = 1) gives 3.25."""
    c = Conventions(decoder=decoder)  # type: ignore[arg-type]
    case = _sae_case(5, batch=4, d_sae=6, l1_coefficient=0.0, conventions=c, k=2)
    spread = 2.0 ** np.arange(-2, 4)[:, None]  # row norms from 1/4 to 8: the selection on z ‖W_dec_j‖ moves
    case = Case({**case.arrays, "W_dec": case.arrays["W_dec"] * spread}, case.options, "float64")
    assert _told_apart(row, case, _under("rescaled_by_decoder_norm", row, case), "rescaled_by_decoder_norm")
    hand = Case(
        {
            "x": np.array([[1.0, 1.5]]),
            "W_enc": np.eye(2),
            "b_enc": np.zeros(2),
            "W_dec": np.diag([2.0, 1.0]),
            "b_dec": np.zeros(2),
        },
        {"l1_coefficient": 0.0, "conventions": c, "k": 1},
        "float64",
    )
    if row.endswith("total_loss"):
        assert float(_under("rescaled_by_decoder_norm", row, hand)["loss"]) == 3.25
        assert float(table.get(row).reference(hand)["loss"]) == pytest.approx(1.0, rel=1e-12)


# --- EQ-8 target_l0_penalty -------------------------------------------------------------------------


class _Jump(torch.autograd.Function):
    """z · 1[z > θ]; ∂/∂z = 1[z > θ] (+ (θ/ε) 1[|z − θ| < ε/2] when `to_input`, JUMP-15),
    ∂/∂θ := −(θ/ε) 1[|z − θ| < ε/2] (JUMP-3)."""

    @staticmethod
    def forward(ctx: Any, z: Tensor, theta: Tensor, eps: float, to_input: bool) -> Tensor:
        ctx.save_for_backward(z, theta)
        ctx.eps, ctx.to_input = eps, to_input
        return z * (z > theta)

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor, Tensor, None, None]:
        z, theta = ctx.saved_tensors
        window = ((z - theta).abs() < ctx.eps / 2).to(z.dtype)
        estimate = (theta / ctx.eps) * window * g
        grad_z = g * (z > theta) + (estimate if ctx.to_input else 0)
        return grad_z, (-estimate).sum(0), None, None


class _Step(torch.autograd.Function):
    """1[z > θ]; ∂/∂z := 0 (or (1/ε) 1[|z − θ| < ε/2] when `to_input`, JUMP-15),
    ∂/∂θ := −(1/ε) 1[|z − θ| < ε/2] (JUMP-4, at z)."""

    @staticmethod
    def forward(ctx: Any, z: Tensor, theta: Tensor, eps: float, to_input: bool) -> Tensor:
        ctx.save_for_backward(z, theta)
        ctx.eps, ctx.to_input = eps, to_input
        return (z > theta).to(z.dtype)

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor, Tensor, None, None]:
        z, theta = ctx.saved_tensors
        window = ((z - theta).abs() < ctx.eps / 2).to(z.dtype)
        estimate = (1 / ctx.eps) * window * g
        return (estimate if ctx.to_input else torch.zeros_like(z)), (-estimate).sum(0), None, None


def _target_l0_autograd(
    case: Case, target_l0: float, dtype: torch.dtype = torch.float64
) -> tuple[float, dict[str, np.ndarray]]:
    """dictionary_learning's JumpReluTrainer.loss with the step at z, in torch: reconstruction +
    λ (L0/T − 1)² per instance (EQ-8)."""
    return _count_penalty_autograd(case, lambda counts: (counts.mean(0) / target_l0 - 1) ** 2, dtype)


def _quadratic_l0_autograd(
    case: Case, target_l0: float, dtype: torch.dtype = torch.float64
) -> tuple[float, dict[str, np.ndarray]]:
    """SAELens's `jumprelu_sparsity_loss_mode="quadratic"`, in torch: reconstruction +
    λ mean_b (2/T)(L0_b − T)² per instance (EQ-16)."""
    return _count_penalty_autograd(
        case, lambda counts: (2 / target_l0 * (counts - target_l0) ** 2).mean(0), dtype
    )


def _count_penalty_autograd(
    case: Case, penalty: Callable[[Tensor], Tensor], dtype: torch.dtype
) -> tuple[float, dict[str, np.ndarray]]:
    """Reconstruction + λ penalty(L0_b) per instance, L0_b the step's count per example (B, *inst), with
    the step at z; the stored threshold θ or log θ; the estimates at z too under `ste="also_input"`."""
    a, o, c = case.arrays, case.options, conventions_of(case)
    p = {k: _t(a[k], dtype).requires_grad_(True) for k in PARAMETERS}
    log = o.get("parametrisation", "theta") == "log_theta"
    stored = _t(np.log(a["theta"]) if log else a["theta"], dtype).requires_grad_(True)
    theta = stored.exp() if log else stored
    x = _t(a["x"], dtype)
    u = x - p["b_dec"] if c.encode == "tied" else x
    z = torch.einsum("b...i,...ij->b...j", u, p["W_enc"]) + p["b_enc"]
    to_input = o.get("ste", "threshold_only") == "also_input"
    f = _Jump.apply(z, theta, o["bandwidth"], to_input)
    W_hat = p["W_dec"] / (torch.linalg.vector_norm(p["W_dec"], dim=-1, keepdim=True) + c.eps)
    x_hat = torch.einsum("b...j,...ji->b...i", f, W_hat if c.decoder == "normalised" else p["W_dec"])
    counts = _Step.apply(z, theta, o["bandwidth"], to_input).sum(-1)
    loss = (
        _reconstruction(x, x_hat + p["b_dec"], c.reconstruction) + o["l0_coefficient"] * penalty(counts)
    ).sum()
    loss.backward()
    grads = {k: t.grad.double().numpy() for k, t in p.items() if t.grad is not None}
    assert stored.grad is not None
    return float(loss.detach()), {**grads, "threshold": stored.grad.double().numpy()}


@pytest.mark.parametrize("row", ["jumprelu_total_loss", "jumprelu_loss_gradients"])
@settings(max_examples=10)
@given(data=st.data())
def test_target_l0_penalty_bounds_hold_for_a_float32_implementation(row: str, data: st.DataObject) -> None:
    """EQ-8: the loss written here, computed in float32 (θ stored as θ: a float32 log θ would be another
    input), passes the equivalence's own check (the row's bounds at λ = 0 plus the penalty's)."""
    case = data.draw(table.get(row).cases("float32"))
    assume(case.options.get("parametrisation", "theta") == "theta")
    value, grads = _target_l0_autograd(case, 20, torch.float32)
    _passes_under_its_bounds(
        "target_l0_penalty", row, case, {"loss": np.asarray(value)} if row.endswith("loss") else grads
    )


@pytest.mark.parametrize("target_l0", [20, 0.5])
@pytest.mark.parametrize("row", ["jumprelu_total_loss", "jumprelu_loss_gradients"])
@settings(max_examples=15)
@given(data=st.data())
def test_target_l0_penalty_is_autograd_of_the_penalty_towards_the_target(
    row: str, target_l0: float, data: st.DataObject
) -> None:
    """EQ-8: the reference equals torch autograd of reconstruction + λ (L0/T − 1)², with the JUMP-3 and
    JUMP-4 pseudo-derivatives (the step at z) as autograd Functions, under θ and log θ (JUMP-5)."""
    case = data.draw(_draw_float64(row))
    value, grads = _target_l0_autograd(case, target_l0)
    expected = {"loss": value} if row.endswith("total_loss") else grads
    got = EQ["target_l0_penalty"].outputs(table.get(row), case, {"target_l0": target_l0})
    _assert_close(row, case, got, expected)


@settings(max_examples=20)
@given(case=_draw_float64("jumprelu_total_loss"))
def test_target_l0_penalty_is_told_apart_from_the_spec_when_the_two_penalties_differ(case: Case) -> None:
    """EQ-8: wherever λ (L0/T − 1)² and λ L0 differ (λ > 0 and L0 away from the two roots of
    L0 = (L0/20 − 1)²), the row's check tells the loss apart from JUMP-2's."""
    a, o, c = case.arrays, case.options, conventions_of(case)
    z = oracle.pre_activations(a["x"], a["W_enc"], a["b_enc"], a["b_dec"], encode=c.encode)
    l0 = (z > a["theta"]).sum(axis=(0, -1)) / a["x"].shape[0]
    gap = o["l0_coefficient"] * abs(float(((l0 / 20 - 1) ** 2).sum() - l0.sum()))
    loss = float(table.get("jumprelu_total_loss").reference(case)["loss"])
    assume(gap > 1e-6 * (1 + abs(loss)))
    got = _under("target_l0_penalty", "jumprelu_total_loss", case)
    assert _told_apart("jumprelu_total_loss", case, got, "target_l0_penalty")


# --- EQ-16 quadratic_l0_penalty -----------------------------------------------------------------------


@pytest.mark.parametrize("row", ["jumprelu_total_loss", "jumprelu_loss_gradients"])
@settings(max_examples=10)
@given(data=st.data())
def test_quadratic_l0_penalty_bounds_hold_for_a_float32_implementation(row: str, data: st.DataObject) -> None:
    """EQ-16: the loss written here, computed in float32 (θ stored as θ), passes the equivalence's own
    check (the row's bounds at λ = 0 plus the per-example penalty's)."""
    case = data.draw(table.get(row).cases("float32"))
    assume(case.options.get("parametrisation", "theta") == "theta")
    value, grads = _quadratic_l0_autograd(case, 1, torch.float32)
    _passes_under_its_bounds(
        "quadratic_l0_penalty", row, case, {"loss": np.asarray(value)} if row.endswith("loss") else grads
    )


@pytest.mark.parametrize("target_l0", [1, 3.5])
@pytest.mark.parametrize("row", ["jumprelu_total_loss", "jumprelu_loss_gradients"])
@settings(max_examples=15)
@given(data=st.data())
def test_quadratic_l0_penalty_is_autograd_of_each_examples_penalty_around_the_target(
    row: str, target_l0: float, data: st.DataObject
) -> None:
    """EQ-16: the reference equals torch autograd of reconstruction + λ mean_b (2/T)(L0_b − T)², with the
    JUMP-3 and JUMP-4 pseudo-derivatives (the step at z) as autograd Functions, under θ and log θ."""
    case = data.draw(_draw_float64(row))
    value, grads = _quadratic_l0_autograd(case, target_l0)
    expected = {"loss": value} if row.endswith("total_loss") else grads
    got = EQ["quadratic_l0_penalty"].outputs(table.get(row), case, {"target_l0": target_l0})
    _assert_close(row, case, got, expected)


def test_the_quadratic_penalty_squares_each_examples_l0_and_the_target_l0_one_the_batch_mean() -> None:
    """EQ-16 against EQ-8 by hand: with per-example counts (2, 0) and T = 1, EQ-16's penalty is
    λ · mean(2 (2 − 1)², 2 (0 − 1)²) = 2λ and EQ-8's λ (1/1 − 1)² = 0 (the mean L0 is on target)."""
    x = np.array([[1.0, 0.0], [0.0, 0.0]])
    a = {"x": x, "W_enc": np.array([[1.0, 2.0], [0.0, 0.0]]), "b_enc": np.zeros(2), "W_dec": np.zeros((2, 2))}
    a |= {"b_dec": np.zeros(2), "theta": np.full(2, 0.5)}
    o = {"l0_coefficient": 0.25, "bandwidth": 1.0, "conventions": Conventions(encode="untied")}
    case = Case(a, o, "float64")
    row = table.get("jumprelu_total_loss")
    reconstruction = float(np.sum(x**2) / 2)  # x̂ = 0: LOSS-1's sum over d_in, mean over the batch
    quadratic = float(EQ["quadratic_l0_penalty"].outputs(row, case, {"target_l0": 1})["loss"])
    target = float(EQ["target_l0_penalty"].outputs(row, case, {"target_l0": 1})["loss"])
    assert quadratic == reconstruction + 2 * 0.25 and target == reconstruction


@settings(max_examples=20)
@given(case=_draw_float64("jumprelu_total_loss"))
def test_quadratic_l0_penalty_is_told_apart_from_the_spec_when_the_two_penalties_differ(case: Case) -> None:
    """EQ-16: wherever λ mean_b 2(L0_b − 1)² and λ L0 differ, the row's check tells the loss apart from
    JUMP-2's (T = 1, the parameter SAELens's adapter declares)."""
    a, o, c = case.arrays, case.options, conventions_of(case)
    z = oracle.pre_activations(a["x"], a["W_enc"], a["b_enc"], a["b_dec"], encode=c.encode)
    counts = (z > a["theta"]).sum(axis=-1)
    gap = o["l0_coefficient"] * abs(
        float((2 * (counts - 1) ** 2).mean(axis=0).sum() - counts.mean(axis=0).sum())
    )
    loss = float(table.get("jumprelu_total_loss").reference(case)["loss"])
    assume(gap > 1e-6 * (1 + abs(loss)))
    got = _under("quadratic_l0_penalty", "jumprelu_total_loss", case)
    assert _told_apart("jumprelu_total_loss", case, got, "quadratic_l0_penalty")


# --- EQ-9 threshold_at_or_above (a tie) -------------------------------------------------------------


def _ties(row: str, case: Case) -> np.ndarray:
    z = case.arrays["z"]
    if row == "jumprelu":
        return np.asarray(z == case.arrays["theta"])
    return np.asarray((z == np.maximum(case.arrays["threshold"], 0.0)[..., None]) & (z > 0))


@pytest.mark.parametrize("row", ["jumprelu", "batchtopk_inference"])
@pytest.mark.parametrize("dtype", ["float64", "float32", "bfloat16", "float16"])
@settings(max_examples=50)
@given(data=st.data())
def test_threshold_at_or_above_equals_the_spec_off_ties_and_differs_exactly_at_them(
    row: str, dtype: str, data: st.DataObject
) -> None:
    """EQ-9: f = z · 1[z >= θ] (a direct formula); the row's check passes it where no z equals θ and
    fails it where one does, the difference confined to the tied elements."""
    case = data.draw(table.get(row).cases(dtype))
    got = _under("threshold_at_or_above", row, case)["f"]
    z = case.arrays["z"]
    theta = (
        case.arrays["theta"] if row == "jumprelu" else np.maximum(case.arrays["threshold"], 0.0)[..., None]
    )
    assert np.array_equal(got, np.where(z >= theta, z, 0.0))
    ties = _ties(row, case)
    spec = table.get(row).reference(case)["f"]
    assert np.array_equal(got != spec, ties & (z != 0))
    assert _told_apart(row, case, {"f": got}, "threshold_at_or_above") == bool(np.any(ties & (z != 0)))


@pytest.mark.parametrize("row", ["jumprelu", "batchtopk_inference"])
def test_the_tie_rows_draw_exact_ties_in_at_least_a_tenth_of_their_cases(row: str) -> None:
    """EQ-9: a tie rule can be told apart only on exact ties z = θ, which the rows' strategies draw (the
    jumprelu row copies pre-activations into θ, batchtopk_inference copies one into the threshold)."""
    seen: list[bool] = []

    @settings(max_examples=100, derandomize=True, database=None)
    @given(case=table.get(row).cases("float32"))
    def draw(case: Case) -> None:
        seen.append(bool(np.any(_ties(row, case) & (case.arrays["z"] != 0))))

    draw()
    assert sum(seen) >= len(seen) / 10, (sum(seen), len(seen))


# --- EQ-10 fire_fraction_product_form (a tie) -------------------------------------------------------


@settings(max_examples=100)
@given(case=table.get("dead_by_fire_fraction").cases("float64"))
def test_fire_fraction_product_form_differs_from_the_spec_only_where_the_fraction_equals_the_threshold(
    case: Case,
) -> None:
    """EQ-10: the reference is `count <= threshold · n` (a direct formula, and sparse_autoencoder's
    `count <= int(n · threshold)` for integer counts); it differs from DEAD-2 only at counts whose
    fraction (in float64) is the threshold, and there the row's check tells it apart."""
    counts, o = case.arrays["fire_counts"], case.options
    got = _under("fire_fraction_product_form", "dead_by_fire_fraction", case)["dead"]
    assert np.array_equal(got, counts <= o["threshold"] * o["n_examples"])
    assert np.array_equal(got, counts <= int(o["n_examples"] * o["threshold"]))
    spec = table.get("dead_by_fire_fraction").reference(case)["dead"]
    tie = counts / o["n_examples"] == o["threshold"]  # the fraction, rounded, is the threshold
    assert not np.any((got != spec) & ~tie)
    differs = bool(np.any(got != spec))
    assert _told_apart("dead_by_fire_fraction", case, {"dead": got}, "fire_fraction_product_form") == differs


def test_the_dead_fraction_row_draws_thresholds_where_the_product_form_differs() -> None:
    """EQ-10: a tenth of the cases at least hold a count on which the two rules disagree."""
    seen: list[bool] = []

    @settings(max_examples=100, derandomize=True, database=None)
    @given(case=table.get("dead_by_fire_fraction").cases("float64"))
    def draw(case: Case) -> None:
        got = _under("fire_fraction_product_form", "dead_by_fire_fraction", case)["dead"]
        seen.append(bool(np.any(got != table.get("dead_by_fire_fraction").reference(case)["dead"])))

    draw()
    assert sum(seen) >= len(seen) / 10, (sum(seen), len(seen))


# --- EQ-11 weiszfeld_stopped ------------------------------------------------------------------------


def _dictionary_learning_geometric_median(points: Tensor, max_iter: int = 100, tol: float = 1e-5) -> Tensor:
    """dictionary_learning 0.1.0's `trainers.top_k.geometric_median`, line for line."""
    guess = points.mean(dim=0)
    for _ in range(max_iter):
        prev = guess
        weights = 1 / torch.norm(points - guess, dim=1)
        weights /= weights.sum()
        guess = (weights.unsqueeze(1) * points).sum(dim=0)
        if torch.norm(guess - prev) < tol:
            break
    return guess


@settings(max_examples=30)
@given(case=table.get("geometric_median").cases("float64"))
def test_weiszfeld_stopped_is_dictionary_learnings_geometric_median(case: Case) -> None:
    """EQ-11: without an instance axis and away from data points, the reference equals the library's
    loop written in torch (plain steps from the mean, stopped at 100 steps or a step under 1e-5)."""
    x = case.arrays["x"]
    assume(x.ndim == 2)
    expected = _dictionary_learning_geometric_median(_t(x)).numpy()
    assume(bool(np.all(np.isfinite(expected))))  # the library's 0/0 on a data point (INIT-4)
    got = _under("weiszfeld_stopped", "geometric_median", case)["b_dec"]
    scale = float(np.max(np.abs(x))) or 1.0
    assert np.max(np.abs(got - expected)) <= 1e-12 * scale


def test_weiszfeld_stopped_is_told_apart_from_the_certified_median_where_weiszfeld_is_slow() -> None:
    """EQ-11: where the median is a data point (four points around a fifth), plain Weiszfeld creeps
    towards it and stops on a short step far from it in the objective: the row's check fails the
    stopped iterate as INIT-2's minimiser; on random small batches, about a third of the time."""
    x = np.array([[0.01, 0.02], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    case = Case({"x": x}, {}, "float64")
    assert _told_apart("geometric_median", case, _under("weiszfeld_stopped", "geometric_median", case))
    rng = np.random.default_rng(1)
    cases = [Case({"x": rng.standard_normal((int(rng.integers(2, 8)), 3))}, {}, "float64") for _ in range(60)]
    apart = [
        _told_apart("geometric_median", c, _under("weiszfeld_stopped", "geometric_median", c)) for c in cases
    ]
    assert sum(apart) >= len(apart) / 10, (sum(apart), len(apart))
