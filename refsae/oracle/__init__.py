"""`refsae.oracle`: the executable definition of every SAE operation, NumPy float64 only.

This package never imports torch (NOT-4). Every function cites the spec clauses it defines.
"""

from refsae.conventions import Conventions
from refsae.oracle.auxk import auxk_latents, auxk_loss, auxk_loss_gradients
from refsae.oracle.batchtopk_activation import (
    batchtopk,
    batchtopk_inference,
    batchtopk_loss_gradients,
    batchtopk_min_positive,
    batchtopk_total_loss,
    batchtopk_update_threshold,
)
from refsae.oracle.constraints import remove_parallel_component, renormalise_rows
from refsae.oracle.dead import dead_by_fire_fraction, dead_by_steps, fire_counts, update_steps_since_fired
from refsae.oracle.forward import decode, decoder_directions, encode, forward, pre_activations
from refsae.oracle.gated_activation import (
    gated_encode,
    gated_loss_gradients,
    gated_pre_activations,
    gated_total_loss,
)
from refsae.oracle.gradients import Gradients, loss_gradients
from refsae.oracle.init import b_dec_mean, geometric_median
from refsae.oracle.jumprelu_activation import jumprelu, jumprelu_loss_gradients, jumprelu_total_loss
from refsae.oracle.losses import reconstruction_loss, sparsity_loss, total_loss, total_variance
from refsae.oracle.metrics import dead_fraction, explained_variance, l0
from refsae.oracle.optimizer import AdamUpdate, adam_reset_latents, adam_step
from refsae.oracle.resample_update import resample_anthropic, resample_simple
from refsae.oracle.resampling import per_example_loss, resampling_probabilities, sample_examples
from refsae.oracle.topk_activation import (
    decode_sparse,
    topk,
    topk_encode,
    topk_loss_gradients,
    topk_select,
    topk_total_loss,
)
from refsae.oracle.training import training_step

__all__ = [
    "AdamUpdate",
    "Conventions",
    "Gradients",
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
    "sample_examples",
    "sparsity_loss",
    "topk",
    "topk_encode",
    "topk_loss_gradients",
    "topk_select",
    "topk_total_loss",
    "total_loss",
    "total_variance",
    "training_step",
    "update_steps_since_fired",
]
