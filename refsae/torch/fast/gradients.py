"""The dense ReLU loss and its gradients in one hand-written pass, in reused buffers (PERF-1, PERF-2).

The same derivation as `refsae.oracle.gradients` (GRAD-1..GRAD-6), written for speed:

- five matrix products, each a single BLAS call with its bias fused in (`addmm`): z = u W_enc + b_enc,
  x_hat = f Ŵ + b_dec, g_f = g_xhat Ŵᵀ + λ ∂S/∂f, ∂L/∂Ŵ = fᵀ g_xhat, ∂L/∂W_enc = uᵀ g_z;
- one (batch, d_sae) buffer and no other: z becomes f in place (ReLU); once fᵀ g_xhat and the column
  sums of f are taken, g_f is computed block by block of examples into a buffer of 1/CHUNKS the size
  and masked by ReLU's own backward kernel (`threshold_backward`, one pass) straight into f's rows,
  which then hold g_z (a boolean mask would be a second large tensor, and masking with one costs 7-10
  times as much on CPU, measured);
- the buffers live in a `Workspace` that a training loop keeps, so no step allocates (or page-faults
  in) a (batch, d_sae) tensor after the first.

Autograd would keep z, f, g_f and g_z alive at once, allocate each afresh, and take extra passes for
the bias broadcasts and the ReLU backward. The result is checked against the oracle like every other
refsae.torch function: the `loss_gradients` row's fast path (PERF-1), the `training_step` row (PERF-2).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from refsae._typecheck import typechecked
from refsae.conventions import (
    Conventions,
    check_coefficient,
)
from refsae.torch import _validate
from refsae.torch._shapes import DecoderWeights, EncoderWeights, InputBatch, InputVector, LatentVector, Scalar
from refsae.torch.constraints import row_scale
from refsae.torch.forward import decoder_directions
from refsae.torch.losses import reconstruction_denominator


class Workspace:
    """Named buffers reused from call to call; one is reallocated only when its shape, dtype or
    device changes (PERF-2). Keep one per model and pass it to every step."""

    def __init__(self) -> None:
        self._buffers: dict[str, Tensor] = {}

    def get(
        self, name: str, shape: tuple[int, ...], like: Tensor, dtype: torch.dtype | None = None
    ) -> Tensor:
        """An uninitialised buffer `name` of `shape` on `like`'s device, in `dtype` (default: like's)."""
        dtype = like.dtype if dtype is None else dtype
        t = self._buffers.get(name)
        if t is None or tuple(t.shape) != shape or t.dtype != dtype or t.device != like.device:
            self._buffers.pop(name, None)  # free the old one before allocating its successor
            t = torch.empty(shape, dtype=dtype, device=like.device)
            self._buffers[name] = t
        return t

    @property
    def nbytes(self) -> int:
        """Bytes held by the buffers."""
        return sum(t.numel() * t.element_size() for t in self._buffers.values())


@dataclass(frozen=True)
class Share:
    """This process's part of a loss over a larger batch split across processes (DIST-2): `batch`, the
    whole batch's size B, and `denominator`, the reconstruction's D of the whole batch (B, B·d_in, or the
    whole batch's total variance per instance). A fused core given a share computes its examples' terms
    of the whole batch's loss, R_r = Σ_{b∈r} ‖r_b‖² / D and λ S_r = λ Σ_{b∈r} Σ_j |f_bj| (·‖W_dec_j‖) / B,
    and their gradients: summed over the processes, they are the whole batch's (LOSS-6, GRAD-1)."""

    batch: int
    denominator: Tensor | float

    def instance(self, i: int) -> Share:
        """The share of instance `i` (its own total variance under fvu)."""
        d = self.denominator
        return Share(self.batch, d if isinstance(d, float) or d.dim() == 0 else d[i])


def _mm(a: Tensor, b: Tensor, out: Tensor | None = None) -> Tensor:
    return torch.mm(a, b, out=out) if a.dim() == 2 else torch.bmm(a, b, out=out)


def _addmm(bias: Tensor, a: Tensor, b: Tensor, out: Tensor) -> Tensor:
    """a b + bias (bias broadcast over the rows), into `out`."""
    if a.dim() == 2:
        return torch.addmm(bias, a, b, out=out)
    return torch.baddbmm(bias[..., None, :], a, b, out=out)


def row_norms(W: Tensor) -> Tensor:
    """‖W_j‖ per row, computed on the row divided by a power of two so that no square underflows
    (CON-4); shape (*inst, d_sae)."""
    s = row_scale(W)
    norms: Tensor = torch.linalg.vector_norm(W / s, dim=-1) * s[..., 0]
    return norms


@typechecked
def fused_loss_and_gradients(
    x: InputBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    W_dec: DecoderWeights,
    b_dec: InputVector,
    *,
    l1_coefficient: float,
    conventions: Conventions = Conventions(),
    workspace: Workspace | None = None,
    out: dict[str, Tensor] | None = None,
    share: Share | None = None,
) -> tuple[Scalar, dict[str, Tensor]]:
    """(total loss of LOSS-6, its gradients keyed W_enc, b_enc, W_dec, b_dec) by the hand-written
    backward of GRAD-1..GRAD-6, every convention, with or without the instance axis (PERF-1).

    `workspace` holds the (batch, d_sae) buffers between calls (a fresh one when None); `out` maps a
    parameter name to a tensor of the gradient's shape to write it into (e.g. the parameter's
    existing `.grad`). The inputs are never written to. No autograd graph is built. With `share`, x is
    one process's slice of a larger batch and the result is its part of that batch's loss (DIST-2)."""
    check_inputs(x, W_enc, b_enc, W_dec, b_dec, l1_coefficient)
    c = conventions
    ws = Workspace() if workspace is None else workspace
    out = {} if out is None else out
    with torch.no_grad():
        return relu_fused(
            x.detach(),
            W_enc.detach(),
            b_enc.detach(),
            W_dec.detach(),
            b_dec.detach(),
            l1_coefficient,
            c,
            ws,
            out,
            share=share,
        )


def check_inputs(x: Tensor, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor, lam: float) -> None:
    """The value checks of a fused entry point (shapes are its annotations', conventions are checked
    when a `Conventions` is made): λ >= 0 and finite (LOSS-7); one dtype and device, a non-empty batch,
    finite values (NOT-5..NOT-7)."""
    check_coefficient("l1_coefficient", lam)
    _validate.check(batch=x, x=x, W_enc=W_enc, b_enc=b_enc, W_dec=W_dec, b_dec=b_dec)


def target(out: dict[str, Tensor], name: str, like: Tensor) -> Tensor | None:
    t = out.get(name)
    if t is None:
        return None
    if t.shape != like.shape or t.dtype != like.dtype or t.device != like.device:
        raise ValueError(
            f"out[{name!r}] has shape {tuple(t.shape)}, {t.dtype} on {t.device}; the gradient is "
            f"{tuple(like.shape)}, {like.dtype} on {like.device}"
        )
    return t


def relu_fused(
    x: Tensor,
    W_enc: Tensor,
    b_enc: Tensor,
    W_dec: Tensor,
    b_dec: Tensor,
    lam: float,
    c: Conventions,
    ws: Workspace,
    out: dict[str, Tensor],
    y: Tensor | None = None,
    W_skip: Tensor | None = None,
    share: Share | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The loss and gradients of `fused_loss_and_gradients` (inputs detached, under `no_grad`); with
    `share`, this slice's part of the whole batch's (DIST-2).

    With a target `y` this is a ReLU transcoder (TC-2..TC-6): the reconstruction is of y, `c.encode`
    must be `untied` (x is never centred, TC-2), `W_skip` (when given) adds x W_skipᵀ to the decode,
    and its gradient g_ŷᵀ x is returned under `W_skip`."""
    batch, d_in, d_sae, d_out = x.shape[0], x.shape[-1], W_enc.shape[-1], W_dec.shape[-1]
    goal = x if y is None else y
    xt = x if x.dim() == 2 else x.transpose(0, 1)  # (*inst, batch, d_in): instances lead
    goal_t = goal if goal.dim() == 2 else goal.transpose(0, 1)
    rows = (*xt.shape[:-1],)
    W_hat = decoder_directions(W_dec, decoder=c.decoder, eps=c.eps)

    # forward: u, z = u W_enc + b_enc, f = ReLU(z) in place, x_hat = f Ŵ + b_dec, r = x_hat − x
    u = torch.sub(xt, b_dec[..., None, :], out=ws.get("u", (*rows, d_in), x)) if c.encode == "tied" else xt
    act = _addmm(b_enc, u, W_enc, out=ws.get("act", (*rows, d_sae), x))
    f = act.relu_()
    f_sum = f.sum(dim=-2)  # Σ_b f_bj (= Σ_b |f_bj|: f >= 0)
    r = _addmm(b_dec, f, W_hat, out=ws.get("r", (*rows, d_out), x))
    if W_skip is not None:  # the skip connection's x W_skipᵀ (TC-4)
        r.addmm_(xt, W_skip.mT) if r.dim() == 2 else r.baddbmm_(xt, W_skip.mT)
    r.sub_(goal_t)
    squared = torch.mul(r, r, out=ws.get("sq", (*rows, d_out), x)).sum(dim=(-2, -1))

    denominator = reconstruction_denominator(goal, c.reconstruction) if share is None else share.denominator
    batch = batch if share is None else share.batch  # the penalty's mean is over the whole batch
    penalty_per_latent: Tensor | float = lam / batch
    norms = None
    if c.sparsity == "l1_decoder_norm":
        norms = row_norms(W_dec)
        penalty_per_latent = norms * (lam / batch)
        sparsity = (f_sum * norms).sum(dim=-1) / batch
    else:
        sparsity = f_sum.sum(dim=-1) / batch
    loss = (squared / denominator + lam * sparsity).sum()

    # backward: g_xhat = c r (in place), ∂L/∂Ŵ = fᵀ g_xhat, g_f, masked in place into g_z
    g = r.mul_(2 / denominator if isinstance(denominator, float) else (2 / denominator)[..., None, None])
    G_hat = _mm(f.mT, g, out=target(out, "W_dec", W_dec) if c.decoder == "constrained" else None)
    grad_b_dec = torch.sum(g, dim=-2, out=target(out, "b_dec", b_dec))
    bias = torch.broadcast_to(
        torch.as_tensor(penalty_per_latent, dtype=x.dtype, device=x.device), b_enc.shape
    )
    g_z = _masked_latent_gradient(bias, g, W_hat, f, ws)
    grad_b_enc = torch.sum(g_z, dim=-2, out=target(out, "b_enc", b_enc))
    grad_W_enc = _mm(u.mT, g_z, out=target(out, "W_enc", W_enc))
    if c.encode == "tied":
        grad_b_dec.sub_(_mm(W_enc, grad_b_enc[..., None])[..., 0])  # − W_enc (Σ_b g_z) (GRAD-4)

    grad_W_dec = G_hat if c.decoder == "constrained" else normalisation_backward(W_dec, G_hat, c.eps)
    if norms is not None:
        grad_W_dec.add_(decoder_norm_gradient(W_dec, norms, f_sum, lam / batch))
    if c.decoder != "constrained" and "W_dec" in out:
        grad_W_dec = target(out, "W_dec", W_dec).copy_(grad_W_dec)  # type: ignore[union-attr]
    grads = {"W_enc": grad_W_enc, "b_enc": grad_b_enc, "W_dec": grad_W_dec, "b_dec": grad_b_dec}
    if W_skip is not None:
        grads["W_skip"] = _mm(g.mT, xt, out=target(out, "W_skip", W_skip))  # (TC-6)
    return loss, grads


CHUNKS = 8
"""g_f is computed in this many blocks of examples (one, with instances), each masked straight into
f's rows: the block buffer is 1/CHUNKS of a (batch, d_sae) tensor (PERF-2)."""


def _masked_latent_gradient(bias: Tensor, g: Tensor, W_hat: Tensor, f: Tensor, ws: Workspace) -> Tensor:
    """g_z = (g Ŵᵀ + bias) ⊙ 1[f > 0], written over f (which is not needed after this), block by block
    of examples; ReLU's own backward kernel does the masking in one pass (`threshold_backward`)."""
    batch = g.shape[-2]
    block = batch if g.dim() > 2 else -(-batch // CHUNKS)
    buffer = ws.get("grad", (*g.shape[:-2], block, f.shape[-1]), f)
    for start in range(0, batch, block):
        rows = slice(start, min(start + block, batch))
        n = rows.stop - start
        g_f = _addmm(bias, g[..., rows, :], W_hat.mT, out=buffer[..., :n, :])
        f_rows = f[..., rows, :]
        torch.ops.aten.threshold_backward.grad_input(g_f, f_rows, 0, grad_input=f_rows)  # (GRAD-3)
    return f


def decoder_norm_gradient(W_dec: Tensor, norms: Tensor, f_sum: Tensor, scale: float) -> Tensor:
    """The l1_decoder_norm penalty's W_dec gradient, scale · Σ_b f_bj W_j/‖W_j‖, 0 where ‖W_j‖ = 0
    (GRAD-6); `f_sum` is Σ_b f_bj, `scale` λ/B."""
    unit_scale = torch.where(norms > 0, f_sum * scale / torch.where(norms > 0, norms, 1), 0)
    return W_dec * unit_scale[..., None]


def normalisation_backward(W_dec: Tensor, G_hat: Tensor, eps: float) -> Tensor:
    """Ĝ_j/(n_j + eps) − W_j (W_j·Ĝ_j)/(n_j (n_j + eps)²), Ĝ_j/eps where n_j = 0 (GRAD-5)."""
    n = row_norms(W_dec)[..., None]
    radial = (W_dec * G_hat).sum(dim=-1, keepdim=True)
    safe = torch.where(n > 0, n, torch.ones_like(n))
    correction = torch.where(n > 0, W_dec * (radial / (safe * (n + eps) ** 2)), torch.zeros_like(W_dec))
    return G_hat / (n + eps) - correction


@typechecked
def fused_loss_gradients(
    x: InputBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    W_dec: DecoderWeights,
    b_dec: InputVector,
    *,
    l1_coefficient: float,
    conventions: Conventions = Conventions(),
) -> dict[str, Tensor]:
    """The gradients of `fused_loss_and_gradients`, keyed like `loss_gradients` (its fast path, PERF-1)."""
    return fused_loss_and_gradients(
        x, W_enc, b_enc, W_dec, b_dec, l1_coefficient=l1_coefficient, conventions=conventions
    )[1]
