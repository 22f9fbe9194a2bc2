"""Test metrics of models outside a training run (after post-processing, say)."""

import keras

from keras_rank import data as data_lib
from keras_rank.training.config import TrainConfig
from keras_rank.training.engine import Trainer
from keras_rank.training.strategy import make_strategy


class ModelEvaluator:
    """Evaluates models on the test split of a run's data, as its trainer would.

    Args:
        config: The run's configuration (data, splits, strategy, batch size).

    Attributes:
        splits: The run's data splits.
    """

    def __init__(self, config: TrainConfig):
        self._config = config
        self.splits = data_lib.load_splits(
            config.data,
            validation_fraction=config.validation_fraction,
            split_seed=config.split_seed,
            train_split=config.train_split,
            test_split=config.test_split,
        )

    def test_metrics(self, model: keras.Model) -> dict[str, float]:
        """Returns the test loss and accuracy of `model` (left unchanged)."""
        strategy = make_strategy(self._config.strategy, self._config.cpu_devices)
        with strategy.scope():
            copy = keras.models.clone_model(model)
        copy.set_weights(model.get_weights())
        trainer = Trainer(copy, keras.optimizers.SGD(), strategy=strategy, verbose=0)
        return trainer.evaluate(
            self.splits.test, batch_size=max(self._config.batch_size, 256)
        )

    def test_error(self, model: keras.Model) -> float:
        """Returns the test error (%) of `model`."""
        return 100.0 * (1.0 - self.test_metrics(model)["accuracy"])
