"""`refsae.torch`: the SAE operations in PyTorch (CPU and CUDA; float64, float32, bfloat16, float16).

Module for module the twin of `refsae.oracle` (each module's `__all__` lists its public functions, all
of which this package re-exports), plus `model` (the `SAE` module) and `fast` (PERF-1 fast paths).
"""

from refsae.torch.auxk import *  # noqa: F403
from refsae.torch.batchtopk import *  # noqa: F403
from refsae.torch.constraints import *  # noqa: F403
from refsae.torch.dead import *  # noqa: F403
from refsae.torch.evaluation import *  # noqa: F403
from refsae.torch.folding import *  # noqa: F403
from refsae.torch.forward import *  # noqa: F403
from refsae.torch.gated import *  # noqa: F403
from refsae.torch.gradients import *  # noqa: F403
from refsae.torch.init import *  # noqa: F403
from refsae.torch.jumprelu import *  # noqa: F403
from refsae.torch.jumprelu_penalties import *  # noqa: F403
from refsae.torch.jumprelu_transcoder import *  # noqa: F403
from refsae.torch.losses import *  # noqa: F403
from refsae.torch.matryoshka import *  # noqa: F403
from refsae.torch.metrics import *  # noqa: F403
from refsae.torch.model import *  # noqa: F403
from refsae.torch.normalisation import *  # noqa: F403
from refsae.torch.optimizer import *  # noqa: F403
from refsae.torch.resample_update import *  # noqa: F403
from refsae.torch.resampling import *  # noqa: F403
from refsae.torch.sharded import *  # noqa: F403
from refsae.torch.topk import *  # noqa: F403
from refsae.torch.training import *  # noqa: F403
from refsae.torch.transcoder import *  # noqa: F403
from refsae.torch.transcoder_model import *  # noqa: F403
