"""JumpReLU's tanh and pre-activation penalties in PyTorch (JUMP-9..JUMP-12; specs/jumprelu.md): the
twins of `refsae.oracle.jumprelu_penalties`, proven against it by the rows of
`refsae.checking.rows.jumprelu_penalties`. Plain autograd through `JumpReLUFunction` (JUMP-3's
pseudo-derivative of the threshold) and through ‖W_dec_j‖."""

from __future__ import annotations

import torch
from jaxtyping import Shaped
from torch import Tensor

from refsae._typecheck import typechecked
from refsae.conventions import Conventions, EncodeConvention, Ste, check_choice, check_coefficient
from refsae.oracle.jumprelu import PARAMETRISATIONS, STES, Parametrisation
from refsae.oracle.jumprelu_penalties import TANH_SCALE, check_tanh_scale
from refsae.torch import _validate
from refsae.torch._shapes import DecoderWeights, EncoderWeights, InputBatch, InputVector, LatentVector, Scalar
from refsae.torch.auxk import dead_mask
from refsae.torch.forward import pre_activations
from refsae.torch.gradients import autograd_gradients
from refsae.torch.jumprelu import JumpReLUFunction, check_threshold, loss_with_estimator

__all__ = [
    "jumprelu_pre_act_penalty",
    "jumprelu_pre_act_penalty_gradients",
    "jumprelu_tanh_loss_gradients",
    "jumprelu_tanh_total_loss",
]

DeadMask = Shaped[Tensor, "*inst d_sae"]


@typechecked
def jumprelu_tanh_total_loss(
    x: InputBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    W_dec: DecoderWeights,
    b_dec: InputVector,
    theta: LatentVector,
    *,
    l0_coefficient: float,
    bandwidth: float,
    tanh_scale: float = TANH_SCALE,
    conventions: Conventions = Conventions(),
) -> Scalar:
    """Σ_inst reconstruction + λ (1/B) Σ_b Σ_j tanh(c f_bj ‖W_dec_j‖) (JUMP-9)."""
    return _tanh_loss(
        x, W_enc, b_enc, W_dec, b_dec, theta, l0_coefficient, bandwidth, tanh_scale, conventions, False
    )


def _tanh_loss(
    x: Tensor,
    W_enc: Tensor,
    b_enc: Tensor,
    W_dec: Tensor,
    b_dec: Tensor,
    theta: Tensor,
    l0_coefficient: float,
    bandwidth: float,
    tanh_scale: float,
    conventions: Conventions,
    also_input: bool,
) -> Tensor:
    check_coefficient("l0_coefficient", l0_coefficient)
    check_tanh_scale(tanh_scale)
    check_threshold(theta, bandwidth)
    c = conventions
    reconstruction = loss_with_estimator(
        x, W_enc, b_enc, W_dec, b_dec, theta, 0.0, bandwidth, c, also_input=also_input
    )
    z = pre_activations(x, W_enc, b_enc, b_dec, encode=c.encode)
    f: Tensor = JumpReLUFunction.apply(z, theta, bandwidth, also_input)  # type: ignore[no-untyped-call]
    s = torch.linalg.vector_norm(W_dec, dim=-1)
    penalty = torch.tanh(tanh_scale * f * s).sum(dim=(0, -1)) / x.shape[0]
    loss: Tensor = reconstruction + l0_coefficient * penalty.sum()
    return loss


@typechecked
def jumprelu_tanh_loss_gradients(
    x: InputBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    W_dec: DecoderWeights,
    b_dec: InputVector,
    theta: LatentVector,
    *,
    l0_coefficient: float,
    bandwidth: float,
    tanh_scale: float = TANH_SCALE,
    conventions: Conventions = Conventions(),
    parametrisation: Parametrisation = "theta",
    ste: Ste = "threshold_only",
) -> dict[str, Tensor]:
    """Autograd through `jumprelu_tanh_total_loss` (JUMP-10; JUMP-15 under `ste="also_input"`);
    `threshold` as JUMP-5."""
    check_choice("parametrisation", parametrisation, PARAMETRISATIONS)
    check_choice("ste", ste, STES)
    params = {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": b_dec, "theta": theta}

    def loss(x: Tensor, **p: Tensor) -> Tensor:
        return _tanh_loss(
            x,
            p["W_enc"],
            p["b_enc"],
            p["W_dec"],
            p["b_dec"],
            p["theta"],
            l0_coefficient,
            bandwidth,
            tanh_scale,
            conventions,
            ste == "also_input",
        )

    out = autograd_gradients(loss, x, params)
    grad_theta = out.pop("theta")
    out["threshold"] = theta.detach() * grad_theta if parametrisation == "log_theta" else grad_theta
    return out


@typechecked
def jumprelu_pre_act_penalty(
    x: InputBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    W_dec: DecoderWeights,
    b_dec: InputVector,
    theta: LatentVector,
    dead: DeadMask,
    *,
    pre_act_coefficient: float,
    encode: EncodeConvention = "tied",
) -> Scalar:
    """Σ_inst λ_p (1/B) Σ_b Σ_j d_j relu(θ_j − z_bj) ‖W_dec_j‖ (JUMP-11)."""
    check_coefficient("pre_act_coefficient", pre_act_coefficient)
    _validate.check(batch=x, x=x, W_enc=W_enc, b_enc=b_enc, W_dec=W_dec, b_dec=b_dec, theta=theta)
    check_threshold(theta)
    mask = dead_mask(dead).to(x.dtype)
    z = pre_activations(x, W_enc, b_enc, b_dec, encode=encode)
    s = torch.linalg.vector_norm(W_dec, dim=-1)
    terms = mask * torch.relu(theta - z) * s
    loss: Tensor = pre_act_coefficient * terms.sum(dim=(0, -1)).sum() / x.shape[0]
    return loss


@typechecked
def jumprelu_pre_act_penalty_gradients(
    x: InputBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    W_dec: DecoderWeights,
    b_dec: InputVector,
    theta: LatentVector,
    dead: DeadMask,
    *,
    pre_act_coefficient: float,
    encode: EncodeConvention = "tied",
    parametrisation: Parametrisation = "theta",
) -> dict[str, Tensor]:
    """Autograd through `jumprelu_pre_act_penalty` (JUMP-12); `threshold` as JUMP-5."""
    check_choice("parametrisation", parametrisation, PARAMETRISATIONS)
    params = {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "theta": theta}
    if encode == "tied":  # untied, the penalty does not read b_dec: its gradient is 0
        params["b_dec"] = b_dec

    def penalty(x: Tensor, **p: Tensor) -> Tensor:
        return jumprelu_pre_act_penalty(
            x,
            p["W_enc"],
            p["b_enc"],
            p["W_dec"],
            p.get("b_dec", b_dec),
            p["theta"],
            dead,
            pre_act_coefficient=pre_act_coefficient,
            encode=encode,
        )

    out = autograd_gradients(penalty, x, params)
    out.setdefault("b_dec", torch.zeros_like(b_dec))
    grad_theta = out.pop("theta")
    out["threshold"] = theta.detach() * grad_theta if parametrisation == "log_theta" else grad_theta
    return out
