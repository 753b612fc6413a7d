"""TopK loss and gradients with a sparse decode and a sparse backward, in reused buffers (PERF-3).

Only the encoder is dense: every pre-activation is needed to choose the k largest, so z = u W_enc +
b_enc is one (batch, d_sae) product into a workspace buffer. Everything after it touches the
(batch, k) selection only, through `embedding_bag` and its backward (one kernel each, on CPU and
CUDA, every dtype; no (batch, k, d_in) gather is materialised):

    x_hat        = Σ_i f_bi Ŵ_{idx_bi} + b_dec          embedding_bag(idx, Ŵ, f)            (TOPK-4)
    g_f (sel.)   = g_xhat_b · Ŵ_{idx_bi} + λ ∂S/∂f       its per-sample-weight gradient
    ∂L/∂Ŵ        = Σ_{b,i} f_bi g_xhat_b at row idx_bi   its weight gradient
    ∂L/∂W_enc    = (Σ_{b,i} g_z,bi u_b at row idx_bi)ᵀ   the weight gradient of a second bag
    ∂L/∂b_enc    = Σ_{b,i} g_z,bi at idx_bi              index_add over batch · k entries

These are GRAD-1..GRAD-6 with 1[z > 0] replaced by `selected ∧ z > 0` (TOPK-5), i.e. the oracle's
`gradients_given_mask`. Instances, when present, are taken one at a time.
"""

from __future__ import annotations

import torch
from torch import Tensor

from refsae._typecheck import typechecked
from refsae.conventions import (
    Conventions,
)
from refsae.oracle.topk import check_k
from refsae.torch._shapes import DecoderWeights, EncoderWeights, InputBatch, InputVector, LatentVector, Scalar
from refsae.torch.fast.gradients import (
    Share,
    Workspace,
    check_inputs,
    decoder_norm_gradient,
    normalisation_backward,
    row_norms,
    target,
)
from refsae.torch.forward import decoder_directions
from refsae.torch.losses import reconstruction_denominator


class Bags:
    """`embedding_bag` in sum mode over bags of row indices, given in bag order: `indices[e]` belongs
    to bag `bag[e]` and `bag` is non-decreasing; a bag may be empty (its sum is 0).

    `forward(weight, per_sample)` is Σ_{e in bag} per_sample_e weight_{indices_e}, one row per bag;
    `per_sample_gradient(grad_out, weight)` is grad_out_{bag_e} · weight_{indices_e} per entry, and
    `weight_gradient(grad_out, per_sample)` scatters per_sample_e grad_out_{bag_e} into row
    indices_e: the two gradients of the forward."""

    def __init__(self, indices: Tensor, bag: Tensor, n_bags: int, num_weights: int) -> None:
        self.indices = indices.reshape(-1)
        self.offset2bag = bag.reshape(-1)
        self.bag_size = torch.bincount(self.offset2bag, minlength=n_bags)
        self.offsets = torch.cumsum(self.bag_size, 0) - self.bag_size
        self.num_weights = num_weights
        self.maximum = torch.empty(0, dtype=self.indices.dtype, device=indices.device)  # max mode only

    @classmethod
    def fixed(cls, indices: Tensor, num_weights: int) -> Bags:
        """One bag of k indices per row of `indices` (batch, k)."""
        batch, k = indices.shape
        bag = torch.arange(batch, device=indices.device).repeat_interleave(k)
        return cls(indices, bag, batch, num_weights)

    def forward(self, weight: Tensor, per_sample: Tensor) -> Tensor:
        """Σ_{e in bag} per_sample_e weight_{indices_e}: (n_bags, d)."""
        out, _, _, _ = torch.ops.aten._embedding_bag(
            weight, self.indices, self.offsets, False, 0, False, per_sample.reshape(-1), False, -1
        )
        return out  # type: ignore[no-any-return]

    def per_sample_gradient(self, grad_out: Tensor, weight: Tensor) -> Tensor:
        """grad_out_{bag_e} · weight_{indices_e}: one value per entry, flat."""
        return torch.ops.aten._embedding_bag_per_sample_weights_backward(  # type: ignore[no-any-return]
            grad_out, weight, self.indices, self.offsets, self.offset2bag, 0, -1
        )

    def weight_gradient(self, grad_out: Tensor, per_sample: Tensor) -> Tensor:
        """Σ_e per_sample_e grad_out_{bag_e} scattered into row indices_e: (num_weights, d). In float32
        for float16 and bfloat16 inputs (TOL-3: the kernel itself accumulates in the input's dtype)."""
        dtype = grad_out.dtype
        grad_out, per_sample = accumulating(grad_out), accumulating(per_sample)
        return torch.ops.aten._embedding_bag_dense_backward(  # type: ignore[no-any-return]
            grad_out,
            self.indices,
            self.offset2bag,
            self.bag_size,
            self.maximum,
            self.num_weights,
            False,
            0,
            per_sample.reshape(-1),
            -1,
        ).to(dtype)


