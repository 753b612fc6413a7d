"""Adapters of overcomplete (https://github.com/KempnerInstitute/overcomplete, PyPI `overcomplete`
0.3.0, import `overcomplete.sae`): `SAE`, `TopKSAE`, `BatchTopKSAE` and `JumpSAE`, with the library's
losses and metrics. Which library code each row calls, and why: conformance/overcomplete/README.md;
what the suite found: conformance/overcomplete/findings.toml."""

from __future__ import annotations

import functools
import importlib.util
import sys
import types
from collections.abc import Mapping
from typing import Any, ClassVar, cast

import torch

from refsae.conform.module_adapter import ModuleAdapter, library

Tensor = torch.Tensor


@functools.cache
def _library() -> types.SimpleNamespace:
    """`overcomplete.sae`, its `losses`, `trackers` and `overcomplete.metrics`, without running the
    package's top `__init__` (which imports torchvision): an empty `overcomplete` package (its real
    `__path__`, no code run) is registered in `sys.modules` first."""
    if "overcomplete" not in sys.modules:
        spec = importlib.util.find_spec("overcomplete")
        if spec is None or spec.submodule_search_locations is None:
            raise ImportError("overcomplete is not installed")
        package = types.ModuleType("overcomplete")
        package.__path__ = list(spec.submodule_search_locations)
        package.__spec__ = spec
        package.__file__ = spec.origin
        sys.modules["overcomplete"] = package
    names = {"metrics": "overcomplete.metrics", "sae": "overcomplete.sae"}
    names.update(losses="overcomplete.sae.losses", trackers="overcomplete.sae.trackers")
    return types.SimpleNamespace(**{k: library(v) for k, v in names.items()})


class _Overcomplete(ModuleAdapter):
    library: ClassVar[str] = "overcomplete"
    absent: ClassVar[tuple[str, ...]] = ("b_dec",)  # DictionaryLayer has no bias (CONF-11)
    parameters: ClassVar[Mapping[str, str]] = {
        "W_enc": "encoder.final_block.0.weight.T",
        "b_enc": "encoder.final_block.0.bias",
        "W_dec": "dictionary._weights",
    }
    # normalize_l2: `x / (torch.norm(x, p=2, dim=1, keepdim=True) + 1e-8)` (sae/dictionary.py).
    eps: ClassVar[float] = 1e-8
    # DictionaryLayer: "normalization : str or callable, optional / Whether to normalize the dictionary,
    # by default 'l2' normalization is applied." (sae/dictionary.py) -> DEC-3.
    # _mse_with_penalty (mse_l1 = partial(_mse_with_penalty, penalty_fn=l1)): "Compute the Mean Squared
    # Error (MSE) loss with a given penalty function." (sae/losses.py) -> LOSS-2 (its formula line,
    # "Loss = ||x - x_hat||^2 + penalty * penalty_fn(z)", names no reduction); the penalty is
    # metrics.l1 of the codes, "Compute the L1 norm" (no decoder norm) -> LOSS-4 rather than LOSS-5.
    claims: ClassVar[Mapping[str, str]] = {
        "decoder": "normalised",
        "reconstruction": "mean",
        "sparsity": "l1",
    }
    cls: ClassVar[str] = "SAE"
    """The overcomplete class of the target."""

    def _kwargs(self, d_sae: int) -> dict[str, Any]:
        """Constructor arguments of `cls` besides the sizes (a `top_k` where the class needs one)."""
        return {}

    def make(self, W_enc: Tensor, **kwargs: Any) -> Any:
        """`overcomplete.sae.<cls>(d_in, d_sae, **kwargs)` in `W_enc`'s dtype (training mode)."""
        d_in, d_sae = W_enc.shape
        model = getattr(_library().sae, self.cls)(d_in, d_sae, device=str(W_enc.device), **kwargs)
        return model.to(W_enc.dtype)

    def load(self, module: Any, values: Mapping[str, Tensor]) -> Any:
        """The module's own `load_state_dict`, of its whole state with the mapped entries replaced."""
        state = module.state_dict()
        for name, value in values.items():
            self.target_of(module, name)  # a name the map does not place is an error
            state[self.parameters[name].removesuffix(".T")] = self.to_library(name, value)
        module.load_state_dict({k: v.detach().clone() for k, v in state.items()})
        return module

    def sae(self, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, **kwargs: Any) -> Any:
        return self.load(self.make(W_enc, **kwargs), {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec})

    def _identity(self, z: Tensor, **kwargs: Any) -> Any:
        """`cls(d_sae, d_sae)` whose linear encoder is the identity (`weight = I`, `bias = 0`)."""
        eye = torch.eye(z.shape[-1], dtype=z.dtype, device=z.device)
        return self.sae(eye, torch.zeros_like(eye[0]), eye, **kwargs)

    def loss(self, module: Any, x: Tensor, **options: Any) -> Tensor:
        """`train_sae`'s step up to the loss: training mode, `model(x)`, `mse_l1(..., penalty=λ)`."""
        module.train()
        z_pre, z, x_hat = module(x)
        dictionary, penalty = module.get_dictionary(), options["l1_coefficient"]
        return cast(Tensor, _library().losses.mse_l1(x, x_hat, z_pre, z, dictionary, penalty=penalty))

    def decode(self, f: Tensor, W_dec: Tensor, b_dec: Tensor) -> Tensor:
        """`decode(f)` in eval mode (fused dictionary); `b_dec` has no place in the model."""
        model = self.sae(W_dec.T, torch.zeros_like(W_dec[:, 0]), W_dec, **self._kwargs(W_dec.shape[0]))
        model.eval()
        with torch.no_grad():
            return cast(Tensor, model.decode(f))


