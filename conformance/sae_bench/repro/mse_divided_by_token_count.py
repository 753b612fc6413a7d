"""sae-bench 0.6.0: get_sparsity_and_variance_metrics (sae_bench/evals/core/main.py:570) divides each
token's squared error ||x_b - x_hat_b||^2 by the number of tokens in the eval batch and then averages
over the tokens, so the reported "mse" is E_b ||x_b - x_hat_b||^2 / N: it shrinks as the eval batch
grows (LOSS-1: the mean over tokens of the squared error summed over d_in; LOSS-2 divides by d_in,
not by N). SAELens fixed the same line in its own copy (SAELens PR #711)."""

from types import SimpleNamespace

import numpy as np
import torch
from sae_bench.evals.core.main import get_sparsity_and_variance_metrics

HOOK = "blocks.0.hook_resid_pre"


class Model:  # the hook's activations of one prompt: x
    def __init__(self, x):
        self.x = x

    def run_with_cache(self, tokens, **kwargs):
        return None, {HOOK: self.x[None]}


class Store:  # one prompt of len(x) tokens
    def __init__(self, n):
        self.n = n

    def get_batch_tokens(self, n_prompts):
        return torch.zeros((1, self.n), dtype=torch.long)


class SAE:  # encode gives no latents, decode gives x_hat
    def __init__(self, x_hat):
        self.x_hat = x_hat
        self.cfg = SimpleNamespace(d_sae=1, hook_name=HOOK, hook_head_index=None, hook_layer=0)
        self.device = x_hat.device

    def encode(self, x):
        return torch.zeros((1, x.shape[1], 1), dtype=x.dtype)

    def decode(self, f):
        return self.x_hat[None]


def saebench_mse(x, x_hat):
    metrics, _ = get_sparsity_and_variance_metrics(
        SAE(torch.tensor(x_hat)),
        Model(torch.tensor(x)),
        Store(len(x)),
        n_batches=1,
        compute_l2_norms=False,
        compute_sparsity_metrics=False,
        compute_variance_metrics=True,
        compute_featurewise_density_statistics=False,
        eval_batch_size_prompts=1,
        model_kwargs={},
    )
    return metrics["mse"]


x = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
x_hat = np.zeros_like(x)
failed = False
for copies in (1, 2, 4):  # the same tokens, an eval batch 1, 2 and 4 times as long
    xs, hats = np.tile(x, (copies, 1)), np.tile(x_hat, (copies, 1))
    expected = float(np.mean(np.sum((xs - hats) ** 2, axis=-1)))  # LOSS-1: 1.0 at every length
    actual = saebench_mse(xs, hats)
    print(f"{len(xs)} tokens: expected {expected}, sae_bench mse {actual}")
    failed |= not np.isclose(actual, expected)
print("BUG REPRODUCED" if failed else "fixed")
raise SystemExit(1 if failed else 0)
