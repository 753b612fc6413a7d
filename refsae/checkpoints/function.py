"""The function a checkpoint defines, computed by the oracle in float64 (CKPT-3).

    u = c·x − b_dec (tied) or c·x (untied)      z = u W_enc + b_enc       f = act(z)
    x̂ = (f Ŵ_dec + b_dec [+ c·x W_skipᵀ]) / c

with act chosen by the architecture: ReLU (ENC-1), TopK_k (TOPK-3), BatchTopK at inference, a
JumpReLU with one threshold for every latent (BTOPK-6), JumpReLU (JUMP-1), Gated (GATE-2); Ŵ_dec by
the decoder convention (DEC-2, DEC-3); c the stored input scale (1 unless the format stores one).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from refsae import oracle
from refsae.checkpoints.errors import CheckpointError
from refsae.checkpoints.model import Checkpoint


@dataclass(frozen=True)
class Forward:
    """The oracle's forward pass of a checkpoint on a batch: pre-activations, latents, output, L0."""

    z: np.ndarray
    f: np.ndarray
    x_hat: np.ndarray

    @property
    def l0(self) -> np.ndarray:
        """Active latents per row (MET-1)."""
        return np.asarray((self.f != 0).sum(axis=-1))


def check_inputs(ckpt: Checkpoint, x: np.ndarray, what: str = "inputs") -> np.ndarray:
    """x as a float64 (batch, d_in) array, or an error naming the mismatch."""
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != ckpt.d_in:
        raise CheckpointError(
            what, "", f"inputs of shape (batch, d_in = {ckpt.d_in}) expected, got {x.shape}"
        )
    if x.shape[0] == 0:
        raise CheckpointError(what, "", "the batch is empty")
    if x.dtype.kind != "f":
        raise CheckpointError(what, "", f"floating inputs expected, got dtype {x.dtype}")
    x = x.astype(np.float64)
    if not np.isfinite(x).all():
        raise CheckpointError(what, "", "inputs contain NaN or inf")
    return x


LAYER_NORM_EPS = 1e-5
"""SAELens's `layer_norm` input normalisation adds this to the standard deviation (CKPT-10)."""


def row_norm_in(ckpt: Checkpoint, x: np.ndarray) -> np.ndarray:
    """The encoder's input: c·x, then the row normalisation of CKPT-10."""
    x = ckpt.input_scale * x
    if ckpt.row_norm == "constant_norm_rescale":
        return np.asarray(x * np.sqrt(ckpt.d_in) / np.linalg.norm(x, axis=-1, keepdims=True))
    if ckpt.row_norm == "layer_norm":
        centred = x - x.mean(axis=-1, keepdims=True)
        return np.asarray(centred / (centred.std(axis=-1, ddof=1, keepdims=True) + LAYER_NORM_EPS))
    return x


def row_norm_out(ckpt: Checkpoint, x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """The output in x's units: the row normalisation undone (CKPT-10), then / c."""
    u = ckpt.input_scale * x
    if ckpt.row_norm == "constant_norm_rescale":
        out = out * np.linalg.norm(u, axis=-1, keepdims=True) / np.sqrt(ckpt.d_in)
    elif ckpt.row_norm == "layer_norm":
        mu = u.mean(axis=-1, keepdims=True)
        out = out * (u - mu).std(axis=-1, ddof=1, keepdims=True) + mu
    return np.asarray(out / ckpt.input_scale)


def encoder_b_dec(ckpt: Checkpoint) -> np.ndarray:
    """The b_dec subtracted from the input: b_dec when tied (d_out = d_in), else unused zeros (d_in)."""
    return ckpt.params["b_dec"] if ckpt.encode == "tied" else np.zeros(ckpt.d_in)


def pre_activations(ckpt: Checkpoint, x: np.ndarray) -> np.ndarray:
    """z of CKPT-3 (for Gated: the magnitude path's π_mag)."""
    p, u = ckpt.params, row_norm_in(ckpt, x)
    if ckpt.architecture == "gated":
        _, pi_mag = oracle.gated_pre_activations(
            u, p["W_enc"], p["b_gate"], p["r_mag"], p["b_mag"], encoder_b_dec(ckpt), encode=ckpt.encode
        )
        return pi_mag
    return oracle.pre_activations(u, p["W_enc"], p["b_enc"], encoder_b_dec(ckpt), encode=ckpt.encode)


def encode(ckpt: Checkpoint, x: np.ndarray) -> np.ndarray:
    """f of CKPT-3."""
    p, a = ckpt.params, ckpt.architecture
    if a == "gated":
        f, _ = oracle.gated_encode(
            row_norm_in(ckpt, x),
            p["W_enc"],
            p["b_gate"],
            p["r_mag"],
            p["b_mag"],
            encoder_b_dec(ckpt),
            encode=ckpt.encode,
        )
        return f
    z = pre_activations(ckpt, x)
    if a == "relu":
        return np.asarray(np.maximum(z, 0.0))
    if a == "topk":
        assert ckpt.k is not None
        return oracle.topk(z, k=ckpt.k)
    if a == "batchtopk":
        return oracle.batchtopk_inference(z, p["threshold"])
    return oracle.jumprelu(z, p["threshold"])


def decode(ckpt: Checkpoint, f: np.ndarray, x: np.ndarray | None = None, *, skip: bool = True) -> np.ndarray:
    """x̂ of CKPT-3 from latents f and the input x; without x the decoder alone, (f Ŵ_dec + b_dec) / c.
    `skip=False` leaves out the skip term: a library's `decode` right after its `encode` of x (CKPT-20)."""
    p = ckpt.params
    out = oracle.decode(f, p["W_dec"], p["b_dec"], decoder=ckpt.decoder)
    if x is None:  # the decoder alone (CKPT-3): no skip term, no row normalisation to undo
        return np.asarray(out / ckpt.input_scale)
    if ckpt.kind == "skip_transcoder" and skip:
        out = out + row_norm_in(ckpt, x) @ p["W_skip"].T
    return row_norm_out(ckpt, x, out)


def forward(ckpt: Checkpoint, x: np.ndarray) -> Forward:
    """The whole forward pass of CKPT-3 on x (batch, d_in)."""
    x = check_inputs(ckpt, x)
    z = pre_activations(ckpt, x)
    f = encode(ckpt, x)
    return Forward(z=z, f=f, x_hat=decode(ckpt, f, x))
