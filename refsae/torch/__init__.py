"""`refsae.torch`: the SAE operations in PyTorch (CPU and CUDA; float64, float32, bfloat16, float16)."""

from refsae.torch.functional import (
    dead_fraction,
    decode,
    decoder_directions,
    encode,
    explained_variance,
    forward,
    l0,
    loss_gradients,
    pre_activations,
    reconstruction_loss,
    remove_parallel_component,
    renormalise_rows,
    sparsity_loss,
    total_loss,
    total_variance,
)
from refsae.torch.model import SAE, SAEConfig

__all__ = [
    "SAE",
    "SAEConfig",
    "dead_fraction",
    "decode",
    "decoder_directions",
    "encode",
    "explained_variance",
    "forward",
    "l0",
    "loss_gradients",
    "pre_activations",
    "reconstruction_loss",
    "remove_parallel_component",
    "renormalise_rows",
    "sparsity_loss",
    "total_loss",
    "total_variance",
]
