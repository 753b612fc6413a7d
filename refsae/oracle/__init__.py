"""`refsae.oracle`: the executable definition of every SAE operation, NumPy float64 only.

This package never imports torch (NOT-4). Every function cites the spec clauses it defines. Each
module's `__all__` lists its public functions, all of which this package re-exports;
`refsae.torch.<module>` holds each one's twin, and `refsae.checking.rows.<module>` its rows.
"""

from refsae.conventions import Conventions as Conventions
from refsae.oracle.auxk import *  # noqa: F403
from refsae.oracle.batchtopk import *  # noqa: F403
from refsae.oracle.constraints import *  # noqa: F403
from refsae.oracle.dead import *  # noqa: F403
from refsae.oracle.evaluation import *  # noqa: F403
from refsae.oracle.folding import *  # noqa: F403
from refsae.oracle.forward import *  # noqa: F403
from refsae.oracle.gated import *  # noqa: F403
from refsae.oracle.gradients import *  # noqa: F403
from refsae.oracle.init import *  # noqa: F403
from refsae.oracle.jumprelu import *  # noqa: F403
from refsae.oracle.jumprelu_penalties import *  # noqa: F403
from refsae.oracle.jumprelu_transcoder import *  # noqa: F403
from refsae.oracle.losses import *  # noqa: F403
from refsae.oracle.matryoshka import *  # noqa: F403
from refsae.oracle.metrics import *  # noqa: F403
from refsae.oracle.normalisation import *  # noqa: F403
from refsae.oracle.optimizer import *  # noqa: F403
from refsae.oracle.resample_update import *  # noqa: F403
from refsae.oracle.resampling import *  # noqa: F403
from refsae.oracle.sharded import *  # noqa: F403
from refsae.oracle.topk import *  # noqa: F403
from refsae.oracle.training import *  # noqa: F403
from refsae.oracle.transcoder import *  # noqa: F403
