"""`Transcoder`: an `nn.Module` over the transcoder operations (TC-1..TC-7), with a config dataclass.

The module holds W_enc (*inst, d_in, d_sae), b_enc, W_dec (*inst, d_sae, d_out), b_dec (*inst, d_out)
and, with `skip=True`, W_skip (*inst, d_out, d_in). Like `SAE` it adds nothing to the math: `forward`
and `loss` call `refsae.torch.transcoder`, and `refsae.torch.transcoder_train_step_` is its step.

Initialisation (not a clause: libraries differ and a trained model does not remember it): W_dec's
rows are unit random directions; W_enc is W_decᵀ when d_out = d_in and otherwise has unit random
columns; b_enc, b_dec and W_skip start at zero (SAELens's `SkipTranscoder` and sparsify's
`SparseCoder` both start the skip at zero).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from refsae._typecheck import typechecked
from refsae.conventions import (
    DECODER,
    DEFAULT_EPS,
    RECONSTRUCTION,
    SPARSITY,
    DecoderConvention,
    ReconstructionConvention,
    SparsityConvention,
    check_choice,
    check_eps,
)
from refsae.torch._shapes import InputBatch, LatentBatch, Scalar, TargetBatch
from refsae.torch.constraints import renormalise_rows
from refsae.torch.fast.constraints import renormalise_rows_
from refsae.torch.fast.gradients import Workspace
from refsae.torch.model import check_config
from refsae.torch.topk import topk
from refsae.torch.transcoder import (
    topk_transcoder_total_loss,
    transcoder_decode,
    transcoder_forward,
    transcoder_total_loss,
)

__all__ = ["Transcoder", "TranscoderConfig"]


@dataclass(frozen=True)
class TranscoderConfig:
    """Sizes, conventions and hyperparameters of a `Transcoder`: ReLU latents, or TopK with `k`."""

    d_in: int
    d_out: int
    d_sae: int
    n_inst: int | None = None
    skip: bool = True
    k: int | None = None
    l1_coefficient: float = 0.0
    reconstruction: ReconstructionConvention = "sum"
    sparsity: SparsityConvention = "l1"
    decoder: DecoderConvention = "constrained"
    eps: float = DEFAULT_EPS
    dtype: torch.dtype = torch.float32
    device: str | torch.device = "cpu"

    def __post_init__(self) -> None:
        check_config(self, ("d_in", "d_out", "d_sae"))
        check_choice("reconstruction", self.reconstruction, RECONSTRUCTION)
        check_choice("sparsity", self.sparsity, SPARSITY)
        check_choice("decoder", self.decoder, DECODER)
        check_eps(self.eps)


def _unit_rows(*shape: int, generator: torch.Generator | None) -> Tensor:
    return renormalise_rows(torch.randn(*shape, generator=generator, dtype=torch.float64))


class Transcoder(nn.Module):
    """A (skip-)transcoder: f = act(x W_enc + b_enc), ŷ = f Ŵ + b_dec (+ x W_skipᵀ), trained to
    reconstruct a target y (TC-1..TC-5)."""

    def __init__(self, config: TranscoderConfig, *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.config = c = config
        inst = () if c.n_inst is None else (c.n_inst,)
        dtype, device = c.dtype, torch.device(c.device)
        W_dec = _unit_rows(*inst, c.d_sae, c.d_out, generator=generator)
        W_enc = W_dec if c.d_out == c.d_in else _unit_rows(*inst, c.d_sae, c.d_in, generator=generator)
        self.W_enc = nn.Parameter(W_enc.transpose(-1, -2).to(dtype=dtype, device=device).contiguous())
        self.b_enc = nn.Parameter(torch.zeros(*inst, c.d_sae, dtype=dtype, device=device))
        self.W_dec = nn.Parameter(W_dec.to(dtype=dtype, device=device))
        self.b_dec = nn.Parameter(torch.zeros(*inst, c.d_out, dtype=dtype, device=device))
        skip = torch.zeros(*inst, c.d_out, c.d_in, dtype=dtype, device=device) if c.skip else None
        self.W_skip = None if skip is None else nn.Parameter(skip)
        self.workspace = Workspace()
        """Buffers of the fused backward, kept between training steps (PERF-2)."""

    def skip_weights(self) -> Tensor:
        """W_skip, or zeros of its shape without a skip connection (the same function, TC-4)."""
        if self.W_skip is not None:
            return self.W_skip
        c = self.config
        inst = () if c.n_inst is None else (c.n_inst,)
        return torch.zeros(*inst, c.d_out, c.d_in, dtype=self.W_dec.dtype, device=self.W_dec.device)

    @typechecked
    def forward(self, x: InputBatch) -> tuple[LatentBatch, TargetBatch]:
        """(f, ŷ): ReLU latents (TC-3) or, with `k`, TopK ones decoded with the skip term (TC-4)."""
        c = self.config
        if c.k is None:
            return transcoder_forward(
                x,
                self.W_enc,
                self.b_enc,
                self.W_dec,
                self.b_dec,
                self.skip_weights(),
                decoder=c.decoder,
                eps=c.eps,
            )
        z = torch.einsum("b...i,...ij->b...j", x, self.W_enc) + self.b_enc
        f = topk(z, k=c.k)
        return f, transcoder_decode(
            f, x, self.W_dec, self.b_dec, self.skip_weights(), decoder=c.decoder, eps=c.eps
        )

    @typechecked
    def loss(self, x: InputBatch, y: TargetBatch) -> Scalar:
        """R(y, ŷ) + λ S(f) under the config's conventions (TC-5); differentiable."""
        c = self.config
        args = (x, y, self.W_enc, self.b_enc, self.W_dec, self.b_dec, self.skip_weights())
        options: dict[str, Any] = {"l1_coefficient": c.l1_coefficient, "reconstruction": c.reconstruction}
        options |= {"sparsity": c.sparsity, "decoder": c.decoder, "eps": c.eps}
        if c.k is None:
            return transcoder_total_loss(*args, **options)
        return topk_transcoder_total_loss(*args, k=c.k, **options)

    @torch.no_grad()
    def constrain_(self) -> None:
        """Renormalise the rows of W_dec in place (CON-1); call after `optimizer.step()` (CON-3)."""
        renormalise_rows_(self.W_dec)
