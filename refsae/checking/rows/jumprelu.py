"""JumpReLU (jumprelu.md): case strategies, error bounds and rows of `jumprelu` and its loss and
gradients.

Case strategies of the JumpReLU rows (JUMP-8): margins at the jump and at the kernel's edges.

- `jumprelu_cases`: z and θ > 0 drawn directly; some θ_j are copied from a z value, so that
  z = θ exactly occurs (strictness, JUMP-1). The output is a copy: exact.
- `jumprelu_gradient_cases`: those, with the threshold's parametrisation (JUMP-5) drawn too.
- `jumprelu_loss_cases`: a full SAE case, a power-of-two bandwidth ε near the typical |z| (so the
  kernel windows hold some examples: the threshold's pseudo-gradient is not trivially 0), and θ moved
  to the nearest value at which every |z − θ| and every ||z − θ| − ε/2| exceeds twice the error of
  z − θ in the dtype: rounding cannot flip the mask or the kernel.

Error bounds of the JumpReLU rows (JUMP, TOL-4).

The strategies keep every |z − θ| and every ||z − θ| − ε/2| above twice the error of z − θ
(JUMP-8), so the mask 1[z > θ] and the kernel K are exact: the four parameter gradients are
GRAD's with the mask z > θ, and the threshold's pseudo-gradient sums exact 0/1 kernels times
g_f θ/ε over the batch.

Equivalences (equivalences.md): the penalty λ (L0/T − 1)² towards a target L0 (`target_l0_penalty`,
EQ-8), its per-example form λ (1/B) Σ_b (2/T)(L0_b − T)² (`quadratic_l0_penalty`, EQ-16), and the
non-strict step z >= θ of `jumprelu` and `batchtopk_inference` (`threshold_at_or_above`,
EQ-9, a tie). The loss rows keep every z off θ (JUMP-8), where the two steps agree, so the tie is not
one of theirs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from refsae import oracle
from refsae.cases import Case
from refsae.checking import bounds
from refsae.checking import strategies as rs
from refsae.checking.cases import conventions_of, finish, sae_arrays
from refsae.checking.equivalence import Equivalence, Parameters, calling
from refsae.checking.operation import Bounds, Operation, Outputs, exact
from refsae.checking.rows.losses import LOSS_EXAMPLE, backward_magnitudes, loss_cases
from refsae.checking.tolerances import SMALLEST_NORMAL, Bound, add, allowed_error, magnitude_floor, mul
from refsae.conventions import OPERATION_AXES, Conventions


@st.composite
def jumprelu_cases(draw: st.DrawFn, dtype: str) -> Case:
    shape = draw(rs.shapes())
    scale = draw(rs.scales(dtype))
    z = draw(rs.arrays((shape.batch, *shape.inst, shape.d_sae), dtype, scale))
    theta = np.abs(draw(rs.arrays((*shape.inst, shape.d_sae), dtype, scale)))
    copy = np.array(draw(st.lists(st.booleans(), min_size=theta.size, max_size=theta.size))).reshape(
        theta.shape
    )
    theta = np.where(copy & (z[0] > 0), z[0], theta)
    assume(bool(np.all(theta > 0)))
    return Case({"z": z, "theta": theta}, {}, dtype)


def draw_threshold(draw: st.DrawFn, z: np.ndarray, z_bound: Bound, dtype: str) -> tuple[np.ndarray, float]:
    """θ > 0 and a power-of-two bandwidth ε for pre-activations z (JUMP-8): ε near the typical |z|, so
    that the kernel windows hold examples; θ_j from the spread of column j, then moved to the nearest
    value at which every |z − θ| and every ||z − θ| − ε/2| exceeds twice the error of z − θ (z's bound
    `z_bound`): rounding can flip neither the mask nor the kernel."""
    typical = float(np.median(np.abs(z))) or 1.0
    bandwidth = 2.0 ** (round(np.log2(typical)) + draw(st.integers(-1, 1)))
    assume(bandwidth >= 4 * SMALLEST_NORMAL[dtype])  # θ/ε and ε/2 stay normal numbers
    pick = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).integers(0, z.shape[0], z.shape[1:])
    theta = np.abs(np.take_along_axis(z, pick[None], axis=0)[0]) * draw(st.sampled_from((0.5, 1.0, 1.5)))

    def margin(t: np.ndarray) -> np.ndarray:
        with magnitude_floor(dtype):  # subnormal z rounds absolutely (TOL-7)
            b = Bound(z_bound.magnitude + np.abs(t), z_bound.k_acc, z_bound.k_store + 1)
        return 2 * allowed_error(b, dtype)

    def clear(t: np.ndarray) -> bool:
        gap = np.abs(z - t)
        return bool(
            np.all(t > 0) and np.all(gap > margin(t)) and np.all(np.abs(gap - bandwidth / 2) > margin(t))
        )

    edges = np.concatenate([-z, -(z - bandwidth / 2), -(z + bandwidth / 2)])
    for _ in range(3):  # a move can raise θ, and with it the margin it needs: move again from there
        m = margin(theta + bandwidth)
        theta = rs.kink_margin_b_enc(edges, theta, np.concatenate([m, m, m]), dtype, positive=True)
        if clear(theta):
            break
    assume(clear(theta))
    return theta, bandwidth


@st.composite
def jumprelu_loss_cases(draw: st.DrawFn, dtype: str) -> Case:
    base = draw(loss_cases(dtype, backward=True))
    a = dict(base.arrays)
    c: Conventions = base.options["conventions"]
    z = oracle.pre_activations(a["x"], a["W_enc"], a["b_enc"], a["b_dec"], encode=c.encode)
    z_bound = bounds.pre_activations(a["x"], a["W_enc"], a["b_enc"], a["b_dec"], c.encode)
    theta, bandwidth = draw_threshold(draw, z, z_bound, dtype)
    a["theta"] = theta
    options: dict[str, Any] = {
        "l0_coefficient": base.options["l1_coefficient"],
        "bandwidth": bandwidth,
        "conventions": c,
    }
    f, x_hat = bounds.forward(a["x"], a["W_enc"], a["b_enc"], a["W_dec"], a["b_dec"], c)
    numerator = ((x_hat.magnitude + np.abs(a["x"])) ** 2).sum(axis=(0, -1))
    magnitudes = [f.magnitude, x_hat.magnitude, numerator, np.abs(z) / bandwidth]
    magnitudes += backward_magnitudes({k: v for k, v in a.items() if k != "theta"}, 0.0, c)
    return finish(Case(a, options, dtype), magnitudes)


@st.composite
def jumprelu_gradient_cases(draw: st.DrawFn, dtype: str) -> Case:
    """`jumprelu_loss_cases` with `parametrisation` (θ or log θ stored, JUMP-5) and `ste` (JUMP-14,
    JUMP-15) drawn."""
    case = draw(jumprelu_loss_cases(dtype))
    parametrisation = draw(rs.convention("parametrisation", OPERATION_AXES["parametrisation"]))
    ste = draw(rs.convention("ste", OPERATION_AXES["ste"]))
    return Case(case.arrays, {**case.options, "parametrisation": parametrisation, "ste": ste}, dtype)


def jumprelu_total_loss_bound(
    x: np.ndarray,
    W_enc: np.ndarray,
    b_enc: np.ndarray,
    W_dec: np.ndarray,
    b_dec: np.ndarray,
    theta: np.ndarray,
    x_hat_value: np.ndarray,
    l0_coefficient: float,
    c: Conventions,
) -> Bound:
    """R + λ · count/B per instance, summed over instances. f carries z's bound where active (ReLU's
    bound over all latents is used: a superset of terms); the count of active latents is exact."""
    _, x_hat = bounds.forward(x, W_enc, b_enc, W_dec, b_dec, c)
    R = bounds.reconstruction_loss(x, x_hat, x_hat_value, c.reconstruction)
    count = (oracle.pre_activations(x, W_enc, b_enc, b_dec, encode=c.encode) > theta).sum(axis=(0, -1))
    penalty = Bound(np.asarray(l0_coefficient * count / x.shape[0], dtype=np.float64), 0, 3)
    return bounds.instance_sum(R, penalty)


def jumprelu_loss_gradients_bound(
    x: np.ndarray,
    W_enc: np.ndarray,
    b_enc: np.ndarray,
    W_dec: np.ndarray,
    b_dec: np.ndarray,
    theta: np.ndarray,
    l0_coefficient: float,
    bandwidth: float,
    c: Conventions,
    parametrisation: str = "theta",
    ste: str = "threshold_only",
) -> dict[str, Bound]:
    """The four gradients (GRAD's bounds with the mask z > θ) and the threshold's: the batch sum of
    g_f · (θ/ε) · K, plus λ/(Bε) times the number of kernel hits, the two added by autograd; under
    `log_theta` that times θ (an exact input), one more rounding. Under `ste="also_input"` the same
    two terms at z (not summed over the batch) are pulled back through the encoder and added."""
    z = oracle.pre_activations(x, W_enc, b_enc, b_dec, encode=c.encode)
    out = bounds.loss_gradients(x, W_enc, b_enc, W_dec, b_dec, 0.0, c, active=z > theta)
    threshold, at_z = threshold_bounds(out["g_f"], z, theta, bandwidth, l0_coefficient)
    out["threshold"] = threshold
    if ste == "also_input":
        out = bounds.plus(out, bounds.encoder_backward(x, W_enc, b_dec, at_z, c.encode))
    if parametrisation == "log_theta":
        out["threshold"] = mul(np.abs(theta) * out["threshold"].magnitude, out["threshold"], k_store=1)
    return out


def threshold_bounds(
    g_f: Bound, z: np.ndarray, theta: np.ndarray, bandwidth: float, l0_coefficient: float
) -> tuple[Bound, Bound]:
    """The threshold's pseudo-gradient (JUMP-3 + JUMP-4) for ∂L/∂f bounded by `g_f`: the batch sum of
    g_f · (θ/ε) · K plus λ/(Bε) times the number of kernel hits, the two added by autograd (K exact by
    JUMP-8's margins); and the two terms at z, before the batch sum (`ste="also_input"`, JUMP-15)."""
    batch = z.shape[0]
    K = (np.abs(z - theta) < bandwidth / 2).astype(np.float64)
    term = mul(g_f.magnitude * (theta / bandwidth) * K, g_f, k_store=2)
    through_f = add(term.magnitude.sum(axis=0), term, k_acc=batch, k_store=1)
    through_l0 = Bound(l0_coefficient / (batch * bandwidth) * K.sum(axis=0), batch, 3)
    threshold = add(through_f.magnitude + through_l0.magnitude, through_f, through_l0, k_store=1)
    at_z = add(term.magnitude + l0_coefficient / (batch * bandwidth) * K, term, k_store=4)
    return threshold, at_z


JUMPRELU_EXAMPLE: dict[str, Any] = {
    "l0_coefficient": 0.5,
    "bandwidth": 0.5,
    "conventions": LOSS_EXAMPLE["conventions"],
}


def jumprelu_total_loss_bounds(case: Case, out: Outputs) -> Bounds:
    x, W_enc, b_enc, W_dec, b_dec = sae_arrays(case)
    c, theta = conventions_of(case), case.arrays["theta"]
    f = oracle.jumprelu(oracle.pre_activations(x, W_enc, b_enc, b_dec, encode=c.encode), theta)
    x_hat = oracle.decode(f, W_dec, b_dec, decoder=c.decoder, eps=c.eps)
    return {
        "loss": jumprelu_total_loss_bound(*sae_arrays(case), theta, x_hat, case.options["l0_coefficient"], c)
    }


def jumprelu_loss_gradients_bounds(case: Case, out: Outputs) -> Bounds:
    o = case.options
    return dict(
        jumprelu_loss_gradients_bound(
            *sae_arrays(case),
            case.arrays["theta"],
            o["l0_coefficient"],
            o["bandwidth"],
            conventions_of(case),
            o.get("parametrisation", "theta"),
            o.get("ste", "threshold_only"),
        )
    )


ROWS = (
    Operation(
        name="jumprelu",
        summary="f = z · 1[z > θ], strictly",
        clauses=("JUMP-1",),
        arrays=("z", "theta"),
        outputs=("f",),
        cases=jumprelu_cases,
        bounds=exact("f"),
    ),
    Operation(
        name="jumprelu_total_loss",
        summary="reconstruction + λ · L0 of JumpReLU latents",
        clauses=("JUMP-2", "JUMP-8"),
        arrays=("x", "W_enc", "b_enc", "W_dec", "b_dec", "theta"),
        outputs=("loss",),
        cases=jumprelu_loss_cases,
        bounds=jumprelu_total_loss_bounds,
        example=JUMPRELU_EXAMPLE,
    ),
    Operation(
        name="jumprelu_loss_gradients",
        summary="∂L/∂(W_enc, b_enc, W_dec, b_dec) and the threshold's straight-through pseudo-gradient",
        clauses=("JUMP-3", "JUMP-4", "JUMP-6", "JUMP-8", "JUMP-14", "JUMP-15"),
        arrays=("x", "W_enc", "b_enc", "W_dec", "b_dec", "theta"),
        outputs=("W_enc", "b_enc", "W_dec", "b_dec", "threshold"),
        cases=jumprelu_gradient_cases,
        bounds=jumprelu_loss_gradients_bounds,
        example=JUMPRELU_EXAMPLE,
    ),
)


def _count_penalty_bounds(
    op: Operation, case: Case, out: Outputs, penalty: Bound, slope: np.ndarray
) -> Bounds:
    """The row's bounds at λ = 0, plus a penalty of the per-example counts L0_b (exact): `penalty` its
    value's bound, `slope` (B, *inst) the magnitude of ∂P/∂L0_b, which reaches the threshold as
    Σ_b ∂P/∂L0_b · (−1/ε) K (times θ under log θ) and, under `ste="also_input"`, z (JUMP-15)."""
    a, o, c = case.arrays, case.options, conventions_of(case)
    base = op.bounds(Case(a, {**o, "l0_coefficient": 0.0}, case.dtype), out)
    if op.name == "jumprelu_total_loss":
        loss = base["loss"]
        assert loss is not None
        return {"loss": add(loss.magnitude + penalty.magnitude, loss, penalty, k_store=1)}
    z = oracle.pre_activations(a["x"], a["W_enc"], a["b_enc"], a["b_dec"], encode=c.encode)
    window = np.abs(z - a["theta"]) < o["bandwidth"] / 2
    at_z = Bound(slope[..., None] * window / o["bandwidth"], 1, 7)
    term = Bound(at_z.magnitude.sum(axis=0), a["x"].shape[0], 7)
    if o.get("parametrisation", "theta") == "log_theta":
        term = mul(term.magnitude * a["theta"], term, k_store=1)
    threshold = base["threshold"]
    assert threshold is not None
    result = {**base, "threshold": add(threshold.magnitude + term.magnitude, threshold, term, k_store=1)}
    if o.get("ste", "threshold_only") == "also_input":  # the penalty's step term reaches z (JUMP-15)
        extra = bounds.encoder_backward(a["x"], a["W_enc"], a["b_dec"], at_z, c.encode)
        return dict(bounds.plus({k: v for k, v in result.items() if v is not None}, extra))
    return result


def _counts(case: Case) -> np.ndarray:
    """L0_b per example (B, *inst), exact."""
    a = case.arrays
    z = oracle.pre_activations(a["x"], a["W_enc"], a["b_enc"], a["b_dec"], encode=conventions_of(case).encode)
    counts: np.ndarray = (z > a["theta"]).sum(axis=-1)
    return counts


def target_l0_bounds(op: Operation, case: Case, out: Outputs, parameters: Parameters) -> Bounds:
    """EQ-8: the penalty λ (L0/T − 1)² per instance (L0 a mean of exact counts; a quotient, a difference,
    a square, a product: magnitude λ (L0/T + 1)²) and ∂P/∂L0_b = (2λ/(TB))(L0/T − 1) for every b."""
    lam, target = case.options["l0_coefficient"], parameters["target_l0"]
    counts = _counts(case)
    batch = counts.shape[0]
    l0 = counts.sum(axis=0) / batch
    penalty = Bound(np.asarray(lam * ((l0 / target + 1) ** 2).sum()), l0.size, 6)
    slope = np.broadcast_to(2 * lam / target * (l0 / target + 1) / batch, counts.shape)
    return _count_penalty_bounds(op, case, out, penalty, slope)


def quadratic_l0_bounds(op: Operation, case: Case, out: Outputs, parameters: Parameters) -> Bounds:
    """EQ-16: the penalty λ (1/B) Σ_b (2/T)(L0_b − T)² (exact counts; per example a difference, a square
    and two products, then a sum over the batch: magnitude λ (1/B) Σ_b (2/T)(L0_b + T)²) and
    ∂P/∂L0_b = (λ/B)(4/T)(L0_b − T)."""
    lam, target = case.options["l0_coefficient"], parameters["target_l0"]
    counts = _counts(case)
    batch = counts.shape[0]
    terms = 2 / target * (counts + target) ** 2
    penalty = Bound(np.asarray(lam * terms.sum() / batch), counts.size, 7)
    slope = lam * 4 / (target * batch) * (counts + target)
    return _count_penalty_bounds(op, case, out, penalty, slope)


EQUIVALENCES = (
    Equivalence(
        name="target_l0_penalty",
        clause="EQ-8",
        formula="λ · (L0/T − 1)² with T = target_l0 in place of JUMP-2's λ · L0; the threshold's gradient "
        "through JUMP-4's step at z, (2λ/T)(L0/T − 1) ∂L0/∂θ",
        rows=("jumprelu_total_loss", "jumprelu_loss_gradients"),
        reference=calling(
            {
                "jumprelu_total_loss": oracle.jumprelu_target_l0_total_loss,
                "jumprelu_loss_gradients": oracle.jumprelu_target_l0_loss_gradients,
            }
        ),
        parameters={"target_l0": 20},
        requires=("target_l0",),
        bounds=target_l0_bounds,
        about=("JUMP-2", "JUMP-6"),
    ),
    Equivalence(
        name="quadratic_l0_penalty",
        clause="EQ-16",
        formula="λ (1/B) Σ_b (2/T)(L0_b − T)² with T = target_l0, each example's L0 against the target, in "
        "place of JUMP-2's λ · L0; the threshold's gradient through JUMP-4's step at z, "
        "Σ_b (λ/B)(4/T)(L0_b − T) ∂L0_b/∂θ",
        rows=("jumprelu_total_loss", "jumprelu_loss_gradients"),
        reference=calling(
            {
                "jumprelu_total_loss": oracle.jumprelu_quadratic_l0_total_loss,
                "jumprelu_loss_gradients": oracle.jumprelu_quadratic_l0_loss_gradients,
            }
        ),
        parameters={"target_l0": 1},
        requires=("target_l0",),
        bounds=quadratic_l0_bounds,
        about=("JUMP-2", "JUMP-6"),
    ),
    Equivalence(
        name="threshold_at_or_above",
        clause="EQ-9",
        kind="tie",
        formula="f = z · 1[z >= θ] where JUMP-1 and BTOPK-6 keep z > θ: the other rule at z = θ exactly",
        rows=("jumprelu", "batchtopk_inference"),
        reference=calling(
            {
                "jumprelu": oracle.jumprelu_at_or_above,
                "batchtopk_inference": oracle.batchtopk_inference_at_or_above,
            }
        ),
        about=("JUMP-1", "BTOPK-6"),
    ),
)
"""dictionary_learning's target-L0 penalty (EQ-8), SAELens's quadratic one (EQ-16) and the non-strict
threshold (EQ-9)."""
