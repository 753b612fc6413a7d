"""A small valid input for every operation of the table, by array name (used by the error tests)."""

from __future__ import annotations

from typing import Any

import numpy as np

from refsae.cases import Case
from refsae.conventions import Conventions
from refsae.ops import Operation

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
}
"""Shapes by array name; a dotted name (`grad.W_enc`) takes the shape of the part after the dot."""

N_INST = 2
PER_INSTANCE = ("batchtopk_update_threshold", "batchtopk_inference")
"""Rows whose canonical case has an instance axis: their threshold has no other axis to bind."""

MASKS = ("latents", "dead")
"""0/1 latent masks (integer arrays)."""

LOSS_OPTIONS: dict[str, Any] = {
    "l1_coefficient": 0.5,
    "conventions": Conventions(decoder="normalised", reconstruction="fvu", sparsity="l1_decoder_norm"),
}

AUXK_OPTIONS: dict[str, Any] = {
    "k_aux": K,
    "scale": "dead_fraction",
    "normalisation": "input_variance",
    "decoder": "normalised",
    "eps": 1e-3,
}

OPTIONS: dict[str, dict[str, Any]] = {
    "encode": {"encode": "tied"},
    "decoder_directions": {"decoder": "normalised", "eps": 1e-3},
    "decode": {"decoder": "normalised", "eps": 1e-3},
    "forward": {"encode": "tied", "decoder": "normalised", "eps": 1e-3},
    "reconstruction_loss": {"reconstruction": "fvu"},
    "sparsity_loss": {"sparsity": "l1_decoder_norm"},
    "total_loss": LOSS_OPTIONS,
    "loss_gradients": LOSS_OPTIONS,
    "dead_by_fire_fraction": {"n_examples": BATCH, "threshold": 0.25},
    "dead_by_steps": {"n": 1},
    "resampling_probabilities": {"loss": "total", "l1_coefficient": 0.5},
    "adam_step": {"step": 3, "lr": 1e-3},
    "training_step": {"step": 3, "lr": 1e-3, **LOSS_OPTIONS, "conventions": Conventions()},
    "resample_anthropic": {"centred": True},
    "topk": {"k": K},
    "decode_sparse": {"decoder": "normalised", "eps": 1e-3},
    "topk_total_loss": {**LOSS_OPTIONS, "k": K},
    "topk_loss_gradients": {**LOSS_OPTIONS, "k": K},
    "batchtopk": {"k": 1},
    "batchtopk_update_threshold": {"n_batches": 3, "update": "ema", "beta": 0.9},
    "batchtopk_total_loss": {**LOSS_OPTIONS, "k": 1},
    "batchtopk_loss_gradients": {**LOSS_OPTIONS, "k": 1},
    "jumprelu_total_loss": {
        "l0_coefficient": 0.5,
        "bandwidth": 0.5,
        "conventions": LOSS_OPTIONS["conventions"],
    },
    "jumprelu_loss_gradients": {
        "l0_coefficient": 0.5,
        "bandwidth": 0.5,
        "conventions": LOSS_OPTIONS["conventions"],
    },
    "gated_encode": {"encode": "tied"},
    "gated_total_loss": {**LOSS_OPTIONS, "aux_decoder": "detached"},
    "gated_loss_gradients": {**LOSS_OPTIONS, "aux_decoder": "attached"},
    "auxk_latents": {"k_aux": K, "values": "raw"},
    "auxk_loss": AUXK_OPTIONS,
    "auxk_loss_gradients": {**AUXK_OPTIONS, "residual": "attached", "aux_decode": "with_b_dec"},
}


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
        elif name == "theta":
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
    return Case(arrays, dict(OPTIONS.get(op.name, {})), "float64")
