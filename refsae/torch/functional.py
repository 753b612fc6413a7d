"""The SAE operations in PyTorch, one function per oracle function, same names, same clauses.

Every function works on CPU and CUDA in float64, float32, bfloat16 and float16, with or without
the instance axis, with no Python loop over batch or latents. Each is proven against
`refsae.oracle` by the property tests that `refsae.ops` drives.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from refsae._typecheck import typechecked
from refsae.conventions import (
    DECODER,
    DEFAULT_EPS,
    ENCODE,
    RECONSTRUCTION,
    SPARSITY,
    Conventions,
    DecoderConvention,
    EncodeConvention,
    ReconstructionConvention,
    SparsityConvention,
    check_choice,
    check_coefficient,
    check_eps,
)
from refsae.torch import _validate


def _batch_and_dim_sum(a: Tensor) -> Tensor:
    return a.sum(dim=(0, -1))


@typechecked
def pre_activations(
    x: Float[Tensor, "batch *inst d_in"],
    W_enc: Float[Tensor, "*inst d_in d_sae"],
    b_enc: Float[Tensor, "*inst d_sae"],
    b_dec: Float[Tensor, "*inst d_in"],
    *,
    encode: EncodeConvention = "tied",
) -> Float[Tensor, "batch *inst d_sae"]:
    """z = (x − b_dec) W_enc + b_enc (tied, ENC-2) or x W_enc + b_enc (untied, ENC-3)."""
    check_choice("encode", encode, ENCODE)
    _validate.check(batch=x, x=x, W_enc=W_enc, b_enc=b_enc, b_dec=b_dec)
    u = x - b_dec if encode == "tied" else x
    return torch.einsum("b...i,...ij->b...j", u, W_enc) + b_enc


@typechecked
def encode(
    x: Float[Tensor, "batch *inst d_in"],
    W_enc: Float[Tensor, "*inst d_in d_sae"],
    b_enc: Float[Tensor, "*inst d_sae"],
    b_dec: Float[Tensor, "*inst d_in"],
    *,
    encode: EncodeConvention = "tied",
) -> Float[Tensor, "batch *inst d_sae"]:
    """f = ReLU(z) (ENC-1)."""
    f: Tensor = torch.relu(pre_activations(x, W_enc, b_enc, b_dec, encode=encode))
    return f


_encode = encode  # the keyword argument `encode` shadows the function inside `forward`


@typechecked
def decoder_directions(
    W_dec: Float[Tensor, "*inst d_sae d_in"],
    *,
    decoder: DecoderConvention = "constrained",
    eps: float = DEFAULT_EPS,
) -> Float[Tensor, "*inst d_sae d_in"]:
    """Ŵ = W_dec (constrained, DEC-2) or W_dec_j / (‖W_dec_j‖ + eps) (normalised, DEC-3)."""
    check_choice("decoder", decoder, DECODER)
    check_eps(eps)
    _validate.check(W_dec=W_dec)
    if decoder == "constrained":
        return W_dec
    W_hat: Tensor = W_dec / (torch.linalg.vector_norm(W_dec, dim=-1, keepdim=True) + eps)
    return W_hat


@typechecked
def decode(
    f: Float[Tensor, "batch *inst d_sae"],
    W_dec: Float[Tensor, "*inst d_sae d_in"],
    b_dec: Float[Tensor, "*inst d_in"],
    *,
    decoder: DecoderConvention = "constrained",
    eps: float = DEFAULT_EPS,
) -> Float[Tensor, "batch *inst d_in"]:
    """x_hat = f Ŵ + b_dec (DEC-1)."""
    _validate.check(batch=f, batch_name="f", f=f, W_dec=W_dec, b_dec=b_dec)
    W_hat = decoder_directions(W_dec, decoder=decoder, eps=eps)
    return torch.einsum("b...j,...ji->b...i", f, W_hat) + b_dec


@typechecked
def forward(
    x: Float[Tensor, "batch *inst d_in"],
    W_enc: Float[Tensor, "*inst d_in d_sae"],
    b_enc: Float[Tensor, "*inst d_sae"],
    W_dec: Float[Tensor, "*inst d_sae d_in"],
    b_dec: Float[Tensor, "*inst d_in"],
    *,
    encode: EncodeConvention = "tied",
    decoder: DecoderConvention = "constrained",
    eps: float = DEFAULT_EPS,
) -> tuple[Float[Tensor, "batch *inst d_sae"], Float[Tensor, "batch *inst d_in"]]:
    """(f, x_hat) (FWD-1)."""
    f = _encode(x, W_enc, b_enc, b_dec, encode=encode)
    return f, decode(f, W_dec, b_dec, decoder=decoder, eps=eps)


@typechecked
def total_variance(x: Float[Tensor, "batch *inst d_in"]) -> Float[Tensor, "*inst"]:
    """Σ_{b,d} (x − mean_b x)² (LOSS-3)."""
    _validate.check(batch=x, x=x)
    return _batch_and_dim_sum((x - x.mean(dim=0, keepdim=True)) ** 2)


@typechecked
def reconstruction_loss(
    x: Float[Tensor, "batch *inst d_in"],
    x_hat: Float[Tensor, "batch *inst d_in"],
    *,
    reconstruction: ReconstructionConvention = "sum",
) -> Float[Tensor, "*inst"]:
    """`sum` (LOSS-1), `mean` (LOSS-2) or `fvu` (LOSS-3) reconstruction loss."""
    check_choice("reconstruction", reconstruction, RECONSTRUCTION)
    _validate.check(batch=x, x=x, x_hat=x_hat)
    return _batch_and_dim_sum((x_hat - x) ** 2) / reconstruction_denominator(x, reconstruction)


def reconstruction_denominator(x: Tensor, reconstruction: str) -> Tensor | float:
    """D in the reconstruction loss Σ r² / D: B (sum, LOSS-1), B·d_in (mean, LOSS-2), the total
    variance per instance (fvu, LOSS-3, which is undefined where it is 0); g_xhat = (2/D) r (GRAD-2)."""
    batch, d_in = x.shape[0], x.shape[-1]
    if reconstruction == "sum":
        return float(batch)
    if reconstruction == "mean":
        return float(batch * d_in)
    variance = total_variance(x)
    if bool((variance == 0).any()):
        raise ValueError("fvu is undefined for a batch whose total variance is zero (e.g. batch of 1)")
    return variance


@typechecked
def sparsity_loss(
    f: Float[Tensor, "batch *inst d_sae"],
    W_dec: Float[Tensor, "*inst d_sae d_in"],
    *,
    sparsity: SparsityConvention = "l1",
) -> Float[Tensor, "*inst"]:
    """`l1` (LOSS-4) or `l1_decoder_norm` (LOSS-5) sparsity penalty."""
    check_choice("sparsity", sparsity, SPARSITY)
    _validate.check(batch=f, batch_name="f", f=f, W_dec=W_dec)
    magnitude = f.abs()
    if sparsity == "l1_decoder_norm":
        magnitude = magnitude * torch.linalg.vector_norm(W_dec, dim=-1)
    return _batch_and_dim_sum(magnitude) / f.shape[0]


@typechecked
def total_loss(
    x: Float[Tensor, "batch *inst d_in"],
    W_enc: Float[Tensor, "*inst d_in d_sae"],
    b_enc: Float[Tensor, "*inst d_sae"],
    W_dec: Float[Tensor, "*inst d_sae d_in"],
    b_dec: Float[Tensor, "*inst d_in"],
    *,
    l1_coefficient: float,
    conventions: Conventions = Conventions(),
) -> Float[Tensor, ""]:
    """Σ_instances [reconstruction + l1_coefficient · sparsity] (LOSS-6, LOSS-7)."""
    check_coefficient("l1_coefficient", l1_coefficient)
    c = conventions
    f, x_hat = forward(x, W_enc, b_enc, W_dec, b_dec, encode=c.encode, decoder=c.decoder, eps=c.eps)
    recon = reconstruction_loss(x, x_hat, reconstruction=c.reconstruction)
    return (recon + l1_coefficient * sparsity_loss(f, W_dec, sparsity=c.sparsity)).sum()


@typechecked
def loss_gradients(
    x: Float[Tensor, "batch *inst d_in"],
    W_enc: Float[Tensor, "*inst d_in d_sae"],
    b_enc: Float[Tensor, "*inst d_sae"],
    W_dec: Float[Tensor, "*inst d_sae d_in"],
    b_dec: Float[Tensor, "*inst d_in"],
    *,
    l1_coefficient: float,
    conventions: Conventions = Conventions(),
) -> dict[str, Tensor]:
    """Autograd gradients of `total_loss` keyed W_enc, b_enc, W_dec, b_dec (GRAD-1)."""
    params = {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": b_dec}
    return autograd_gradients(total_loss, x, params, l1_coefficient=l1_coefficient, conventions=conventions)


def autograd_gradients(
    loss_fn: Callable[..., Tensor], x: Tensor, params: dict[str, Tensor], **options: Any
) -> dict[str, Tensor]:
    """∂ loss_fn(x, **params, **options) / ∂params by autograd, on detached leaf copies (the inputs
    are left untouched), keyed like `params`: the one way every `*_loss_gradients` of refsae.torch
    differentiates its loss."""
    leaves = {name: p.detach().requires_grad_(True) for name, p in params.items()}
    with torch.enable_grad():
        loss = loss_fn(x.detach(), **leaves, **options)
        grads = torch.autograd.grad(loss, list(leaves.values()))
    return dict(zip(leaves, grads, strict=True))


def row_scale(v: Tensor) -> Tensor:
    """A power of two 2^(e−1) with max_i |v_i| < 2^e per row (last axis, kept), 1 for a zero row:
    dividing by it is exact and keeps the row's squares from underflowing (CON-4; torch's
    `vector_norm` does not rescale: the norm of a float32 row of 1e-23 comes out 0)."""
    m = v.abs().amax(dim=-1, keepdim=True)
    _, e = torch.frexp(m)
    scale = torch.pow(2.0, (e - 1).to(torch.float64)).to(v.dtype)
    return torch.where(m > 0, scale, torch.ones_like(scale))


@typechecked
def renormalise_rows(W_dec: Float[Tensor, "*inst d_sae d_in"]) -> Float[Tensor, "*inst d_sae d_in"]:
    """Rows divided by their norm (CON-1); zero rows stay zero (CON-2)."""
    _validate.check(W_dec=W_dec)
    w = W_dec / row_scale(W_dec)  # exact (CON-4)
    n = torch.linalg.vector_norm(w, dim=-1, keepdim=True)
    return torch.where(n > 0, w / torch.where(n > 0, n, torch.ones_like(n)), torch.zeros_like(W_dec))


@typechecked
def remove_parallel_component(
    W_dec: Float[Tensor, "*inst d_sae d_in"],
    grad_W_dec: Float[Tensor, "*inst d_sae d_in"],
) -> Float[Tensor, "*inst d_sae d_in"]:
    """g_j − (g_j·w_j / ‖w_j‖²) w_j (PAR-1, PAR-2); zero rows keep their gradient (PAR-3)."""
    _validate.check(W_dec=W_dec, grad_W_dec=grad_W_dec)
    w = W_dec / row_scale(W_dec)  # exact; the scale cancels (CON-4)
    sq = (w * w).sum(dim=-1, keepdim=True)
    dot = (grad_W_dec * w).sum(dim=-1, keepdim=True)
    coeff = torch.where(sq > 0, dot / torch.where(sq > 0, sq, torch.ones_like(sq)), torch.zeros_like(sq))
    return grad_W_dec - coeff * w


@typechecked
def l0(f: Float[Tensor, "batch *inst d_sae"]) -> Float[Tensor, "*inst"]:
    """Mean over the batch of the number of non-zero latents (MET-1), as float64 (a count is exact)."""
    _validate.check(batch=f, batch_name="f", f=f)
    return (f != 0).sum(dim=(0, -1)).to(torch.float64) / f.shape[0]


@typechecked
def dead_fraction(fire_counts: Int[Tensor, "*inst d_sae"]) -> Float[Tensor, "*inst"]:
    """Fraction of latents with fire count 0 (MET-2), as float64."""
    if fire_counts.shape[-1] == 0:
        raise ValueError("fire_counts has no latents (d_sae = 0)")
    if bool((fire_counts < 0).any()):
        raise ValueError("fire_counts must be >= 0")
    return (fire_counts == 0).to(torch.float64).mean(dim=-1)


@typechecked
def explained_variance(
    x: Float[Tensor, "batch *inst d_in"],
    x_hat: Float[Tensor, "batch *inst d_in"],
) -> Float[Tensor, "*inst"]:
    """1 − FVU with per-dimension centring (MET-3)."""
    return 1 - reconstruction_loss(x, x_hat, reconstruction="fvu")
