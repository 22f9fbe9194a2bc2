"""The trained model as it ships, and test metrics of models outside a run."""

import dataclasses
from typing import Any

import keras

from keras_rank import data as data_lib
from keras_rank.layers.deployable import deployable_model, deployable_size
from keras_rank.training.config import TrainConfig
from keras_rank.training.engine import Trainer
from keras_rank.training.strategy import make_strategy

DEPLOYABLE_COUNTED_FROM = "plain Keras layers of the exported model"


@dataclasses.dataclass(frozen=True)
class Deployable:
    """The trained model as it ships, and its size.

    Attributes:
        model: `deployable_model(trainer.model)`: plain Keras layers only
            (the trained model itself when it has no others).
        size: Its ``params``, ``flops_mac1``, ``flops_mac2`` and
            ``counted_from``: the ``deployable`` entry of results.json.
    """

    model: keras.Model
    size: dict[str, Any]

    @classmethod
    def of(cls, model: keras.Model) -> "Deployable":
        """Returns the deployable form of `model`, built once, and its size."""
        plain = deployable_model(model)
        return cls(
            plain, {**deployable_size(plain), "counted_from": DEPLOYABLE_COUNTED_FROM}
        )


class ModelEvaluator:
    """Evaluates models on a run's test or validation split, as its trainer would.

    Args:
        config: The run's configuration (data, splits, strategy, batch size).
        splits: The run's splits when they are open already; None opens
            them from `config`.

    Attributes:
        splits: The run's data splits.
    """

    def __init__(self, config: TrainConfig, splits: data_lib.DataSplits | None = None):
        self._config = config
        self.splits = config.load_splits() if splits is None else splits

    def _metrics(
        self, model: keras.Model, source: data_lib.ExampleSource
    ) -> dict[str, float]:
        """Returns the loss and accuracy of `model` (left unchanged) on `source`."""
        strategy = make_strategy(self._config.strategy, self._config.cpu_devices)
        with strategy.scope():
            copy = keras.models.clone_model(model)
        copy.set_weights(model.get_weights())
        trainer = Trainer(copy, keras.optimizers.SGD(), strategy=strategy, verbose=0)
        return trainer.evaluate(source, batch_size=max(self._config.batch_size, 256))

    def test_metrics(self, model: keras.Model) -> dict[str, float]:
        """Returns the test loss and accuracy of `model` (left unchanged)."""
        return self._metrics(model, self.splits.test)

    def validation_accuracy(self, model: keras.Model) -> float | None:
        """Returns the validation accuracy of `model`; None without a split."""
        if self.splits.validation is None:
            return None
        return self._metrics(model, self.splits.validation)["accuracy"]

    def test_error(self, model: keras.Model) -> float:
        """Returns the test error (%) of `model`."""
        return 100.0 * (1.0 - self.test_metrics(model)["accuracy"])
