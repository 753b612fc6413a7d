"""Adapter of saev (https://github.com/OSU-NLP-Group/saev, PyPI `saev` 0.1.0): `saev.nn.SparseAutoencoder`,
a ReLU SAE with the canonical layout, built with `d_vit = d_in`, `exp_factor = 1` and each parameter
replaced by the case's. Which library code each row calls, and why: conformance/saev/README.md; what
the suite found: conformance/saev/findings.toml."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, cast

import torch
from torch import Tensor

from refsae.conform.adapter import Domain
from refsae.conform.domains import unit_rows
from refsae.conform.module_adapter import ModuleAdapter, eye_and_zeros, library


class SparseAutoencoder(ModuleAdapter):
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
    parameters: ClassVar[Mapping[str, str]] = {k: k for k in ("W_enc", "b_enc", "W_dec", "b_dec")}
    loss_rows: ClassVar[tuple[str, ...]] = ("total_loss", "loss_gradients")
    domains: ClassVar[tuple[Domain, ...]] = (
        unit_rows("saev's training loop calls normalize_w_dec before remove_parallel_grads"),
    )

    def build(self, like: Mapping[str, Tensor], **config: Any) -> Any:
        """`saev.nn.SparseAutoencoder` with `d_vit = d_in`, `exp_factor = 1` (its `d_sae` is never
        read) and `config`; the row's `l1_coefficient` is its `sparsity_coeff`."""
        if "l1_coefficient" in config:
            config["sparsity_coeff"] = float(config.pop("l1_coefficient"))
        cfg = library("saev.config").SparseAutoencoder(d_vit=like["W_enc"].shape[0], exp_factor=1, **config)
        return library("saev.nn").SparseAutoencoder(cfg)

    def load(self, module: Any, values: Mapping[str, Tensor]) -> Any:
        """Each parameter replaced by an `nn.Parameter` holding the case's tensor (its dtype and shape)."""
        for name, value in values.items():
            self.target_of(module, name)  # a name the map does not place is an error
            setattr(module, self.parameters[name], torch.nn.Parameter(value.detach().clone()))
        return module

    def loss(self, module: Any, x: Tensor, **options: Any) -> Tensor:
        return cast(Tensor, module(x)[2].loss)

    def _sae(self, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor, **config: Any) -> Any:
        return self.model({"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": b_dec}, **config)

    def _identity_forward(self, f: Tensor) -> Any:
        """`forward(f)` of an SAE whose pre-activations are `f` itself (W_enc = I, b_enc = b_dec = 0)."""
        eye, zeros = eye_and_zeros(f)
        with torch.no_grad():
            return self._sae(eye, zeros, torch.zeros_like(eye), zeros)(f)

    def encode(self, x: Tensor, W_enc: Tensor, b_enc: Tensor, b_dec: Tensor) -> Tensor:
        W_dec = torch.zeros_like(W_enc.T)
        with torch.no_grad():
            return cast(Tensor, self._sae(W_enc, b_enc, W_dec, b_dec)(x)[1])

    def decode(self, f: Tensor, W_dec: Tensor, b_dec: Tensor) -> Tensor:
        W_enc = torch.zeros_like(W_dec.T)
        with torch.no_grad():
            return cast(Tensor, self._sae(W_enc, torch.zeros_like(f[0]), W_dec, b_dec).decode(f))

    def forward(
        self, x: Tensor, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor
    ) -> tuple[Tensor, Tensor]:
        with torch.no_grad():
            x_hat, f_x, _ = self._sae(W_enc, b_enc, W_dec, b_dec)(x)
        return f_x, x_hat

    def sparsity_loss(self, f: Tensor, W_dec: Tensor) -> Tensor:
        return cast(Tensor, self._identity_forward(f)[2].l1)

    def renormalise_rows(self, W_dec: Tensor) -> Tensor:
        zeros = torch.zeros_like(W_dec[:, 0])
        sae = self._sae(W_dec.T, zeros, W_dec, torch.zeros_like(W_dec[0]), normalize_w_dec=True)
        sae.normalize_w_dec()
        return cast(Tensor, sae.W_dec.detach())

    def remove_parallel_component(self, W_dec: Tensor, grad_W_dec: Tensor) -> Tensor:
        zeros = torch.zeros_like(W_dec[:, 0])
        sae = self._sae(W_dec.T, zeros, W_dec, torch.zeros_like(W_dec[0]), remove_parallel_grads=True)
        sae.W_dec.grad = grad_W_dec.detach().clone()
        sae.remove_parallel_grads()
        return cast(Tensor, sae.W_dec.grad)

    def l0(self, f: Tensor) -> Tensor:
        return cast(Tensor, self._identity_forward(f)[2].l0)

    def b_dec_mean(self, x: Tensor) -> Tensor:
        d_in = x.shape[-1]
        W = torch.zeros(d_in, d_in, dtype=x.dtype, device=x.device)
        sae = self._sae(W, W[0], W, W[0], n_reinit_samples=x.shape[0])
        sae.init_b_dec(x)
        return cast(Tensor, sae.b_dec.detach())
