"""`refsae.torch`: the SAE operations in PyTorch (CPU and CUDA; float64, float32, bfloat16, float16)."""

from refsae.torch.auxk import auxk_latents, auxk_loss, auxk_loss_gradients
from refsae.torch.batchtopk_activation import (
    batchtopk,
    batchtopk_inference,
    batchtopk_loss_gradients,
    batchtopk_min_positive,
    batchtopk_total_loss,
    batchtopk_update_threshold,
)
from refsae.torch.dead import dead_by_fire_fraction, dead_by_steps, fire_counts, update_steps_since_fired
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
from refsae.torch.gated_activation import (
    gated_encode,
    gated_loss_gradients,
    gated_pre_activations,
    gated_total_loss,
)
from refsae.torch.init import b_dec_mean, geometric_median
from refsae.torch.jumprelu_activation import jumprelu, jumprelu_loss_gradients, jumprelu_total_loss
from refsae.torch.model import SAE, SAEConfig
from refsae.torch.optimizer import adam_reset_latents, adam_step, reset_adam_latents_
from refsae.torch.resampling import per_example_loss, resampling_probabilities, sample_examples
from refsae.torch.topk_activation import (
    decode_sparse,
    topk,
    topk_encode_sparse,
    topk_loss_gradients,
    topk_select,
    topk_total_loss,
)
from refsae.torch.training import resample_anthropic, resample_simple, train_step_, training_step

__all__ = [
    "SAE",
    "SAEConfig",
    "adam_reset_latents",
    "adam_step",
    "auxk_latents",
    "auxk_loss",
    "auxk_loss_gradients",
    "b_dec_mean",
    "batchtopk",
    "batchtopk_inference",
    "batchtopk_loss_gradients",
    "batchtopk_min_positive",
    "batchtopk_total_loss",
    "batchtopk_update_threshold",
    "dead_by_fire_fraction",
    "dead_by_steps",
    "dead_fraction",
    "decode",
    "decode_sparse",
    "decoder_directions",
    "encode",
    "explained_variance",
    "fire_counts",
    "forward",
    "gated_encode",
    "gated_loss_gradients",
    "gated_pre_activations",
    "gated_total_loss",
    "geometric_median",
    "jumprelu",
    "jumprelu_loss_gradients",
    "jumprelu_total_loss",
    "l0",
    "loss_gradients",
    "per_example_loss",
    "pre_activations",
    "reconstruction_loss",
    "remove_parallel_component",
    "renormalise_rows",
    "resample_anthropic",
    "resample_simple",
    "resampling_probabilities",
    "reset_adam_latents_",
    "sample_examples",
    "sparsity_loss",
    "topk",
    "topk_encode_sparse",
    "topk_loss_gradients",
    "topk_select",
    "topk_total_loss",
    "total_loss",
    "total_variance",
    "train_step_",
    "training_step",
    "update_steps_since_fired",
]
