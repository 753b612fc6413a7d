"""sae-bench 0.6.0: get_sparsity_and_variance_metrics (sae_bench/evals/core/main.py:582-627) means to
compute explained variance as 1 - E||x - x_hat||^2 / (E||x||^2 - ||E x||^2) (the comment "Individual
sums for the new (correct) formula", SAEBench PR #61), but it appends x.pow(2).mean(dim=0), the mean
of the *squares* per dimension, where the mean E[x_d] belongs, and torch.cat(...).mean(dim=0) then
averages those over the dimensions into one scalar: total_variance = E||x||^2 - (E||x||^2 / d_in)^2,
which is not the variance and can be negative (MET-3). SAELens fixed the same lines in its copy
(SAELens issue #659, PR #665)."""

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


def saebench_explained_variance(x, x_hat):
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
    return metrics["explained_variance"]


x = np.array([[2.0, 0.0], [0.0, 4.0]])
failed = False
for name, x_hat in (("x itself", x), ("the batch mean", np.repeat(x.mean(0, keepdims=True), 2, 0))):
    residual = np.sum((x - x_hat) ** 2)
    expected = float(1 - residual / np.sum((x - x.mean(0)) ** 2))  # MET-3: 1 and 0
    actual = saebench_explained_variance(x, x_hat)
    print(f"x_hat = {name}: expected {expected}, sae_bench explained_variance {actual}")
    failed |= not np.isclose(actual, expected)
print("BUG REPRODUCED" if failed else "fixed")
raise SystemExit(1 if failed else 0)
