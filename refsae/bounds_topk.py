"""Error bounds of the TopK rows (TOPK, TOL-4).

The selection is exact once the strategy keeps a gap at the k-th value larger than the error of z
(TOPK-7), so TopK latents carry z's bound where selected and are exactly 0 elsewhere. The loss and
gradient rows reuse the ReLU bounds: ReLU's active set contains TopK's, so the magnitudes summed
there are at least TopK's, and a bound over a superset of terms is still a bound (a little loose).
"""

from __future__ import annotations

import numpy as np

from refsae import bounds as b
from refsae.tolerances import Bound, add, mul


def decode_sparse(
    values: np.ndarray, indices: np.ndarray, W_dec: np.ndarray, b_dec: np.ndarray, decoder: str, eps: float
) -> Bound:
    """x_hat = Σ_i v_i Ŵ_{idx_i} + b_dec: a length-k product over the gathered rows, stored, then the
    bias added and stored (the dense decode's chain with k in place of d_sae)."""
    W_hat = b.decoder_directions(W_dec, decoder, eps)
    if W_dec.ndim == 2:
        rows = W_hat.magnitude[indices]
    else:
        rows = W_hat.magnitude[np.arange(W_dec.shape[0])[None, :, None], indices]
    magnitude = np.einsum("b...k,b...kd->b...d", np.abs(values), rows)
    product = mul(magnitude, Bound(np.abs(values), 0, 0), W_hat, k_acc=values.shape[-1], k_store=1)
    return add(product.magnitude + np.abs(b_dec), product, Bound(np.abs(b_dec), 0, 0), k_store=1)
