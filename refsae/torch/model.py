"""`SAE`: an `nn.Module` over the functional operations, with a config dataclass.

The module holds W_enc (*inst, d_in, d_sae), b_enc, W_dec (*inst, d_sae, d_in) and b_dec, and adds
nothing to the math: every method calls the functional operations (`refsae.torch.forward`, `.losses`,
`.constraints`). The unit-norm constraint is applied by `constrain_()` *after* the optimizer step
(CON-3); parallel-gradient removal is either an explicit `remove_parallel_grad_()` call or a backward
hook on W_dec (PAR-4), never both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from refsae._typecheck import typechecked
from refsae.conventions import Conventions, check_coefficient
from refsae.oracle.topk import check_k
from refsae.torch._shapes import InputBatch, LatentBatch, Scalar
from refsae.torch.constraints import renormalise_rows
from refsae.torch.fast.constraints import parallel_removed, remove_parallel_component_, renormalise_rows_
from refsae.torch.fast.gradients import Workspace
from refsae.torch.forward import decode as decode_latents
from refsae.torch.forward import encode as relu_encode
from refsae.torch.forward import pre_activations
from refsae.torch.losses import total_loss
from refsae.torch.topk import topk, topk_total_loss

if TYPE_CHECKING:
    from refsae.torch.transcoder_model import TranscoderConfig

__all__ = ["SAE", "SAEConfig"]


@dataclass(frozen=True)
class SAEConfig:
    """Sizes, conventions and hyperparameters of an `SAE`.

    `parallel_grad_hook=True` registers a backward hook on W_dec that removes the component of
    its gradient parallel to each dictionary row (what sparse_autoencoder's UnitNormDecoder does).
    """

    d_in: int
    d_sae: int
    n_inst: int | None = None
    l1_coefficient: float = 1e-3
    conventions: Conventions = field(default_factory=Conventions)
    parallel_grad_hook: bool = False
    k: int | None = None
    """TopK activation with this k (TOPK-3) instead of ReLU; the loss then decodes sparsely (TOPK-6)."""
    dtype: torch.dtype = torch.float32
    device: str | torch.device = "cpu"

    def __post_init__(self) -> None:
        check_config(self, ("d_in", "d_sae"))


def check_config(config: SAEConfig | TranscoderConfig, sizes: tuple[str, ...]) -> None:
    """The checks a model config makes when it is made: its `sizes` and n_inst integers >= 1, λ (LOSS-7),
    k (TOPK-1)."""
    for name in sizes:
        value = getattr(config, name)
        if not (isinstance(value, int) and value >= 1):
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if config.n_inst is not None and not (isinstance(config.n_inst, int) and config.n_inst >= 1):
        raise ValueError(f"n_inst must be None or an integer >= 1, got {config.n_inst!r}")
    check_coefficient("l1_coefficient", config.l1_coefficient)
    if config.k is not None:
        check_k(config.k, config.d_sae)


class SAE(nn.Module):
    """A ReLU (or, with `config.k`, TopK) sparse autoencoder whose every computation is a
    `refsae.torch` function call."""

    def __init__(self, config: SAEConfig, *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.config = config
        inst = () if config.n_inst is None else (config.n_inst,)
        dtype, device = config.dtype, torch.device(config.device)
        W_dec = torch.randn(*inst, config.d_sae, config.d_in, generator=generator, dtype=torch.float64)
        W_dec = renormalise_rows(W_dec).to(device=device, dtype=dtype)
        self.W_dec = nn.Parameter(W_dec)
        self.W_enc = nn.Parameter(W_dec.transpose(-1, -2).clone())
        self.b_enc = nn.Parameter(torch.zeros((*inst, config.d_sae), dtype=dtype, device=device))
        self.b_dec = nn.Parameter(torch.zeros((*inst, config.d_in), dtype=dtype, device=device))
        self._hook = None
        self.workspace = Workspace()
        """Buffers of the fused backward, kept between training steps (PERF-2)."""
        if config.parallel_grad_hook:
            self._hook = self.W_dec.register_hook(self._parallel_hook)  # type: ignore[no-untyped-call]

    def _parallel_hook(self, grad: Tensor) -> Tensor:
        return parallel_removed(self.W_dec.detach(), grad)

    @typechecked
    def encode(self, x: InputBatch) -> LatentBatch:
        encode = self.config.conventions.encode
        if self.config.k is not None:
            z = pre_activations(x, self.W_enc, self.b_enc, self.b_dec, encode=encode)
            return topk(z, k=self.config.k)
        return relu_encode(x, self.W_enc, self.b_enc, self.b_dec, encode=encode)

    @typechecked
    def decode(self, f: LatentBatch) -> InputBatch:
        c = self.config.conventions
        return decode_latents(f, self.W_dec, self.b_dec, decoder=c.decoder, eps=c.eps)

    @typechecked
    def forward(self, x: InputBatch) -> tuple[LatentBatch, InputBatch]:
        f = self.encode(x)
        return f, self.decode(f)

    @typechecked
    def loss(self, x: InputBatch) -> Scalar:
        """The total loss of LOSS-6 (TOPK-6 for a TopK SAE) under the config's conventions."""
        if self.config.k is not None:
            return topk_total_loss(
                x,
                self.W_enc,
                self.b_enc,
                self.W_dec,
                self.b_dec,
                k=self.config.k,
                l1_coefficient=self.config.l1_coefficient,
                conventions=self.config.conventions,
            )
        return total_loss(
            x,
            self.W_enc,
            self.b_enc,
            self.W_dec,
            self.b_dec,
            l1_coefficient=self.config.l1_coefficient,
            conventions=self.config.conventions,
        )

    @torch.no_grad()
    def remove_parallel_grad_(self) -> None:
        """Remove, in place, the part of W_dec.grad parallel to each row (PAR-1). Refuses to run
        when the backward hook already did (PAR-4)."""
        if self._hook is not None:
            raise RuntimeError("the parallel-gradient hook is registered; removing twice is a no-op at best")
        if self.W_dec.grad is not None:
            remove_parallel_component_(self.W_dec, self.W_dec.grad)

    @torch.no_grad()
    def constrain_(self) -> None:
        """Renormalise the rows of W_dec in place (CON-1); call after `optimizer.step()` (CON-3)."""
        renormalise_rows_(self.W_dec)
