"""The adapter of SAELens's `JumpReLUTrainingSAE` (target `sae_lens.jumprelu`): the rows of
`refsae.conform.adapters.sae_lens.JumpReLUSAE` (JumpReLU with its default L0 penalty) and the newer
penalties of the same class: `jumprelu_sparsity_loss_mode="tanh"` with `jumprelu_tanh_scale` (JUMP-9,
JUMP-10) and `pre_act_loss_coefficient` with a dead-latent mask (JUMP-11, JUMP-12). The gradient rows
take `ste` and set `jumprelu_ste_to_input` from it, so both estimators are checked (JUMP-14,
JUMP-15). Which library code each row calls: conformance/sae_lens/README.md."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, cast

import torch
from torch import Tensor

from refsae.conform.adapters.sae_lens import JumpReLUSAE
from refsae.conform.module_adapter import backward_to, library

PENALTY_ROWS = (
    "jumprelu_tanh_total_loss",
    "jumprelu_tanh_loss_gradients",
    "jumprelu_pre_act_penalty",
    "jumprelu_pre_act_penalty_gradients",
)
GRADIENT_NAMES = {
    "W_enc": "W_enc",
    "b_enc": "b_enc",
    "W_dec": "W_dec",
    "b_dec": "b_dec",
    "theta": "threshold",
}


def _forward(sae: Any, x: Tensor, dead: Tensor | None) -> Any:
    """`training_forward_pass` at step 0 with the config's coefficients and the given dead mask."""
    coefficients = {k: float(v.value) for k, v in sae.get_coefficients().items()}
    step = library("sae_lens.saes").sae.TrainStepInput(
        sae_in=x, coefficients=coefficients, dead_neuron_mask=dead, n_training_steps=0, is_logging_step=False
    )
    return sae.training_forward_pass(step)


class JumpReLUTrainingSAE(JumpReLUSAE):
    """`JumpReLUTrainingSAE`: its default rows, and the tanh and pre-activation penalties."""

    working_precision: ClassVar[Mapping[str, tuple[str, str]]] = {
        **JumpReLUSAE.working_precision,
        **dict.fromkeys(
            PENALTY_ROWS,
            ("float32", "the threshold and its gradient are kept in float32 (jumprelu_sae.py, `_apply`)"),
        ),
    }

    def _penalised(self, arrays: tuple[Tensor, ...], **config: Any) -> Any:
        names = ("W_enc", "b_enc", "W_dec", "b_dec", "theta")
        values = dict(zip(names, arrays, strict=True))
        return self.load(self.make(values, **config), values)

    def _tanh(
        self, arrays: tuple[Tensor, ...], l0_coefficient: float, bandwidth: float, scale: float, ste: str
    ) -> Any:
        return self._penalised(
            arrays,
            l0_coefficient=l0_coefficient,
            jumprelu_bandwidth=bandwidth,
            jumprelu_sparsity_loss_mode="tanh",
            jumprelu_tanh_scale=scale,
            jumprelu_ste_to_input=ste == "also_input",
        )

    def jumprelu_loss_gradients(
        self, x: Tensor, *params: Tensor, l0_coefficient: float, bandwidth: float, ste: str
    ) -> dict[str, Tensor]:
        """The default (step) penalty's backward, with `jumprelu_ste_to_input` set from `ste`: both
        estimators are checked (JUMP-14, JUMP-15)."""
        sae = self._penalised(
            params,
            l0_coefficient=l0_coefficient,
            jumprelu_bandwidth=bandwidth,
            jumprelu_ste_to_input=ste == "also_input",
        )
        return self._gradients(sae, _forward(sae, x, None).loss)

    def jumprelu_tanh_total_loss(
        self, x: Tensor, *params: Tensor, l0_coefficient: float, bandwidth: float, tanh_scale: float
    ) -> Tensor:
        sae = self._tanh(params, l0_coefficient, bandwidth, tanh_scale, "threshold_only")
        with torch.no_grad():
            return cast(Tensor, _forward(sae, x, None).loss)

    def _gradients(self, sae: Any, loss: Tensor) -> dict[str, Tensor]:
        leaves = {GRADIENT_NAMES[k]: self.target_of(sae, k) for k in GRADIENT_NAMES}
        return backward_to(loss, leaves)

    def jumprelu_tanh_loss_gradients(
        self, x: Tensor, *params: Tensor, l0_coefficient: float, bandwidth: float, tanh_scale: float, ste: str
    ) -> dict[str, Tensor]:
        sae = self._tanh(params, l0_coefficient, bandwidth, tanh_scale, ste)
        return self._gradients(sae, _forward(sae, x, None).loss)

    def _pre_act(self, params: tuple[Tensor, ...], coefficient: float) -> Any:
        # l0_coefficient = 0: the step penalty stays in `loss`, but the row reads `pre_act_loss` alone.
        return self._penalised(params, l0_coefficient=0.0, pre_act_loss_coefficient=coefficient)

    def jumprelu_pre_act_penalty(self, x: Tensor, *arrays: Tensor, pre_act_coefficient: float) -> Tensor:
        *params, dead = arrays
        sae = self._pre_act(tuple(params), pre_act_coefficient)
        with torch.no_grad():
            return cast(Tensor, _forward(sae, x, dead.bool()).losses["pre_act_loss"])

    def jumprelu_pre_act_penalty_gradients(
        self, x: Tensor, *arrays: Tensor, pre_act_coefficient: float
    ) -> dict[str, Tensor]:
        *params, dead = arrays
        sae = self._pre_act(tuple(params), pre_act_coefficient)
        return self._gradients(sae, _forward(sae, x, dead.bool()).losses["pre_act_loss"])


QUADRATIC_TARGET_L0 = 1.0
"""The `target_l0` the quadratic target configures and declares (EQ-16): SAELens has no default (None
is refused in this mode) and refuses a target above d_sae, which is 1 in the smallest cases."""


class JumpReLUQuadraticSAE(JumpReLUTrainingSAE):
    """`JumpReLUTrainingSAE(jumprelu_sparsity_loss_mode="quadratic", target_l0=1)`: Gemma Scope 2's
    per-example penalty (2/T)(L0_b − T)², averaged over the batch (EQ-16), on the two loss rows."""

    name: ClassVar[str] = "sae_lens.jumprelu_quadratic"
    equivalence_parameters: ClassVar[Mapping[str, Any]] = {"target_l0": QUADRATIC_TARGET_L0}
    ROWS: ClassVar[tuple[str, ...]] = ("jumprelu_total_loss", "jumprelu_loss_gradients")

    def supports(self, operation: str) -> bool:
        return operation in self.ROWS and super().supports(operation)

    def make(self, like: Mapping[str, Tensor], cls: str = "", **config: Any) -> Any:
        quadratic = {"jumprelu_sparsity_loss_mode": "quadratic", "target_l0": QUADRATIC_TARGET_L0}
        return super().make(like, cls, **{**quadratic, **config})
