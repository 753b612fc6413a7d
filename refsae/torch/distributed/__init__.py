"""Training past one device on `torch.distributed` (specs/distributed.md).

`data_parallel_train_step_` is `train_step_` on one slice of the batch per process: the processes'
gradients are summed so that every replica takes the oracle's step on the whole batch;
`data_parallel_resample_` is the resampling event on the whole batch. `latent_sharded_train_step_` is
the step of one slice of the latents per process (`latent_shard`, `gather_latent_shards`), with an
exact global TopK or BatchTopK, alone or in a data × shard grid (`grid_groups`). The helpers reduce
the dead-latent statistics and check that the processes agree before they communicate. Launch with
`torchrun` (README.md) or any `torch.distributed.init_process_group`; gloo on CPU, nccl on CUDA.
"""

from refsae.torch.distributed.agreement import check_agreement, replica_fingerprint
from refsae.torch.distributed.auxk import ShardedAuxK
from refsae.torch.distributed.data_parallel import (
    data_parallel_fire_counts,
    data_parallel_steps_since_fired,
    data_parallel_train_step_,
    whole_batch_share,
)
from refsae.torch.distributed.latent_sharded import (
    gather_latent_shards,
    grid_groups,
    latent_shard,
    latent_sharded_train_step_,
)
from refsae.torch.distributed.resampling import (
    data_parallel_chosen_inputs,
    data_parallel_resample_,
    data_parallel_resampling_probabilities,
)

__all__ = [
    "ShardedAuxK",
    "check_agreement",
    "data_parallel_chosen_inputs",
    "data_parallel_fire_counts",
    "data_parallel_resample_",
    "data_parallel_resampling_probabilities",
    "data_parallel_steps_since_fired",
    "data_parallel_train_step_",
    "gather_latent_shards",
    "grid_groups",
    "latent_shard",
    "latent_sharded_train_step_",
    "replica_fingerprint",
    "whole_batch_share",
]
