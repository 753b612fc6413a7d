"""A small valid input for every operation of the table: canonical shapes by array name, and the
options each row carries as its `example` (the error-input tests start from it)."""

from __future__ import annotations

import numpy as np

from refsae.cases import Case
from refsae.checking.operation import Operation

BATCH, D_IN, D_SAE, K = 3, 4, 5, 2

SHAPES: dict[str, tuple[int, ...]] = {
    "x": (BATCH, D_IN),
    "x_hat": (BATCH, D_IN),
    "f": (BATCH, D_SAE),
    "W_enc": (D_IN, D_SAE),
    "b_enc": (D_SAE,),
    "W_dec": (D_SAE, D_IN),
    "b_dec": (D_IN,),
    "grad_W_dec": (D_SAE, D_IN),
    "fire_counts": (D_SAE,),
    "steps_since": (D_SAE,),
    "latents": (D_SAE,),
    "dead": (D_SAE,),
    "chosen": (D_SAE, D_IN),
    "directions": (D_SAE, D_IN),
    "z": (BATCH, D_SAE),
    "values": (BATCH, K),
    "indices": (BATCH, K),
    "theta": (D_SAE,),
    "threshold": (),
    "b_gate": (D_SAE,),
    "r_mag": (D_SAE,),
    "b_mag": (D_SAE,),
    "y": (BATCH, D_IN),
    "mu": (BATCH,),
    "sigma": (BATCH,),
    "W_skip": (D_IN, D_IN),
}
"""Shapes by array name; a dotted name (`grad.W_enc`) takes the shape of the part after the dot."""

N_INST = 2
PER_INSTANCE = ("batchtopk_update_threshold", "batchtopk_inference")
"""Rows whose canonical case has an instance axis: their threshold has no other axis to bind."""

MASKS = ("latents", "dead")
"""0/1 latent masks (integer arrays)."""


def canonical_case(op: Operation, seed: int = 0) -> Case:
    """Random float64 arrays of the canonical shapes (integer counts and masks, second moments >= 0),
    with the op's options."""
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    shapes = dict(SHAPES)
    if op.name in PER_INSTANCE:  # a per-instance array binds nothing but the instance axis
        shapes.update({"z": (BATCH, N_INST, D_SAE), "f": (BATCH, N_INST, D_SAE), "threshold": (N_INST,)})
    for name in op.arrays:
        base = name.split(".", 1)[-1]
        if name in ("fire_counts", "steps_since"):
            arrays[name] = rng.integers(0, 3, shapes[name])
        elif name == "threshold":
            arrays[name] = np.full(shapes[name], 0.5)
        elif name in ("theta", "sigma"):
            arrays[name] = np.abs(rng.standard_normal(shapes[name])) + 0.1
        elif name == "indices":
            arrays[name] = rng.integers(0, D_SAE, shapes[name])
        elif name in MASKS:
            arrays[name] = np.arange(D_SAE) % 2
        elif name == "f":
            arrays[name] = np.maximum(rng.standard_normal(shapes[name]), 0.0)
        elif name.startswith("exp_avg_sq."):
            arrays[name] = rng.standard_normal(shapes[base]) ** 2
        else:
            arrays[name] = rng.standard_normal(shapes[base])
    return Case(arrays, dict(op.example), "float64")