class _Trained(_Overcomplete):
    """The rows shared by the targets with a training loss: the ReLU encoder module and the loss's
    reconstruction term, which settle the `encode` and `reconstruction` conventions of the loss rows."""

    def encode(self, x: Tensor, W_enc: Tensor, b_enc: Tensor, b_dec: Tensor) -> Tensor:
        """`SAE.encode(model, x)`, i.e. `model.encoder(x)`: the ReLU codes (what `TopKSAE.encode` and
        `BatchTopKSAE.encode` then select from), in eval mode; `b_dec` has no place in the model."""
        model = self.sae(W_enc, b_enc, W_enc.T, **self._kwargs(W_enc.shape[1]))
        model.eval()
        with torch.no_grad():
            _, codes = _library().sae.SAE.encode(model, x)
        return cast(Tensor, codes)

    def reconstruction_loss(self, x: Tensor, x_hat: Tensor) -> Tensor:
        with torch.no_grad():
            return cast(Tensor, _library().losses.mse_l1(x, x_hat, None, None, None, penalty_fn=None))


class SAE(_Trained):
    """`overcomplete.sae.SAE` (default linear encoder, l2-normalised dictionary) and the library's
    losses and metrics."""

    name: ClassVar[str] = "overcomplete"
    loss_rows: ClassVar[tuple[str, ...]] = ("total_loss", "loss_gradients")
    working_precision: ClassVar[Mapping[str, tuple[str, str]]] = {
        "dead_fraction": ("float32", "get_dead_ratio: 1 − alive.float().mean().item() (the mean in float32)")
    }

    def build(self, like: Mapping[str, Tensor], *, l1_coefficient: float) -> Any:
        return self.make(like["W_enc"])

    def forward(
        self, x: Tensor, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor
    ) -> tuple[Tensor, Tensor]:
        model = self.sae(W_enc, b_enc, W_dec)
        model.eval()
        with torch.no_grad():
            _, codes, x_hat = model(x)
        return codes, x_hat

    def sparsity_loss(self, f: Tensor, W_dec: Tensor) -> Tensor:
        zeros = torch.zeros(f.shape[0], W_dec.shape[1], dtype=f.dtype, device=f.device)
        with torch.no_grad():
            return cast(Tensor, _library().losses.mse_l1(zeros, zeros, None, f, W_dec, penalty=1.0))

    def renormalise_rows(self, W_dec: Tensor) -> Tensor:
        d_sae, d_in = W_dec.shape
        layer = _library().sae.DictionaryLayer(d_in, d_sae, device=str(W_dec.device)).to(W_dec.dtype)
        layer.load_state_dict({**layer.state_dict(), "_weights": W_dec.detach().clone()})
        layer.train()
        with torch.no_grad():
            layer.get_dictionary()
        return cast(Tensor, layer._weights.detach())

    def l0(self, f: Tensor) -> Tensor:
        return cast(Tensor, _library().metrics.l0_eps(f, 0).sum())

    def dead_fraction(self, fire_counts: Tensor) -> Tensor:
        tracker = _library().trackers.DeadCodeTracker(fire_counts.shape[-1], fire_counts.device)
        tracker.update(fire_counts[None])
        return torch.tensor(tracker.get_dead_ratio(), dtype=torch.float64)

    def explained_variance(self, x: Tensor, x_hat: Tensor) -> Tensor:
        with torch.no_grad():
            return cast(Tensor, _library().metrics.r2_score(x, x_hat))


