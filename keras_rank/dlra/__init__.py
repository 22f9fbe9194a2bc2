"""RaRe + dynamic low-rank approximation (Lee et al. 2021).

Modules: `rare` (the RaRe maths), `fusion` (fusion algebra on factor
states), `pair_search` (the cached most parallel pairs and RaRe on them),
`model_editor` (fusions into layers, rebuilds at compact shapes),
`callback` (the `DLRA` engine extensions and `DLRAConfig`), `run`
(`train_dlra`: configs into a work directory).
"""

from keras_rank.dlra.callback import DLRA, DLRAFitCallback
from keras_rank.dlra.config import L2_TARGETS, DLRAConfig
from keras_rank.dlra.pair_search import axis_vectors
from keras_rank.dlra.run import train_dlra

__all__ = [
    "DLRA",
    "DLRAFitCallback",
    "L2_TARGETS",
    "DLRAConfig",
    "axis_vectors",
    "train_dlra",
]
