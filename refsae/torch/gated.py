"""The Gated SAE in PyTorch (GATE-1..GATE-8): plain autograd; the auxiliary reconstruction decodes
through detached copies of the decoder (GATE-4), and the gate's step is a comparison, which passes
no gradient (GATE-5)."""

from __future__ import annotations

import torch
from torch import Tensor

from refsae._typecheck import typechecked
from refsae.conventions import Conventions, EncodeConvention, check_choice, check_coefficient
from refsae.oracle.gated import AUX_DECODER, AuxDecoder
from refsae.torch import _validate
from refsae.torch._shapes import (
    DecoderWeights,
    EncoderWeights,
    InputBatch,
    InputVector,
    LatentBatch,
    LatentVector,
    Scalar,
)
from refsae.torch.forward import decode
from refsae.torch.gradients import autograd_gradients
from refsae.torch.losses import reconstruction_loss, sparsity_loss

__all__ = ["gated_encode", "gated_loss_gradients", "gated_pre_activations", "gated_total_loss"]


@typechecked
def gated_pre_activations(
    x: InputBatch,
    W_enc: EncoderWeights,
    b_gate: LatentVector,
    r_mag: LatentVector,
    b_mag: LatentVector,
    b_dec: InputVector,
    *,
    encode: EncodeConvention = "tied",
) -> tuple[LatentBatch, LatentBatch]:
    """(π_gate, π_mag) = (u W + b_gate, exp(r_mag) ⊙ (u W) + b_mag), one product u W shared (GATE-1)."""
    check_choice("encode", encode, ("tied", "untied"))
    _validate.check(batch=x, x=x, W_enc=W_enc, b_gate=b_gate, r_mag=r_mag, b_mag=b_mag, b_dec=b_dec)
    u = x - b_dec if encode == "tied" else x
    uW = torch.einsum("b...i,...ij->b...j", u, W_enc)
    return uW + b_gate, torch.exp(r_mag) * uW + b_mag


def _latents(pi_gate: Tensor, pi_mag: Tensor) -> Tensor:
    """f = 1[π_gate > 0] · ReLU(π_mag): the mask is a constant to autograd (GATE-2, GATE-5)."""
    return (pi_gate > 0).to(pi_mag.dtype) * torch.relu(pi_mag)


@typechecked
def gated_encode(
    x: InputBatch,
    W_enc: EncoderWeights,
    b_gate: LatentVector,
    r_mag: LatentVector,
    b_mag: LatentVector,
    b_dec: InputVector,
    *,
    encode: EncodeConvention = "tied",
) -> tuple[LatentBatch, LatentBatch]:
    """(f, π_gate) (GATE-2)."""
    pi_gate, pi_mag = gated_pre_activations(x, W_enc, b_gate, r_mag, b_mag, b_dec, encode=encode)
    return _latents(pi_gate, pi_mag), pi_gate


@typechecked
def gated_total_loss(
    x: InputBatch,
    W_enc: EncoderWeights,
    b_gate: LatentVector,
    r_mag: LatentVector,
    b_mag: LatentVector,
    W_dec: DecoderWeights,
    b_dec: InputVector,
    *,
    l1_coefficient: float,
    conventions: Conventions = Conventions(),
    aux_decoder: AuxDecoder = "detached",
) -> Scalar:
    """Σ_inst [R(x, x_hat) + λ · S(ReLU(π_gate)) + R(x, x_aux)] (GATE-3, GATE-4)."""
    check_coefficient("l1_coefficient", l1_coefficient)
    check_choice("aux_decoder", aux_decoder, AUX_DECODER)
    c = conventions
    pi_gate, pi_mag = gated_pre_activations(x, W_enc, b_gate, r_mag, b_mag, b_dec, encode=c.encode)
    x_hat = decode(_latents(pi_gate, pi_mag), W_dec, b_dec, decoder=c.decoder, eps=c.eps)
    a = torch.relu(pi_gate)
    if aux_decoder == "detached":
        x_aux = decode(a, W_dec.detach(), b_dec.detach(), decoder=c.decoder, eps=c.eps)
    else:
        x_aux = decode(a, W_dec, b_dec, decoder=c.decoder, eps=c.eps)
    per_instance = (
        reconstruction_loss(x, x_hat, reconstruction=c.reconstruction)
        + l1_coefficient * sparsity_loss(a, W_dec, sparsity=c.sparsity)
        + reconstruction_loss(x, x_aux, reconstruction=c.reconstruction)
    )
    return per_instance.sum()


@typechecked
def gated_loss_gradients(
    x: InputBatch,
    W_enc: EncoderWeights,
    b_gate: LatentVector,
    r_mag: LatentVector,
    b_mag: LatentVector,
    W_dec: DecoderWeights,
    b_dec: InputVector,
    *,
    l1_coefficient: float,
    conventions: Conventions = Conventions(),
    aux_decoder: AuxDecoder = "detached",
) -> dict[str, Tensor]:
    """Autograd gradients of `gated_total_loss` keyed W_enc, b_gate, r_mag, b_mag, W_dec, b_dec
    (GATE-6)."""
    params = {
        "W_enc": W_enc,
        "b_gate": b_gate,
        "r_mag": r_mag,
        "b_mag": b_mag,
        "W_dec": W_dec,
        "b_dec": b_dec,
    }
    return autograd_gradients(
        gated_total_loss,
        x,
        params,
        l1_coefficient=l1_coefficient,
        conventions=conventions,
        aux_decoder=aux_decoder,
    )