class TopKSAE(_Trained):
    """`overcomplete.sae.TopKSAE(d_in, d_sae, top_k=k)`."""

    name: ClassVar[str] = "overcomplete.topk"
    cls: ClassVar[str] = "TopKSAE"
    loss_rows: ClassVar[tuple[str, ...]] = ("topk_total_loss", "topk_loss_gradients")

    def _kwargs(self, d_sae: int) -> dict[str, Any]:
        return {"top_k": d_sae}

    def build(self, like: Mapping[str, Tensor], *, k: int, l1_coefficient: float) -> Any:
        return self.make(like["W_enc"], top_k=k)

    def topk(self, z: Tensor, *, k: int) -> Tensor:
        model = self._identity(z, top_k=k)
        with torch.no_grad():
            _, codes = model.encode(z)
        return cast(Tensor, codes)


class BatchTopKSAE(_Trained):
    """`overcomplete.sae.BatchTopKSAE(d_in, d_sae, top_k=k·B)`: its training selection, its running
    threshold and its eval-mode thresholding. `top_k` is the number of codes kept in the whole batch,
    so the rows' per-example `k` is passed as `top_k = k · batch` (BTOPK-1's budget)."""

    name: ClassVar[str] = "overcomplete.batchtopk"
    cls: ClassVar[str] = "BatchTopKSAE"
    loss_rows: ClassVar[tuple[str, ...]] = ("batchtopk_total_loss", "batchtopk_loss_gradients")
    # BatchTopKSAE: "During training, a running threshold is updated with a specified momentum."
    # (sae/batchtopk_sae.py) -> BTOPK-5 `update="ema"`; and the decoder, loss claims of every target.
    claims: ClassVar[Mapping[str, str]] = {**_Overcomplete.claims, "update": "ema"}

    def _kwargs(self, d_sae: int) -> dict[str, Any]:
        return {"top_k": d_sae}

    def build(self, like: Mapping[str, Tensor], *, k: int, l1_coefficient: float) -> Any:
        return self.make(like["W_enc"], top_k=k * like["x"].shape[0])

    def batchtopk(self, z: Tensor, *, k: int) -> Tensor:
        model = self._identity(z, top_k=k * z.shape[0])
        model.train()
        with torch.no_grad():
            _, codes = model.encode(z)
        return cast(Tensor, codes)

    def batchtopk_update_threshold(
        self, threshold: Tensor, f: Tensor, *, n_batches: int, beta: float
    ) -> Tensor:
        """The library's EMA (`update` is not a keyword: the suite detects which rule it follows);
        `n_batches` has nothing to set."""
        kept = max(int(torch.count_nonzero(f)), 1)
        model = self._identity(f, top_k=kept, threshold_momentum=beta)
        model.running_threshold = threshold.detach().clone()
        model.train()
        with torch.no_grad():
            model.encode(f)
        return cast(Tensor, model.running_threshold)

    def batchtopk_inference(self, z: Tensor, threshold: Tensor) -> Tensor:
        model = self._identity(z, top_k=1)
        model.running_threshold = threshold.detach().clone()
        model.eval()
        with torch.no_grad():
            _, codes = model.encode(z)
        return cast(Tensor, codes)


class JumpSAE(_Overcomplete):
    """`overcomplete.sae.JumpSAE`'s activation `jump_relu`."""

    name: ClassVar[str] = "overcomplete.jumprelu"
    cls: ClassVar[str] = "JumpSAE"
    claims: ClassVar[Mapping[str, str]] = {"decoder": "normalised"}  # the only claim its rows can check

    def jumprelu(self, z: Tensor, theta: Tensor) -> Tensor:
        lib = _library().sae
        # JumpSAE's defaults (kernel "silverman", bandwidth 1e-3); they enter only the backward pass.
        kernel = lib.JumpSAE._KERNELS["silverman"]
        with torch.no_grad():
            return cast(Tensor, lib.jump_relu(z, theta, kernel, 1e-3))
