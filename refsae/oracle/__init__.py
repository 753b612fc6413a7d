"""`refsae.oracle`: the executable definition of every SAE operation, NumPy float64 only.

This package never imports torch (NOT-4). Every function cites the spec clauses it defines.
"""

from refsae.conventions import Conventions
from refsae.oracle.constraints import remove_parallel_component, renormalise_rows
from refsae.oracle.forward import decode, decoder_directions, encode, forward, pre_activations
from refsae.oracle.gradients import Gradients, loss_gradients
from refsae.oracle.losses import reconstruction_loss, sparsity_loss, total_loss, total_variance
from refsae.oracle.metrics import dead_fraction, explained_variance, l0

__all__ = [
    "Conventions",
    "Gradients",
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
