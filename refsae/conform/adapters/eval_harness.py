"""The stand-ins that let the suite call an evaluation loop on a case's arrays (specs/evaluation.md).

SAEBench's `get_sparsity_and_variance_metrics` (`sae_bench/evals/core/main.py`) and SAELens's
(`sae_lens/evals.py`) take an SAE, a TransformerLens model and an activation store: they draw token
batches from the store, run the model to the SAE's hook, `encode` and `decode`, and compute every
metric from the hook's activations `x`, the latents `f` and the reconstruction `x_hat`. The metrics
are functions of `(x, f, x_hat)` alone, so the suite hands the loop one batch of one prompt whose
hook activations are the case's `x`, and an SAE whose `encode` returns the case's `f` and whose
`decode` returns the case's `x_hat`. Nothing of the library is replaced: its own loop computes, masks,
flattens and aggregates (`n_batches = 1`, no ignored tokens).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

HOOK = "blocks.0.hook_resid_pre"
"""The hook the stand-in model exposes (TransformerLens's name; layer 0, no head axis)."""


@dataclass
class StandInConfig:
    """The SAE config fields the loops read (SAEBench reads them on `cfg`, SAELens on `cfg.metadata`)."""

    d_sae: int
    hook_name: str = HOOK
    hook_head_index: int | None = None
    hook_layer: int = 0

    @property
    def metadata(self) -> StandInConfig:
        return self


class StandInSAE:
    """An SAE whose `encode` is the case's latents and whose `decode` is the case's reconstruction,
    shaped as one prompt of `batch` tokens (the loops' `(prompts, ctx, d)`)."""

    def __init__(self, f: Tensor, x_hat: Tensor) -> None:
        self.f, self.x_hat = f, x_hat
        self.cfg = StandInConfig(d_sae=f.shape[-1])
        self.device = f.device

    def encode(self, x: Tensor) -> Tensor:
        return self.f[None]

    def decode(self, f: Tensor) -> Tensor:
        return self.x_hat[None]


class StandInModel:
    """`run_with_cache` returns the case's x as the hook's activations of one prompt."""

    def __init__(self, x: Tensor) -> None:
        self.x = x

    def run_with_cache(self, tokens: Tensor, **kwargs: Any) -> tuple[None, dict[str, Tensor]]:
        return None, {HOOK: self.x[None]}


class StandInStore:
    """`get_batch_tokens` returns one prompt of `batch` token ids (none of them ignored)."""

    def __init__(self, batch: int) -> None:
        self.batch = batch

    def get_batch_tokens(self, n_prompts: int) -> Tensor:
        return torch.zeros((1, self.batch), dtype=torch.long)


def stand_ins(
    x: Tensor | None = None, x_hat: Tensor | None = None, f: Tensor | None = None
) -> tuple[StandInSAE, StandInModel, StandInStore]:
    """The SAE, model and store of one batch; the arrays a row does not have are filled with ones
    (x, x_hat: one dimension; f: one latent), read by no metric the row asks for."""
    batch = next(t.shape[0] for t in (x, x_hat, f) if t is not None)
    like = next(t for t in (x, x_hat, f) if t is not None)
    ones = torch.ones((batch, 1), dtype=like.dtype, device=like.device)
    x = ones if x is None else x
    x_hat = ones if x_hat is None else x_hat
    f = ones if f is None else f
    return StandInSAE(f, x_hat), StandInModel(x), StandInStore(batch)


METRIC_FLAGS = ("compute_l2_norms", "compute_sparsity_metrics", "compute_variance_metrics")
"""The loops' switches of the scalar metrics; `compute_featurewise_density_statistics` is the other."""


def flags(metric: str) -> dict[str, bool]:
    """The switches that compute `metric` (and as little else as the loop allows)."""
    group = {
        "l2_ratio": "compute_l2_norms",
        "relative_reconstruction_bias": "compute_l2_norms",
        "l0": "compute_sparsity_metrics",
        "l1": "compute_sparsity_metrics",
    }.get(metric, "compute_variance_metrics")
    return {name: name == group for name in METRIC_FLAGS}


def scalar(value: float) -> Tensor:
    """A metric the loop returned as a Python float (`.item()`), as a 0-d float64 tensor."""
    return torch.tensor(float(value), dtype=torch.float64)
