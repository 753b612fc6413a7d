"""Transcoder training-step benchmark (PERF-8): refsae's fused step beside its autograd formulation,
the dense matrix products it cannot avoid (the floor) and sparsify's own step.

Skip-transcoders (ŷ = act(x W_enc + b_enc) Ŵ + b_dec + x W_skipᵀ) reconstructing y from x, d_out =
d_in, the `fvu` reconstruction (sparsify's loss) and no sparsity term, one Adam step
(`torch.optim.Adam(fused=True)` for every implementation) with the parallel-gradient removal and the
unit-norm constraint. For each configuration the implementations' repetitions are interleaved after
warming each up (benchmarks/interleaved.py):

- `floor`: the dense products alone, into preallocated outputs: for TopK the encoder's x W_enc and
  the skip's x W_skipᵀ, g_ŷᵀ x; for ReLU those and PERF-1's four other products;
- `refsae`: `refsae.torch.transcoder_train_step_` (PERF-8: PERF-3's sparse backward for TopK, PERF-1's
  dense one for ReLU, in the model's workspace);
- `refsae_autograd`: the same step with `backward="autograd"` (`topk_transcoder_total_loss` /
  `transcoder_total_loss` differentiated by autograd, a dense decode);
- `sparsify` (TopK only): sparsify's `SparseCoder(transcode=True, skip_connection=True)`,
  `forward(x, y).fvu.backward()`, its `remove_gradient_parallel_to_decoder_directions`, Adam and its
  `set_decoder_norm_to_unit_norm`: the step of its `Trainer` (skipped with the reason when sparsify is
  not importable; `nox -s bench_transcoder` installs it with conformance/sparsify/'s pins).
  Its `FusedEncoder` backward omits the ReLU mask (specs/conformance.md): a cheaper, wrong gradient
  where a selected pre-activation is negative.

    python benchmarks/bench_transcoder.py [--device cpu|cuda] [--config NAME ...] [--out FILE]
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("REFSAE_CHECKS", "0")

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from interleaved import Builder, Unsupported, main

LR = 1e-4


@dataclass(frozen=True)
class Config:
    name: str
    batch: int
    d_in: int
    d_sae: int
    k: int | None


CONFIGS = {
    c.name: c
    for c in (
        Config("tc_topk32_4096x768x16384", 4096, 768, 16384, 32),
        Config("tc_topk32_1024x512x8192", 1024, 512, 8192, 32),
        Config("tc_relu_2048x512x4096", 2048, 512, 4096, None),
        Config("tiny", 64, 16, 128, 4),
    )
}
DEFAULT_CONFIGS = ("tc_topk32_1024x512x8192", "tc_topk32_4096x768x16384", "tc_relu_2048x512x4096")


def _xy(cfg: Config, dtype: torch.dtype, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(cfg.batch, cfg.d_in, generator=g)
    y = torch.randn(cfg.batch, cfg.d_in, generator=g)
    return x.to(device=device, dtype=dtype), y.to(device=device, dtype=dtype)


def build_floor(cfg: Config, dtype: torch.dtype, device: str) -> Callable[[], Any]:
    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, dtype=dtype, device=device)

    x, g = randn(cfg.batch, cfg.d_in), randn(cfg.batch, cfg.d_in)
    W_enc, W_dec, W_skip = randn(cfg.d_in, cfg.d_sae), randn(cfg.d_sae, cfg.d_in), randn(cfg.d_in, cfg.d_in)
    act, out_y, out_skip = randn(cfg.batch, cfg.d_sae), torch.empty_like(x), torch.empty_like(W_skip)
    out_W_dec, out_W_enc = torch.empty_like(W_dec), torch.empty_like(W_enc)

    def step() -> None:
        torch.mm(x, W_enc, out=act)
        torch.mm(x, W_skip.T, out=out_y)
        torch.mm(g.T, x, out=out_skip)
        if cfg.k is None:
            torch.mm(act, W_dec, out=out_y)
            torch.mm(g, W_dec.T, out=act)
            torch.mm(act.T, g, out=out_W_dec)
            torch.mm(x.T, act, out=out_W_enc)

    return step


def _refsae(cfg: Config, dtype: torch.dtype, device: str, backward: str) -> Callable[[], Any]:
    from refsae.torch import Transcoder, TranscoderConfig, transcoder_train_step_

    config = TranscoderConfig(
        cfg.d_in, cfg.d_in, cfg.d_sae, k=cfg.k, reconstruction="fvu", dtype=dtype, device=device
    )
    tc = Transcoder(config, generator=torch.Generator().manual_seed(0))
    opt = torch.optim.Adam(tc.parameters(), lr=LR, fused=True)
    x, y = _xy(cfg, dtype, device)
    return lambda: transcoder_train_step_(tc, opt, x, y, backward=backward)


def build_refsae(cfg: Config, dtype: torch.dtype, device: str) -> Callable[[], Any]:
    return _refsae(cfg, dtype, device, "fused")


def build_refsae_autograd(cfg: Config, dtype: torch.dtype, device: str) -> Callable[[], Any]:
    return _refsae(cfg, dtype, device, "autograd")


def build_sparsify(cfg: Config, dtype: torch.dtype, device: str) -> Callable[[], Any]:
    if cfg.k is None:
        raise Unsupported("sparsify's SparseCoder is TopK only")
    import sparsify

    config = sparsify.SparseCoderConfig(num_latents=cfg.d_sae, k=cfg.k, transcode=True, skip_connection=True)
    coder = sparsify.SparseCoder(cfg.d_in, config, device=device, dtype=dtype)
    opt = torch.optim.Adam(coder.parameters(), lr=LR, fused=True)
    x, y = _xy(cfg, dtype, device)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        coder(x, y).fvu.backward()
        coder.remove_gradient_parallel_to_decoder_directions()
        opt.step()
        coder.set_decoder_norm_to_unit_norm()

    return step


BUILDERS: dict[str, Builder] = {
    "floor": build_floor,
    "refsae": build_refsae,
    "refsae_autograd": build_refsae_autograd,
    "sparsify": build_sparsify,
}


if __name__ == "__main__":
    doc = __doc__.splitlines()[0]
    raise SystemExit(main(doc, CONFIGS, DEFAULT_CONFIGS, BUILDERS, "refsae_autograd", "transcoder"))