HALF = (torch.float16, torch.bfloat16)


def accumulating(t: Tensor) -> Tensor:
    """`t` in its accumulation dtype (TOL-3): float32 for float16 and bfloat16, itself otherwise. Two
    kernels of the sparse paths accumulate in their input's dtype on CPU, `_embedding_bag_dense_backward`
    and `index_add_` (4096 terms of 1e-3 in float16 sum to 4.0, not 4.098; embedding_bag's forward and
    its per-sample-weight backward accumulate in float32): their half inputs are widened first."""
    return t.float() if t.dtype in HALF else t


def scatter_sum(like: Tensor, index: Tensor, values: Tensor) -> Tensor:
    """Σ of `values` into the rows `index` of zeros shaped like `like` (`index_add_`), accumulated in
    float32 for half dtypes (TOL-3), returned in `like`'s dtype."""
    total = torch.zeros(like.shape, dtype=accumulating(like).dtype, device=like.device)
    return total.index_add_(0, index, accumulating(values)).to(like.dtype)


def topk_instance(
    x: Tensor,
    W_enc: Tensor,
    b_enc: Tensor,
    W_dec: Tensor,
    b_dec: Tensor,
    k: int,
    lam: float,
    c: Conventions,
    ws: Workspace,
    out: dict[str, Tensor],
    y: Tensor | None = None,
    W_skip: Tensor | None = None,
    share: Share | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """One instance's loss and gradients (no instance axis; inputs detached, under `no_grad`); with
    `share`, this slice's part of the whole batch's (DIST-2).

    With a target `y` this is a TopK transcoder (TC-2..TC-6): the reconstruction is of y, `c.encode`
    must be `untied` (x is never centred, TC-2), `W_skip` (when given) adds x W_skipᵀ to the decode,
    and its gradient g_ŷᵀ x is returned under `W_skip`."""
    batch, d_in, d_sae = x.shape[0], x.shape[-1], W_enc.shape[-1]
    goal = x if y is None else y
    u = torch.sub(x, b_dec, out=ws.get("u", (batch, d_in), x)) if c.encode == "tied" else x
    z = torch.addmm(b_enc, u, W_enc, out=ws.get("act", (batch, d_sae), x))
    values, idx = torch.topk(z, k, dim=-1, sorted=False)  # any valid selection of ties (TOPK-2)
    active = values > 0
    f = values.clamp_min_(0)  # ReLU of the selected values (TOPK-3)
    W_hat = decoder_directions(W_dec, decoder=c.decoder, eps=c.eps)
    bags = Bags.fixed(idx, d_sae)
    r = bags.forward(W_hat, f).add_(b_dec)
    if W_skip is not None:
        r.addmm_(x, W_skip.mT)  # the skip connection's x W_skipᵀ (TC-4)
    r.sub_(goal)
    squared = (r * r).sum()

    norms = row_norms(W_dec) if c.sparsity == "l1_decoder_norm" else None
    per_entry = f if norms is None else f * norms[idx]
    denominator = reconstruction_denominator(goal, c.reconstruction) if share is None else share.denominator
    n = batch if share is None else share.batch  # the penalty's mean is over the whole batch
    loss = squared / denominator + lam * per_entry.sum() / n

    g = r.mul_(2 / denominator)
    G_hat = bags.weight_gradient(g, f)
    g_f = bags.per_sample_gradient(g, W_hat).reshape(batch, k)
    g_f.add_(lam / n if norms is None else norms[idx] * (lam / n))
    g_z = g_f.mul_(active)
    flat = idx.reshape(-1)
    grad_b_enc = scatter_sum(b_enc, flat, g_z.reshape(-1))
    enc_rows = bags.weight_gradient(u, g_z)  # (d_sae, d_in): rows of ∂L/∂W_encᵀ
    grad_W_enc = out["W_enc"].copy_(enc_rows.mT) if "W_enc" in out else enc_rows.mT.contiguous()
    grad_b_dec = g.sum(dim=0)
    if c.encode == "tied":
        grad_b_dec.sub_(W_enc @ grad_b_enc)
    grad_W_dec = G_hat if c.decoder == "constrained" else normalisation_backward(W_dec, G_hat, c.eps)
    if norms is not None:
        f_sum = scatter_sum(b_enc, flat, f.reshape(-1))  # Σ_b f_bj
        grad_W_dec.add_(decoder_norm_gradient(W_dec, norms, f_sum, lam / n))
    grads = {"W_enc": grad_W_enc, "b_enc": grad_b_enc, "W_dec": grad_W_dec, "b_dec": grad_b_dec}
    if W_skip is not None:
        grads["W_skip"] = g.mT @ x  # (TC-6)
    return loss, grads


@typechecked
def topk_fused_loss_and_gradients(
    x: InputBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    W_dec: DecoderWeights,
    b_dec: InputVector,
    *,
    k: int,
    l1_coefficient: float = 0.0,
    conventions: Conventions = Conventions(),
    workspace: Workspace | None = None,
    out: dict[str, Tensor] | None = None,
    share: Share | None = None,
) -> tuple[Scalar, dict[str, Tensor]]:
    """(TopK total loss of TOPK-6, its gradients keyed W_enc, b_enc, W_dec, b_dec) with the sparse
    backward above, every convention (PERF-3). No (batch, d_sae) tensor but the encoder's output, which
    lives in `workspace` between calls; no autograd graph is left behind. `out["W_enc"]`, when given
    (without instances), receives W_enc's gradient in place (the transposition writes into it). With
    `share`, x is one process's slice of a larger batch and the result is its part of that batch's loss
    (DIST-2)."""
    check_k(k, W_enc.shape[-1])
    check_inputs(x, W_enc, b_enc, W_dec, b_dec, l1_coefficient)
    c = conventions
    ws = Workspace() if workspace is None else workspace
    p = [t.detach() for t in (W_enc, b_enc, W_dec, b_dec)]
    with torch.no_grad():
        if x.dim() == 2:
            given = target(out or {}, "W_enc", W_enc)
            into = {} if given is None else {"W_enc": given}
            return topk_instance(
                x.detach(), p[0], p[1], p[2], p[3], k, l1_coefficient, c, ws, into, share=share
            )
        parts = [
            topk_instance(
                x[:, i].detach(),
                p[0][i],
                p[1][i],
                p[2][i],
                p[3][i],
                k,
                l1_coefficient,
                c,
                ws,
                {},
                share=None if share is None else share.instance(i),
            )
            for i in range(x.shape[1])
        ]
    loss = torch.stack([part[0] for part in parts]).sum()
    grads = {name: torch.stack([part[1][name] for part in parts]) for name in parts[0][1]}
    return loss, grads


@typechecked
def topk_fused_loss_gradients(
    x: InputBatch,
    W_enc: EncoderWeights,
    b_enc: LatentVector,
    W_dec: DecoderWeights,
    b_dec: InputVector,
    *,
    k: int,
    l1_coefficient: float = 0.0,
    conventions: Conventions = Conventions(),
) -> dict[str, Tensor]:
    """The gradients of `topk_fused_loss_and_gradients`: `topk_loss_gradients`' fast path (PERF-3)."""
    return topk_fused_loss_and_gradients(
        x, W_enc, b_enc, W_dec, b_dec, k=k, l1_coefficient=l1_coefficient, conventions=conventions
    )[1]
