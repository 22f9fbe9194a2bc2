"""keras_rank: Keras layers and trainers that shrink weight rank while training.

The entry points a user calls are attributes of the package::

    import keras_rank

    config = keras_rank.TrainConfig(model="lenet300", epochs=3)
    keras_rank.train_lc(config, keras_rank.LCConfig(lambdas=(2e-6,)), "runs/lc")

Importing the package registers every Keras-serializable class of keras_rank
(`FactorizedDense`, `FactorizedConv2D`, `LowRankDense`, `LowRankConv2D`), so
`keras.saving.load_model` reads a model that uses them after a plain
`import keras_rank`. The import stays cheap: it loads the layers and the
errors; every other entry point (the configs, ``train_*``, the export, the
analysis) is imported from its module the first time it is used.
"""

import importlib
from typing import Any

from keras_rank.core.errors import ConfigError, DataError, KerasRankError
from keras_rank.layers import (
    FactorizedConv2D,
    FactorizedDense,
    FactorState,
    LowRankConv2D,
    LowRankDense,
)

__version__ = "0.1.0"

# Entry points imported on first use: name -> module.
_LAZY = {
    # Training: the config, the engine and its extension points.
    "DataConfig": "keras_rank.data",
    "TrainConfig": "keras_rank.training",
    "train_and_evaluate": "keras_rank.training",
    "run_method": "keras_rank.training",
    "Trainer": "keras_rank.training",
    "Method": "keras_rank.training",
    "NoCompression": "keras_rank.training",
    "Callback": "keras_rank.training",
    "LossTerm": "keras_rank.training",
    "ModelRebuild": "keras_rank.training",
    # The methods: each one's config and run function.
    "DLRAConfig": "keras_rank.dlra",
    "train_dlra": "keras_rank.dlra",
    "LCConfig": "keras_rank.lc",
    "train_lc": "keras_rank.lc",
    "ProxConfig": "keras_rank.prox",
    "train_prox": "keras_rank.prox",
    # The same methods in the user's own model.fit.
    "DLRAFitCallback": "keras_rank.dlra",
    "LCFitCallback": "keras_rank.lc",
    "ProxFitCallback": "keras_rank.prox",
    # Shipping: plain layers, LiteRT files.
    "deployable_model": "keras_rank.export",
    "deployable_size": "keras_rank.export",
    "ExportConfig": "keras_rank.export",
    "export_litert": "keras_rank.export",
    "export_models": "keras_rank.export",
    # Where the redundancy is.
    "AnalysisConfig": "keras_rank.analysis.config",
    "analyze": "keras_rank.analysis.run",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'keras_rank' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "ConfigError",
    "DataError",
    "FactorState",
    "FactorizedConv2D",
    "FactorizedDense",
    "KerasRankError",
    "LowRankConv2D",
    "LowRankDense",
    *_LAZY,
]
