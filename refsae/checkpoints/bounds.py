"""The allowed error of a library's forward pass on a checkpoint (CKPT-21), composed from the core
bounds of refsae.checking.bounds under the one tolerance rule (TOL-1): nothing here is tuned."""

from __future__ import annotations

import numpy as np

from refsae.checking import bounds
from refsae.checking.tolerances import Bound, add, leaf, mul
from refsae.checkpoints import function
from refsae.checkpoints.model import Checkpoint
from refsae.conventions import DEFAULT_EPS


def _scaled(ckpt: Checkpoint, x: np.ndarray) -> Bound:
    """The encoder's input: c·x (one rounding unless c = 1), then the row normalisation (CKPT-10):
    a norm (d_in products summed, a root) or a mean and a standard deviation (2·d_in terms summed, a
    root, an eps added), a quotient; the magnitude is that of the terms before any cancellation."""
    u = leaf(x) if ckpt.input_scale == 1.0 else leaf(x).then(np.abs(ckpt.input_scale * x), k_store=1)
    if ckpt.row_norm == "none":
        return u
    value = np.abs(ckpt.input_scale * x)
    if ckpt.row_norm == "constant_norm_rescale":
        m = value * np.sqrt(ckpt.d_in) / np.linalg.norm(value, axis=-1, keepdims=True)
        return u.then(m, k_acc=ckpt.d_in + 1, k_store=4)
    centred = ckpt.input_scale * x - (ckpt.input_scale * x).mean(axis=-1, keepdims=True)
    spread = centred.std(axis=-1, ddof=1, keepdims=True) + function.LAYER_NORM_EPS
    m = (value + np.abs(value.mean(axis=-1, keepdims=True))) / spread
    return u.then(m, k_acc=2 * ckpt.d_in + 2, k_store=7)


def pre_activations(ckpt: Checkpoint, x: np.ndarray) -> Bound:
    """z (for Gated both paths: the magnitude path's extra exp and product, GATE-1, counted)."""
    p, u = ckpt.params, _scaled(ckpt, x)
    b_enc = p["b_mag"] if ckpt.architecture == "gated" else p["b_enc"]
    W_enc = p["W_enc"] * np.exp(p["r_mag"]) if ckpt.architecture == "gated" else p["W_enc"]
    z = bounds.pre_activations(u.magnitude, np.abs(W_enc), b_enc, function.encoder_b_dec(ckpt), ckpt.encode)
    extra = 2 if ckpt.architecture == "gated" else 0
    return Bound(z.magnitude, z.k_acc + u.k_acc, z.k_store + u.k_store + extra)


def gate(ckpt: Checkpoint, x: np.ndarray) -> Bound:
    """π_gate of a Gated checkpoint (GATE-1)."""
    p, u = ckpt.params, _scaled(ckpt, x)
    z = bounds.pre_activations(
        u.magnitude, p["W_enc"], p["b_gate"], function.encoder_b_dec(ckpt), ckpt.encode
    )
    return Bound(z.magnitude, z.k_acc + u.k_acc, z.k_store + u.k_store)


def decode(ckpt: Checkpoint, f: Bound, x: np.ndarray | None = None) -> Bound:
    """x̂ from latents carrying bound f; given x, with the skip term and the row normalisation undone."""
    p = ckpt.params
    out = bounds.decode(f, p["W_dec"], p["b_dec"], ckpt.decoder, DEFAULT_EPS)
    if ckpt.kind == "skip_transcoder" and x is not None:
        u = _scaled(ckpt, x)
        skip = mul(u.magnitude @ np.abs(p["W_skip"]).T, u, leaf(p["W_skip"]), k_acc=ckpt.d_in, k_store=1)
        out = add(out.magnitude + skip.magnitude, out, skip, k_store=1)
    if x is not None and ckpt.row_norm != "none":  # the normalisation undone: a product (and a sum)
        u = _scaled(ckpt, x)
        scale = np.abs(ckpt.input_scale * x).sum(axis=-1, keepdims=True)  # >= the norm and the spread
        out = Bound(out.magnitude * scale + scale, out.k_acc + u.k_acc, out.k_store + u.k_store + 2)
    if ckpt.input_scale != 1.0:
        out = out.then(out.magnitude / ckpt.input_scale, k_store=1)
    return out


def forward(ckpt: Checkpoint, x: np.ndarray) -> Bound:
    """x̂ from x: the latents carry z's bound (every activation is exact or zero away from its kink)."""
    return decode(ckpt, pre_activations(ckpt, x), x)
