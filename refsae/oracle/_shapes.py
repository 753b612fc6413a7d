"""Shape annotations shared by the module's functions (NOT-1, NOT-3)."""

from __future__ import annotations

import numpy as np
from jaxtyping import Float64

InputBatch = Float64[np.ndarray, "batch *inst d_in"]
LatentBatch = Float64[np.ndarray, "batch *inst d_sae"]
EncoderWeights = Float64[np.ndarray, "*inst d_in d_sae"]
DecoderWeights = Float64[np.ndarray, "*inst d_sae d_in"]
LatentVector = Float64[np.ndarray, "*inst d_sae"]
InputVector = Float64[np.ndarray, "*inst d_in"]
PerInstance = Float64[np.ndarray, "*inst"]
PerToken = Float64[np.ndarray, "batch *inst"]
Scalar = Float64[np.ndarray, ""]
