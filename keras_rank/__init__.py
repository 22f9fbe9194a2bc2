"""keras_rank: Keras layers and trainers that shrink weight rank while training.

Importing the package registers every Keras-serializable class of keras_rank
(`FactorizedDense`, `FactorizedConv2D`, `LowRankDense`, `LowRankConv2D`), so
`keras.saving.load_model` reads a model that uses them after a plain
`import keras_rank`. The import stays
cheap: it loads the layers and the errors, not the data, training, method or
plotting modules (import those as `keras_rank.training`, `keras_rank.dlra`,
...).
"""

from keras_rank.core.errors import ConfigError, DataError, KerasRankError
from keras_rank.layers import (
    FactorizedConv2D,
    FactorizedDense,
    FactorState,
    LowRankConv2D,
    LowRankDense,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DataError",
    "FactorState",
    "FactorizedConv2D",
    "FactorizedDense",
    "KerasRankError",
    "LowRankConv2D",
    "LowRankDense",
]
