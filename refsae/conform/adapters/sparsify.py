"""Adapter of EleutherAI's sparsify (PyPI `eai-sparsify` 1.3.x, import `sparsify`), target `sparsify`.

Class: `sparsify.SparseCoder(d_in, SparseCoderConfig(num_latents=d_sae, k=k), device, dtype)`, a TopK
SAE (`activation="topk"`, the default). Without Triton the library prints a notice at import and
decodes with its eager `embedding_bag` path (`sparsify.utils.eager_decode`). What the suite found is
recorded in `conformance/sparsify/findings.toml`.

Rows:

- `topk`: `sparsify.fused_encoder.fused_encoder(z, I, 0, k, "topk")`, the library's encoder function
  (what `SparseCoder.encode` calls after subtracting `b_dec`), with the identity as the encoder weight
  and a zero bias, so that its linear map returns `z` exactly (`z @ I` adds only exact zeros). It
  returns `(top_acts, top_indices, pre_acts)`, where `pre_acts` is already `relu(z)`; the sparse
  `(top_acts, top_indices)` is scattered into dense latents (zeros elsewhere), a layout conversion.
- `decode_sparse`: `SparseCoder.decode(values, indices)`.
- `reconstruction_loss`: `SparseCoder.forward(x_hat, y=x).fvu` of a coder with the library's skip
  connection (`SparseCoderConfig(skip_connection=True)`), `W_skip = I`, `W_dec = 0`, `b_dec = 0`: its
  output `sae_out = decode(…) + x_hat @ W_skipᵀ` is `x_hat` exactly (the decode adds exact zeros), so
  `fvu` is the library's loss of the given `x_hat` against the target `y = x`.
- `topk_total_loss`: `SparseCoder.forward(x).fvu`, the loss the library's `Trainer` backpropagates
  with its defaults (`fvu + auxk_alpha · auxk_loss + multi_topk_fvu / 8`, `auxk_alpha = 0`,
  `multi_topk = False`; `dead_mask=None`, so the AuxK term is 0). The loss has no sparsity penalty:
  the TopK loss rows are checked on cases with `l1_coefficient = 0` only (TOPK-6's default;
  `hypothesis.assume`).
- `topk_loss_gradients`: `fvu.backward()` through the library's `FusedEncoder.backward`.
- `remove_parallel_component`, `renormalise_rows`: the methods
  `SparseCoder.remove_gradient_parallel_to_decoder_directions()` (on `W_dec.grad`) and
  `set_decoder_norm_to_unit_norm()`.
- `auxk_loss`, `auxk_loss_gradients`: `SparseCoder.forward(x, dead_mask=dead).auxk_loss` (and its
  `backward()`), the only place the library computes AuxK. Its inputs are the encoder's outputs and
  the decoder's output, so the coder's `encode` is replaced by the library's `fused_encoder(z, I, 0, 1,
  "topk")` on the row's `z` (its `pre_acts`, `relu(z)`, are what the AuxK selection reads) and its
  `decode` by the row's `x_hat` (`sae_out`; the AuxK decode calls `decoder_impl` directly, with `W_dec`);
  `forward` then computes the residual, its normaliser, the selection and the loss itself. The
  library fixes `k_aux = y.shape[-1] // 2` (`d_in // 2`); the row's `k_aux` is reached by padding
  `x`, `x_hat`, `W_dec` and `b_dec` with zero columns to `d_in' = 2 · k_aux` (zero columns add exact
  zeros to every sum: residual, decode and variance), so cases with `2 · k_aux < d_in` cannot be
  represented and are skipped (`hypothesis.assume`). Gradients: `z` through `FusedEncoder.backward`,
  `W_dec` from its `.grad` (padding removed), `b_dec` and `x_hat` (not reached by the loss) as zeros.

Not provided: `encode`/`forward`/`total_loss` (ReLU rows; sparsify has TopK and groupmax only);
`auxk_latents` (forward returns the AuxK loss, not the auxiliary latents); metrics (the trainer logs
`fvu` and `dead_pct` inline, from its own state).

Layouts: `encoder.weight (d_sae, d_in) = W_enc.T`, `encoder.bias = b_enc`, `W_dec (d_sae, d_in)` and
`b_dec` as in refsae (rows are the dictionary vectors); gradients come back the same way. No
instance axis (`Adapter.instances = False`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, cast

import torch

from refsae.conform.adapter import Adapter

Tensor = torch.Tensor


def _pad(t: Tensor, width: int) -> Tensor:
    """`t` with zero columns appended to `width` on its last axis."""
    return torch.nn.functional.pad(t, (0, width - t.shape[-1]))


class SparseCoder(Adapter):
    """`sparsify.SparseCoder` (TopK)."""

    name: ClassVar[str] = "sparsify"
    library: ClassVar[str] = "eai-sparsify"
    # `ForwardOutput.fvu` is documented as "Fraction of variance unexplained" (sparse_coder.py), and
    # `TrainConfig.loss_fn` as "`fvu`: Fraction of variance explained" (config.py): LOSS-3.
    # `SparseCoderConfig.normalize_decoder`: "Normalize the decoder weights to have unit norm."
    # (config.py, default True; W_dec is used as is in the forward pass: refsae's `constrained`).
    claims: ClassVar[Mapping[str, str]] = {"reconstruction": "fvu", "decoder": "constrained"}

    def _model(self, d_in: int, d_sae: int, k: int, dtype: torch.dtype, **config: Any) -> Any:
        from sparsify import SparseCoder as LibSparseCoder
        from sparsify import SparseCoderConfig

        return LibSparseCoder(
            d_in, SparseCoderConfig(num_latents=d_sae, k=k, **config), device=self.device, dtype=dtype
        )

    def _loaded(self, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor, k: int) -> Any:
        d_in, d_sae = W_enc.shape
        sae = self._model(d_in, d_sae, k, W_enc.dtype)
        with torch.no_grad():
            sae.encoder.weight.copy_(W_enc.T)
            sae.encoder.bias.copy_(b_enc)
            sae.W_dec.copy_(W_dec)
            sae.b_dec.copy_(b_dec)
        return sae

    def topk(self, z: Tensor, *, k: int) -> Tensor:
        from sparsify.fused_encoder import fused_encoder

        d_sae = z.shape[-1]
        eye = torch.eye(d_sae, dtype=z.dtype, device=z.device)
        with torch.no_grad():
            top_acts, top_indices, _ = fused_encoder(z, eye, torch.zeros_like(z[0]), k, "topk")
            return torch.zeros_like(z).scatter_(-1, top_indices, top_acts)

    def decode_sparse(self, values: Tensor, indices: Tensor, W_dec: Tensor, b_dec: Tensor) -> Tensor:
        d_sae, d_in = W_dec.shape
        sae = self._model(d_in, d_sae, 1, W_dec.dtype)
        with torch.no_grad():
            sae.W_dec.copy_(W_dec)
            sae.b_dec.copy_(b_dec)
            return cast(Tensor, sae.decode(values, indices))

    def reconstruction_loss(self, x: Tensor, x_hat: Tensor) -> Tensor:
        d_in = x.shape[-1]
        sae = self._model(d_in, 1, 1, x.dtype, skip_connection=True)
        with torch.no_grad():
            sae.encoder.weight.zero_()
            sae.W_dec.zero_()
            sae.b_dec.zero_()
            sae.W_skip.copy_(torch.eye(d_in, dtype=x.dtype, device=x.device))
            return cast(Tensor, sae(x_hat, x).fvu)

    def topk_total_loss(
        self,
        x: Tensor,
        W_enc: Tensor,
        b_enc: Tensor,
        W_dec: Tensor,
        b_dec: Tensor,
        *,
        k: int,
        l1_coefficient: float,
    ) -> Tensor:
        from hypothesis import assume

        assume(l1_coefficient == 0.0)  # sparsify's loss has no sparsity term (module docstring)
        sae = self._loaded(W_enc, b_enc, W_dec, b_dec, k)
        with torch.no_grad():
            return cast(Tensor, sae(x).fvu)

    def topk_loss_gradients(
        self,
        x: Tensor,
        W_enc: Tensor,
        b_enc: Tensor,
        W_dec: Tensor,
        b_dec: Tensor,
        *,
        k: int,
        l1_coefficient: float,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        from hypothesis import assume

        assume(l1_coefficient == 0.0)  # sparsify's loss has no sparsity term (module docstring)
        sae = self._loaded(W_enc, b_enc, W_dec, b_dec, k)
        sae(x).fvu.backward()
        return (sae.encoder.weight.grad.T, sae.encoder.bias.grad, sae.W_dec.grad, sae.b_dec.grad)

    def remove_parallel_component(self, W_dec: Tensor, grad_W_dec: Tensor) -> Tensor:
        d_sae, d_in = W_dec.shape
        sae = self._model(d_in, d_sae, 1, W_dec.dtype)
        with torch.no_grad():
            sae.W_dec.copy_(W_dec)
        sae.W_dec.grad = grad_W_dec.clone()
        sae.remove_gradient_parallel_to_decoder_directions()
        return cast(Tensor, sae.W_dec.grad)

    def renormalise_rows(self, W_dec: Tensor) -> Tensor:
        d_sae, d_in = W_dec.shape
        sae = self._model(d_in, d_sae, 1, W_dec.dtype)
        with torch.no_grad():
            sae.W_dec.copy_(W_dec)
        sae.set_decoder_norm_to_unit_norm()
        return cast(Tensor, sae.W_dec.detach())

    # --- AuxK: forward(x, dead_mask=...) on the row's pre-activations and reconstruction ---

    def _auxk(
        self, x: Tensor, x_hat: Tensor, z: Tensor, W_dec: Tensor, b_dec: Tensor, dead: Tensor, k_aux: int
    ) -> tuple[Tensor, Any]:
        from hypothesis import assume
        from sparsify.fused_encoder import fused_encoder

        d_sae, d_in = W_dec.shape
        assume(2 * k_aux >= d_in)  # the library's k_aux is d_in // 2 (module docstring)
        width = 2 * k_aux
        sae = self._model(width, d_sae, 1, W_dec.dtype)
        with torch.no_grad():
            sae.W_dec.copy_(_pad(W_dec, width))
            sae.b_dec.copy_(_pad(b_dec, width))
        eye = torch.eye(d_sae, dtype=z.dtype, device=z.device)
        target = _pad(x_hat, width)
        sae.encode = lambda _x: fused_encoder(z, eye, torch.zeros_like(eye[0]), 1, "topk")
        sae.decode = lambda _acts, _indices: target
        out = sae(_pad(x, width), dead_mask=dead.to(torch.bool))
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
        z = z.clone().requires_grad_(True)
        x_hat = x_hat.clone().requires_grad_(True)
        loss, sae = self._auxk(x, x_hat, z, W_dec, b_dec, dead, k_aux)
        if loss.requires_grad:  # no dead latent: the library's constant 0
            loss.backward()  # type: ignore[no-untyped-call]

        def grad(t: Tensor) -> Tensor:
            return t.grad if t.grad is not None else torch.zeros_like(t)

        return {
            "z": grad(z),
            "W_dec": grad(sae.W_dec)[:, : W_dec.shape[1]],
            "b_dec": grad(sae.b_dec)[: b_dec.shape[0]],
            "x_hat": grad(x_hat),
        }
