"""Shape annotations shared by the module's functions (NOT-1, NOT-3)."""

from __future__ import annotations

from jaxtyping import Float
from torch import Tensor

InputBatch = Float[Tensor, "batch *inst d_in"]
LatentBatch = Float[Tensor, "batch *inst d_sae"]
EncoderWeights = Float[Tensor, "*inst d_in d_sae"]
DecoderWeights = Float[Tensor, "*inst d_sae d_in"]
LatentVector = Float[Tensor, "*inst d_sae"]
InputVector = Float[Tensor, "*inst d_in"]
PerInstance = Float[Tensor, "*inst"]
PerToken = Float[Tensor, "batch *inst"]
Scalar = Float[Tensor, ""]
LevelReconstructions = Float[Tensor, "levels batch *inst d_in"]
TargetBatch = Float[Tensor, "batch *inst d_out"]
TargetDecoderWeights = Float[Tensor, "*inst d_sae d_out"]
TargetVector = Float[Tensor, "*inst d_out"]
SkipWeights = Float[Tensor, "*inst d_out d_in"]
