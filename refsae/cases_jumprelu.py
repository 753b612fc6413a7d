"""Case strategies of the JumpReLU rows (JUMP-8): margins at the jump and at the kernel's edges.

- `jumprelu_cases`: z and θ > 0 drawn directly; some θ_j are copied from a z value, so that
  z = θ exactly occurs (strictness, JUMP-1). The output is a copy: exact.
- `jumprelu_gradient_cases`: those, with the threshold's parametrisation (JUMP-5) drawn too.
- `jumprelu_loss_cases`: a full SAE case, a power-of-two bandwidth ε near the typical |z| (so the
  kernel windows hold some examples: the threshold's pseudo-gradient is not trivially 0), and θ moved
  to the nearest value at which every |z − θ| and every ||z − θ| − ε/2| exceeds twice the error of
  z − θ in the dtype: rounding cannot flip the mask or the kernel.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from refsae import bounds, oracle
from refsae import strategies as rs
from refsae.cases import Case, _finish, backward_magnitudes, loss_cases
from refsae.conventions import OPERATION_AXES, Conventions
from refsae.tolerances import SMALLEST_NORMAL, Bound, allowed_error, magnitude_floor


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


@st.composite
def jumprelu_loss_cases(draw: st.DrawFn, dtype: str) -> Case:
    base = draw(loss_cases(dtype, backward=True))
    a = dict(base.arrays)
    c: Conventions = base.options["conventions"]
    z = oracle.pre_activations(a["x"], a["W_enc"], a["b_enc"], a["b_dec"], encode=c.encode)
    typical = float(np.median(np.abs(z))) or 1.0
    bandwidth = 2.0 ** (round(np.log2(typical)) + draw(st.integers(-1, 1)))
    assume(bandwidth >= 4 * SMALLEST_NORMAL[dtype])  # θ/ε and ε/2 stay normal numbers
    # θ_j from the spread of column j, then moved off the jump and the kernel edges (JUMP-8)
    pick = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).integers(0, z.shape[0], z.shape[1:])
    theta = np.abs(np.take_along_axis(z, pick[None], axis=0)[0]) * draw(st.sampled_from((0.5, 1.0, 1.5)))
    z_bound = bounds.pre_activations(a["x"], a["W_enc"], a["b_enc"], a["b_dec"], c.encode)

    def margin(t: np.ndarray) -> np.ndarray:
        with magnitude_floor(dtype):  # subnormal z rounds absolutely (TOL-7)
            b = Bound(z_bound.magnitude + np.abs(t), z_bound.k_acc, z_bound.k_store + 1)
        return 2 * allowed_error(b, dtype)

    m = margin(theta + bandwidth)
    edges = np.concatenate([-z, -(z - bandwidth / 2), -(z + bandwidth / 2)])
    theta = rs.kink_margin_b_enc(edges, theta, np.concatenate([m, m, m]), dtype)
    assume(bool(np.all(theta > 0)))
    gap = np.abs(z - theta)
    assume(bool(np.all(gap > margin(theta)) and np.all(np.abs(gap - bandwidth / 2) > margin(theta))))
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
    return _finish(Case(a, options, dtype), magnitudes)


@st.composite
def jumprelu_gradient_cases(draw: st.DrawFn, dtype: str) -> Case:
    """`jumprelu_loss_cases` with `parametrisation` drawn (θ or log θ stored, JUMP-5)."""
    case = draw(jumprelu_loss_cases(dtype))
    parametrisation = draw(rs.convention("parametrisation", OPERATION_AXES["parametrisation"]))
    return Case(case.arrays, {**case.options, "parametrisation": parametrisation}, dtype)
