"""Adapter of EleutherAI's sparsify (https://github.com/EleutherAI/sparsify, PyPI `eai-sparsify` 1.3.x):
`SparseCoder`, a TopK SAE, on its eager path (no Triton here). Which library code each row calls, and
why: conformance/sparsify/README.md; what the suite found: conformance/sparsify/findings.toml."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, cast

import torch

from refsae.conform.adapter import Domain
from refsae.conform.domains import unit_rows
from refsae.conform.module_adapter import ModuleAdapter, backward_to, library, pad

Tensor = torch.Tensor


UNIT_ROWS_REASON = (
    "sparsify's Trainer calls set_decoder_norm_to_unit_norm before "
    + "remove_gradient_parallel_to_decoder_directions"
)


class SparseCoder(ModuleAdapter):
    """`sparsify.SparseCoder` (TopK)."""

    name: ClassVar[str] = "sparsify"
    library: ClassVar[str] = "eai-sparsify"
    # `ForwardOutput.fvu` is documented as "Fraction of variance unexplained" (sparse_coder.py), and
    # `TrainConfig.loss_fn` as "`fvu`: Fraction of variance explained" (config.py): LOSS-3.
    # `SparseCoderConfig.normalize_decoder`: "Normalize the decoder weights to have unit norm."
    # (config.py, default True; W_dec is used as is in the forward pass: refsae's `constrained`).
    claims: ClassVar[Mapping[str, str]] = {"reconstruction": "fvu", "decoder": "constrained"}
    parameters: ClassVar[Mapping[str, str]] = {
        "W_enc": "encoder.weight.T", "b_enc": "encoder.bias", "W_dec": "W_dec", "b_dec": "b_dec"
    }  # fmt: skip
    loss_rows: ClassVar[tuple[str, ...]] = ("topk_total_loss", "topk_loss_gradients")
    domains: ClassVar[tuple[Domain, ...]] = (
        unit_rows(UNIT_ROWS_REASON),
        Domain(
            "l1_coefficient_zero",
            "sparsify's loss (fvu) has no sparsity term (TOPK-6's default)",
            ("topk_total_loss", "topk_loss_gradients"),
            lambda case: case.options["l1_coefficient"] == 0.0,
        ),
        Domain(
            "k_aux_reachable_by_padding",
            "sparsify fixes k_aux = d_in // 2; zero padding reaches k_aux only where 2 k_aux >= d_in",
            ("auxk_loss", "auxk_loss_gradients"),
            lambda case: 2 * case.options["k_aux"] >= case.arrays["W_dec"].shape[-1],
        ),
    )

    def _model(self, d_in: int, d_sae: int, k: int, dtype: torch.dtype, **config: Any) -> Any:
        sparsify = library("sparsify")
        config = sparsify.SparseCoderConfig(num_latents=d_sae, k=k, **config)
        return sparsify.SparseCoder(d_in, config, device=self.device, dtype=dtype)

    def build(self, like: Mapping[str, Tensor], *, k: int, l1_coefficient: float = 0.0) -> Any:
        d_in, d_sae = like["W_enc"].shape
        return self._model(d_in, d_sae, k, like["W_enc"].dtype)

    def loss(self, module: Any, x: Tensor, **options: Any) -> Tensor:
        return cast(Tensor, module(x).fvu)

    def _decoder(self, W_dec: Tensor, b_dec: Tensor | None = None, width: int = 0) -> Any:
        """A coder (k = 1) holding `W_dec` (and `b_dec`), padded with zero columns to `width`."""
        d_sae, d_in = W_dec.shape
        width = width or d_in
        values = {"W_dec": pad(W_dec, width)}
        if b_dec is not None:
            values["b_dec"] = pad(b_dec, width)
        return self.load(self._model(width, d_sae, 1, W_dec.dtype), values)

    def topk(self, z: Tensor, *, k: int) -> Tensor:
        """`fused_encoder(z, I, 0, k, "topk")`, scattered into dense latents (zeros elsewhere)."""
        fused_encoder = library("sparsify.fused_encoder").fused_encoder
        eye = torch.eye(z.shape[-1], dtype=z.dtype, device=z.device)
        with torch.no_grad():
            top_acts, top_indices, _ = fused_encoder(z, eye, torch.zeros_like(z[0]), k, "topk")
            return torch.zeros_like(z).scatter_(-1, top_indices, top_acts)

    def decode_sparse(self, values: Tensor, indices: Tensor, W_dec: Tensor, b_dec: Tensor) -> Tensor:
        sae = self._decoder(W_dec, b_dec)
        with torch.no_grad():
            return cast(Tensor, sae.decode(values, indices))

    def reconstruction_loss(self, x: Tensor, x_hat: Tensor) -> Tensor:
        """`forward(x_hat, y=x).fvu` of a coder whose output is its input (skip connection `W_skip = I`,
        `W_dec = 0`, `b_dec = 0`)."""
        d_in = x.shape[-1]
        sae = self._model(d_in, 1, 1, x.dtype, skip_connection=True)
        with torch.no_grad():
            sae.encoder.weight.zero_()
            sae.W_dec.zero_()
            sae.b_dec.zero_()
            sae.W_skip.copy_(torch.eye(d_in, dtype=x.dtype, device=x.device))
            return cast(Tensor, sae(x_hat, x).fvu)

    def remove_parallel_component(self, W_dec: Tensor, grad_W_dec: Tensor) -> Tensor:
        sae = self._decoder(W_dec)
        sae.W_dec.grad = grad_W_dec.clone()
        sae.remove_gradient_parallel_to_decoder_directions()
        return cast(Tensor, sae.W_dec.grad)

    def renormalise_rows(self, W_dec: Tensor) -> Tensor:
        sae = self._decoder(W_dec)
        sae.set_decoder_norm_to_unit_norm()
        return cast(Tensor, sae.W_dec.detach())

    # --- AuxK: forward(x, dead_mask=...) on the row's pre-activations and reconstruction ---

    def _auxk(
        self, x: Tensor, x_hat: Tensor, z: Tensor, W_dec: Tensor, b_dec: Tensor, dead: Tensor, k_aux: int
    ) -> tuple[Tensor, Any]:
        """`forward(x, dead_mask=dead).auxk_loss` with `encode` the library's `fused_encoder` on the
        row's `z` and `decode` the row's `x_hat`, padded to `d_in' = 2 k_aux` (k_aux = d_in' // 2)."""
        fused_encoder = library("sparsify.fused_encoder").fused_encoder
        width = 2 * k_aux
        sae = self._decoder(W_dec, b_dec, width)
        eye = torch.eye(W_dec.shape[0], dtype=z.dtype, device=z.device)
        target = pad(x_hat, width)
        sae.encode = lambda _x: fused_encoder(z, eye, torch.zeros_like(eye[0]), 1, "topk")
        sae.decode = lambda _acts, _indices: target
        out = sae(pad(x, width), dead_mask=dead.to(torch.bool))
        return cast(Tensor, out.auxk_loss), sae

    def auxk_loss(
        self, x: Tensor, x_hat: Tensor, z: Tensor, W_dec: Tensor, b_dec: Tensor, dead: Tensor, *, k_aux: int
    ) -> Tensor:
        with torch.no_grad():
            loss, _ = self._auxk(x, x_hat, z, W_dec, b_dec, dead, k_aux)
        return loss

    def auxk_loss_gradients(
        self, x: Tensor, x_hat: Tensor, z: Tensor, W_dec: Tensor, b_dec: Tensor, dead: Tensor, *, k_aux: int
    ) -> dict[str, Tensor]:
        """Gradients to `z` (through `FusedEncoder.backward`) and `W_dec`, padding removed; `b_dec` and
        `x_hat` are not reached (zeros)."""
        leaves = {"z": z.clone().requires_grad_(True), "x_hat": x_hat.clone().requires_grad_(True)}
        loss, sae = self._auxk(x, leaves["x_hat"], leaves["z"], W_dec, b_dec, dead, k_aux)
        grads = backward_to(loss, {**leaves, "W_dec": sae.W_dec, "b_dec": sae.b_dec})
        d_in = W_dec.shape[1]
        return {**grads, "W_dec": grads["W_dec"][:, :d_in], "b_dec": grads["b_dec"][:d_in]}
