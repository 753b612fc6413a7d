"""Adapters of the libraries' transcoders (specs/transcoder.md): SAELens 6.54.x (targets
`sae_lens.transcoder`: `SkipTranscoder.forward_with_activations`, and `sae_lens.jumprelu_transcoder`:
`JumpReLUSkipTranscoder`'s; SAELens has no transcoder training loss) and sparsify 1.3.x (target
`sparsify.transcoder`: `SparseCoder` with `transcode=True, skip_connection=True`, its `forward(x, y).fvu`
and backward). Each builds the library's class, loads the case's parameters with `load_state_dict` and
calls it. Which library code each row calls: conformance/sae_lens/README.md,
conformance/sparsify/README.md; what the suite found: their findings.toml."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, cast

import torch
from torch import Tensor

from refsae.conform.adapter import Adapter, Domain
from refsae.conform.module_adapter import grad_or_zeros, library


def _load(module: Any, state: Mapping[str, Tensor]) -> Any:
    missing, unexpected = module.load_state_dict(
        {k: v.detach().clone() for k, v in state.items()}, strict=False
    )
    if missing or unexpected:
        raise RuntimeError(f"{type(module).__name__}: parameters missing {missing}, unexpected {unexpected}")
    return module


class SAELensTranscoder(Adapter):
    """`SkipTranscoder` (`W_skip` zero: the plain `Transcoder`'s computation), built with
    `apply_b_dec_to_input=False`: its config refuses `True` for a transcoder (TC-2), and `True` is the
    base `SAEConfig`'s default."""

    name: ClassVar[str] = "sae_lens.transcoder"
    library: ClassVar[str] = "sae-lens"

    def transcoder_forward(
        self, x: Tensor, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor, W_skip: Tensor
    ) -> tuple[Tensor, Tensor]:
        saes = library("sae_lens.saes")
        d_in, d_sae = W_enc.shape
        dtype = str(x.dtype).removeprefix("torch.")
        config = saes.SkipTranscoderConfig(
            d_in=d_in, d_sae=d_sae, d_out=W_dec.shape[1], dtype=dtype, device=str(x.device),
            apply_b_dec_to_input=False,
        )  # fmt: skip
        params = {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": b_dec, "W_skip": W_skip}
        sae = _load(saes.SkipTranscoder(config), params)
        with torch.no_grad():
            y_hat, f = sae.forward_with_activations(x)
        return f, y_hat


class SAELensJumpReLUTranscoder(Adapter):
    """`JumpReLUSkipTranscoder` (`W_skip` zero: the plain `JumpReLUTranscoder`'s computation), built like
    `sae_lens.transcoder`; its `threshold` parameter holds θ."""

    name: ClassVar[str] = "sae_lens.jumprelu_transcoder"
    library: ClassVar[str] = "sae-lens"

    def jumprelu_transcoder_forward(
        self,
        x: Tensor,
        W_enc: Tensor,
        b_enc: Tensor,
        W_dec: Tensor,
        b_dec: Tensor,
        W_skip: Tensor,
        theta: Tensor,
    ) -> tuple[Tensor, Tensor]:
        saes = library("sae_lens.saes")
        d_in, d_sae = W_enc.shape
        dtype = str(x.dtype).removeprefix("torch.")
        config = saes.JumpReLUSkipTranscoderConfig(
            d_in=d_in, d_sae=d_sae, d_out=W_dec.shape[1], dtype=dtype, device=str(x.device),
            apply_b_dec_to_input=False,
        )  # fmt: skip
        params = {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": b_dec, "W_skip": W_skip}
        sae = _load(saes.JumpReLUSkipTranscoder(config), {**params, "threshold": theta})
        with torch.no_grad():
            y_hat, f = sae.forward_with_activations(x)
        return f, y_hat


class SparsifyTranscoder(Adapter):
    """`sparsify.SparseCoder(d_in, SparseCoderConfig(transcode=True, skip_connection=True, …))`: TopK
    latents, the loss `forward(x, y).fvu`."""

    name: ClassVar[str] = "sparsify.transcoder"
    library: ClassVar[str] = "eai-sparsify"
    # `ForwardOutput.fvu`: "Fraction of variance unexplained" (sparse_coder.py): LOSS-3, of y.
    claims: ClassVar[Mapping[str, str]] = {"reconstruction": "fvu"}
    domains: ClassVar[tuple[Domain, ...]] = (
        Domain(
            "l1_coefficient_zero",
            "sparsify's loss (fvu) has no sparsity term",
            ("topk_transcoder_total_loss", "topk_transcoder_loss_gradients"),
            lambda case: case.options["l1_coefficient"] == 0.0,
        ),
        Domain(
            "d_out_equals_d_in",
            "SparseCoder has one width: W_dec (M, d_in), b_dec (d_in), W_skip (d_in, d_in); its trainer "
            "sizes the coder from the hooked module's output (utils.py)",
            ("topk_transcoder_total_loss", "topk_transcoder_loss_gradients"),
            lambda case: case.arrays["y"].shape[-1] == case.arrays["x"].shape[-1],
        ),
    )
    PARAMETERS: ClassVar[Mapping[str, str]] = {
        "W_enc": "encoder.weight", "b_enc": "encoder.bias", "W_dec": "W_dec", "b_dec": "b_dec",
        "W_skip": "W_skip",
    }  # fmt: skip

    def _coder(
        self, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor, W_skip: Tensor, k: int
    ) -> Any:
        sparsify = library("sparsify")
        d_in, d_sae = W_enc.shape
        config = sparsify.SparseCoderConfig(num_latents=d_sae, k=k, transcode=True, skip_connection=True)
        coder = sparsify.SparseCoder(d_in, config, device=self.device, dtype=W_enc.dtype)
        state = {
            "encoder.weight": W_enc.T,
            "encoder.bias": b_enc,
            "W_dec": W_dec,
            "b_dec": b_dec,
            "W_skip": W_skip,
        }
        return _load(coder, state)

    def topk_transcoder_total_loss(
        self, x: Tensor, y: Tensor, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor,
        W_skip: Tensor, *, k: int, l1_coefficient: float = 0.0,
    ) -> Tensor:  # fmt: skip
        coder = self._coder(W_enc, b_enc, W_dec, b_dec, W_skip, k)
        with torch.no_grad():
            return cast(Tensor, coder(x, y).fvu)

    def topk_transcoder_loss_gradients(
        self, x: Tensor, y: Tensor, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor,
        W_skip: Tensor, *, k: int, l1_coefficient: float = 0.0,
    ) -> dict[str, Tensor]:  # fmt: skip
        coder = self._coder(W_enc, b_enc, W_dec, b_dec, W_skip, k)
        coder(x, y).fvu.backward()
        grads = {name: grad_or_zeros(coder.get_parameter(path)) for name, path in self.PARAMETERS.items()}
        return {**grads, "W_enc": grads["W_enc"].T}
