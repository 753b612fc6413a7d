"""Adapter of saev 0.1.0 (PyPI `saev`, seed 001), target `saev`.

Library code used: `saev.nn.SparseAutoencoder(saev.config.SparseAutoencoder(d_vit, exp_factor,
sparsity_coeff, n_reinit_samples, remove_parallel_grads, normalize_w_dec, ...))`, a ReLU SAE whose
parameters have refsae's canonical layout (`W_enc (d_vit, d_sae)`, `b_enc (d_sae)`, `W_dec (d_sae,
d_vit)` whose rows are the dictionary vectors, `b_dec (d_vit)`): no transposes. `forward(x)` returns
`(x_hat, f_x, Loss)`, where `Loss` is a named tuple `(mse, sparsity, ghost_grad, l0, l1)` with the
property `loss = mse + sparsity + ghost_grad` (what `saev.training.train` backpropagates).

Loading: the config fixes `d_sae = d_vit · exp_factor`, which cannot express every case's
`(d_in, d_sae)`; the model is built with `d_vit = d_in`, `exp_factor = 1` and each of its four
parameters is then replaced by an `nn.Parameter` holding the case's tensor (its dtype and shape).
`forward`, `decode`, `init_b_dec`, `normalize_w_dec` and `remove_parallel_grads` read only the
parameters, never `cfg.d_sae`. Unused inputs of a row (e.g. `W_dec` for `encode`) are zeros.

Rows:

- `encode`: `forward(x)[1]` (`f_x`; 0.1.0 has no separate `encode` method).
- `decode`: `decode(f)`.
- `forward`: `forward(x)[:2]`, reordered to `(f, x_hat)`.
- `sparsity_loss`: `forward(f)[2].l1`, "L1 magnitude of hidden activations", with the identity as the
  encoder (`d_vit = d_sae`, `W_enc = I`, `b_enc = b_dec = 0`, `W_dec = 0`): its pre-activations are
  `f` exactly (the cases' latents are non-negative, so the ReLU keeps them). The case's `W_dec` has
  nowhere to go (saev's penalty does not read the decoder).
- `total_loss`: `forward(x)[2].loss` with `sparsity_coeff = l1_coefficient`.
- `loss_gradients`: `forward(x)[2].loss.backward()`, the parameters' `.grad`.
- `renormalise_rows`: `normalize_w_dec()` (`normalize_w_dec=True`, the default).
- `remove_parallel_component`: `remove_parallel_grads()` on `W_dec.grad = grad_W_dec`
  (`remove_parallel_grads=True`, the default).
- `l0`: `forward(f)[2].l0`, with the identity encoder of `sparsity_loss`.
- `b_dec_mean`: `init_b_dec(x)` with `n_reinit_samples = batch` (the method asserts that it receives
  exactly that many), the new `b_dec`.

Not provided:

- `reconstruction_loss`: saev's reconstruction term exists only inside `forward`
  (`safe_mse(x_hat, x).mean()` of the forward pass's own `x_hat`); no library function takes an
  independent `(x, x_hat)` pair to a loss (`safe_mse` is elementwise), and reducing it in the adapter
  would be the adapter's convention, not saev's. `total_loss` checks the term.
- `decoder_directions`, the TopK/BatchTopK/JumpReLU/Gated/AuxK rows: saev 0.1.0 has the plain ReLU SAE
  with a raw decoder only.
- `explained_variance`, `fire_counts`, `dead_fraction`, `dead_by_*`, `resampling_probabilities`,
  resampling, Adam and `training_step`: saev has no function for any of them. `saev.training.evaluate`
  counts firings (`f_x > 0`) inline over a whole dataset but returns only frequencies
  (`freqs = n_fired / len(dataset)`, float32) and the numbers of dead, almost dead (`freqs < 1e-7`)
  and dense latents, not per-latent counts or a dead mask; `saev.training.train` runs its training
  step inline over `saev.activations.Dataset` shards on disk and logs to wandb (not installed; and
  `saev.activations` imports torchvision). Its optimizer is `torch.optim.Adam` itself, not saev's
  code; `geometric_median` is not computed (the `n_reinit_samples` docstring: "We use the regular
  mean").

No instance axis (`instances = False`); saev's methods are annotated 2-D (`jaxtyping`, "batch d_model").
Checked in float64 and float32.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, ClassVar, cast

import torch
from torch import Tensor

from refsae.conform.adapter import Adapter


@functools.cache
def _lib() -> tuple[Any, Any]:
    """`(saev.config, saev.nn)`, imported on first use (neither imports torchvision nor wandb)."""
    import saev.config
    import saev.nn

    return saev.config, saev.nn


def _sae(W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor, **config: Any) -> Any:
    """`saev.nn.SparseAutoencoder` holding the given parameters (config keywords as given)."""
    cfg_mod, nn_mod = _lib()
    cfg = cfg_mod.SparseAutoencoder(d_vit=W_enc.shape[0], exp_factor=1, **config)
    sae = nn_mod.SparseAutoencoder(cfg)
    sae.W_enc = torch.nn.Parameter(W_enc.detach().clone())
    sae.b_enc = torch.nn.Parameter(b_enc.detach().clone())
    sae.W_dec = torch.nn.Parameter(W_dec.detach().clone())
    sae.b_dec = torch.nn.Parameter(b_dec.detach().clone())
    return sae


def _identity_forward(f: Tensor) -> Any:
    """`forward(f)` of an SAE whose pre-activations are `f` itself (W_enc = I, b_enc = b_dec = 0)."""
    d_sae = f.shape[-1]
    eye = torch.eye(d_sae, dtype=f.dtype, device=f.device)
    zeros = torch.zeros(d_sae, dtype=f.dtype, device=f.device)
    with torch.no_grad():
        return _sae(eye, zeros, torch.zeros_like(eye), zeros)(f)


class SparseAutoencoder(Adapter):
    """`saev.nn.SparseAutoencoder` (ReLU, L1 penalty)."""

    name: ClassVar[str] = "saev"
    library: ClassVar[str] = "saev"
    claims: ClassVar[Mapping[str, str]] = {
        # forward: "# Remove encoder bias as per Anthropic", h_pre = (x - self.b_dec) W_enc + b_enc.
        "encode": "tied",
        # config.SparseAutoencoder.normalize_w_dec (default True): "Whether to make sure W_dec has unit
        # norm columns" (rows of saev's (d_sae, d_vit) W_dec), applied to W_dec itself, not in forward.
        "decoder": "constrained",
        # Loss.mse: "Reconstruction loss (mean squared error)."
        "reconstruction": "mean",
        # Class docstring: "Sparse auto-encoder (SAE) using L1 sparsity penalty."; Loss.l1: "L1
        # magnitude of hidden activations"; Loss.sparsity: "Sparsity loss, typically lambda * L1."
        "sparsity": "l1",
    }

    def encode(self, x: Tensor, W_enc: Tensor, b_enc: Tensor, b_dec: Tensor) -> Tensor:
        W_dec = torch.zeros_like(W_enc.T)
        with torch.no_grad():
            return cast(Tensor, _sae(W_enc, b_enc, W_dec, b_dec)(x)[1])

    def decode(self, f: Tensor, W_dec: Tensor, b_dec: Tensor) -> Tensor:
        W_enc = torch.zeros_like(W_dec.T)
        with torch.no_grad():
            return cast(Tensor, _sae(W_enc, torch.zeros_like(f[0]), W_dec, b_dec).decode(f))

    def forward(
        self, x: Tensor, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor
    ) -> tuple[Tensor, Tensor]:
        with torch.no_grad():
            x_hat, f_x, _ = _sae(W_enc, b_enc, W_dec, b_dec)(x)
        return f_x, x_hat

    def sparsity_loss(self, f: Tensor, W_dec: Tensor) -> Tensor:
        return cast(Tensor, _identity_forward(f)[2].l1)

    def total_loss(
        self, x: Tensor, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor, *, l1_coefficient: float
    ) -> Tensor:
        sae = _sae(W_enc, b_enc, W_dec, b_dec, sparsity_coeff=float(l1_coefficient))
        with torch.no_grad():
            return cast(Tensor, sae(x)[2].loss)

    def loss_gradients(
        self, x: Tensor, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor, *, l1_coefficient: float
    ) -> dict[str, Tensor]:
        sae = _sae(W_enc, b_enc, W_dec, b_dec, sparsity_coeff=float(l1_coefficient))
        sae(x)[2].loss.backward()
        return {name: cast(Tensor, getattr(sae, name).grad) for name in ("W_enc", "b_enc", "W_dec", "b_dec")}

    def renormalise_rows(self, W_dec: Tensor) -> Tensor:
        zeros = torch.zeros_like(W_dec[:, 0])
        sae = _sae(W_dec.T, zeros, W_dec, torch.zeros_like(W_dec[0]), normalize_w_dec=True)
        sae.normalize_w_dec()
        return cast(Tensor, sae.W_dec.detach())

    def remove_parallel_component(self, W_dec: Tensor, grad_W_dec: Tensor) -> Tensor:
        zeros = torch.zeros_like(W_dec[:, 0])
        sae = _sae(W_dec.T, zeros, W_dec, torch.zeros_like(W_dec[0]), remove_parallel_grads=True)
        sae.W_dec.grad = grad_W_dec.detach().clone()
        sae.remove_parallel_grads()
        return cast(Tensor, sae.W_dec.grad)

    def l0(self, f: Tensor) -> Tensor:
        return cast(Tensor, _identity_forward(f)[2].l0)

    def b_dec_mean(self, x: Tensor) -> Tensor:
        d_in = x.shape[-1]
        W = torch.zeros(d_in, d_in, dtype=x.dtype, device=x.device)
        sae = _sae(W, W[0], W, W[0], n_reinit_samples=x.shape[0])
        sae.init_b_dec(x)
        return cast(Tensor, sae.b_dec.detach())
