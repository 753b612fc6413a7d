"""sparse_autoencoder 1.10.0: resampling a component in which every neuron is dead raises
ValueError instead of resampling them (RES-14: with no live latent the encoder scale is
encoder_scale * 1 = 0.2). Two messages, depending on the other components:
- no neuron fired in any component: "Cannot get dead neuron indices without neuron activity."
  (activation_resampler/activation_resampler.py:191, which takes "all counts 0" for "nothing
  collated yet");
- another component has activity: "No alive neurons found." (activation_resampler.py:413)."""

import torch
import torch.optim.optimizer as _opt
import torch.serialization as _ser
import torch.types as _types

if not hasattr(_ser, "FILE_LIKE"):  # torch >= 2.6 renamed two names the library imports
    _ser.FILE_LIKE = _types.FileLike
if not hasattr(_opt, "params_t"):
    _opt.params_t = _opt.ParamsT
import sparse_autoencoder as sa


def resample(activity):
    """resample_dead_neurons over a window of 10 activations with the given fire counts."""
    n_comp, d_sae = activity.shape
    torch.manual_seed(0)
    config = sa.SparseAutoencoderConfig(n_input_features=2, n_learned_features=d_sae, n_components=n_comp)
    model = sa.SparseAutoencoder(config)
    resampler = sa.ActivationResampler(n_learned_features=d_sae, n_components=n_comp, resample_dataset_size=4)
    resampler._collated_neuron_activity = activity
    resampler._n_activations_collated_since_last_resample = 10
    store = sa.TensorActivationStore(max_items=4, n_neurons=2, n_components=n_comp)
    for c in range(n_comp):
        store.extend(torch.randn(4, 2), component_idx=c)
    loss = sa.LossReducer(sa.LearnedActivationsL1Loss(0.001), sa.L2ReconstructionLoss())
    try:
        updates = resampler.resample_dead_neurons(store, model, loss, train_batch_size=4)
        return "resampled " + str([u.dead_neuron_indices.tolist() for u in updates])
    except ValueError as error:
        return f"ValueError: {error}"


# RES-14: every dead neuron is resampled (encoder rows of norm 0.2 * 1 where no neuron is alive)
print("expected: resampled [[0, 1]]  |  resampled [[0, 1], [1]]")
a = resample(torch.tensor([[0, 0]]))  # one component, both neurons dead
b = resample(torch.tensor([[0, 0], [3, 0]]))  # component 0 all dead, component 1 has a live one
print("actual:  ", a, " | ", b)
bug = a.startswith("ValueError") or b.startswith("ValueError")
print("BUG REPRODUCED" if bug else "fixed")
raise SystemExit(1 if bug else 0)
