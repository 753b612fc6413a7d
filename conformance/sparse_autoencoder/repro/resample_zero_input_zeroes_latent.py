"""sparse_autoencoder 1.10.0: resampling a dead neuron whose drawn input is exactly zero writes a
zero dictionary vector, a zero encoder row and bias 0, and reports the neuron as resampled
(RES-13: a zero direction leaves the latent unchanged and not resampled). The zero dictionary
vector then makes the decoder's gradient hook return NaN (parallel_grad_hook_nan_zero_vector.py).

activation_resampler/activation_resampler.py:493 (and :437): F.normalize(0) = 0 is used as is."""

import types

import numpy as np
import torch
import torch.optim.optimizer as _opt
import torch.serialization as _ser
import torch.types as _types

if not hasattr(_ser, "FILE_LIKE"):  # torch >= 2.6 renamed two names the library imports
    _ser.FILE_LIKE = _types.FileLike
if not hasattr(_opt, "params_t"):
    _opt.params_t = _opt.ParamsT
import sparse_autoencoder as sa

torch.manual_seed(0)
model = sa.SparseAutoencoder(
    sa.SparseAutoencoderConfig(n_input_features=2, n_learned_features=3, n_components=1)
)
before = {k: v.detach().clone() for k, v in model.named_parameters()}
resampler = sa.ActivationResampler(n_learned_features=3, resample_dataset_size=2)
resampler._collated_neuron_activity = torch.tensor([[5, 0, 5]])  # neuron 1 never fired: dead
resampler._n_activations_collated_since_last_resample = 10
store = sa.TensorActivationStore(max_items=2, n_neurons=2, n_components=1)
for _ in range(2):  # the inputs the resampler draws from: zero activation vectors
    store.append(torch.zeros(2), component_idx=0)
loss = sa.LossReducer(sa.LearnedActivationsL1Loss(0.001), sa.L2ReconstructionLoss())
updates = resampler.resample_dead_neurons(store, model, loss, train_batch_size=2)
optimizer = sa.AdamWithReset(
    model.parameters(), named_parameters=model.named_parameters(), has_components_dim=True
)
sa.Pipeline.update_parameters(types.SimpleNamespace(autoencoder=model, optimizer=optimizer), updates)

# RES-13: v = 0 has no direction, so neuron 1 keeps its parameters and is not resampled
expected_col = before["decoder.weight"][0, :, 1].numpy()
actual_col = model.decoder.weight.detach()[0, :, 1].numpy()
enc_before, enc_after = before["encoder.weight"][0, 1], model.encoder.weight.detach()[0, 1]
print(
    "expected: W_dec[:, 1] =", expected_col.tolist(), "W_enc[:, 1] =", enc_before.tolist(), "resampled = []"
)
print(
    "actual:   W_dec[:, 1] =",
    actual_col.tolist(),
    "W_enc[:, 1] =",
    enc_after.tolist(),
    "resampled =",
    updates[0].dead_neuron_indices.tolist(),
)
bug = bool(np.all(actual_col == 0) and 1 in updates[0].dead_neuron_indices.tolist())
print("BUG REPRODUCED" if bug else "fixed")
raise SystemExit(1 if bug else 0)
