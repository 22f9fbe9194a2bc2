"""Extension points of the training engine.

Methods plug into `keras_rank.training.Trainer` through three kinds of
object, never by editing the engine:

* `LossTerm`: a scalar computed from the model's weights inside the compiled
  train step and added to the task loss (RaRe, factor L2, LC penalties).
* `GradientTransform`: a function of the gradients inside the train step
  (gradient noise).
* `Callback`: eager code run between steps and between epochs. A callback may
  return a `ModelRebuild` to replace the model by one with other layer shapes
  (fusion, rank truncation); the engine carries the optimizer state of kept
  units over and traces the train step again. Per-epoch work such as an SVD
  step goes in `on_epoch_end`.
"""

import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import keras
import numpy as np
import tensorflow as tf

if TYPE_CHECKING:
    from keras_rank.training.engine import Trainer

SlotMap = Callable[[np.ndarray], np.ndarray]


class LossTerm(Protocol):
    """A loss term computed from the model inside the compiled train step.

    Attributes:
        name: Key of the term's value in the logs and the history.
    """

    name: str

    def __call__(self, model: keras.Model) -> tf.Tensor:
        """Returns the term's scalar value (already multiplied by its weight)."""


class GradientTransform(Protocol):
    """Changes the gradients inside the compiled train step, before the update."""

    def __call__(
        self, grads: list[tf.Tensor], variables: list, step: tf.Tensor
    ) -> list[tf.Tensor]:
        """Returns new gradients; `step` is the optimizer's iteration count."""


@dataclasses.dataclass(frozen=True)
class ModelRebuild:
    """A request to replace the model being trained.

    Attributes:
        model: The new model, built, holding the weights it should start with.
            Layers that are kept must keep their names, so that variables are
            matched by path.
        slot_maps: For a trainable variable of the new model (by path) whose
            shape changed, a function from the old variable's optimizer slot
            value (e.g. Adam's momentum) to the new slot value; typically the
            same index selection that produced the new weight. Variables of
            unchanged shape keep their slots as they are; variables whose path
            is new start with zero slots.
    """

    model: keras.Model
    slot_maps: Mapping[str, SlotMap] = dataclasses.field(default_factory=dict)


class Callback:
    """Eager hooks around the compiled train step; override what you need.

    `logs` dicts hold Python floats; a callback may add entries to the logs of
    `on_epoch_end`, which are then written to the history, TensorBoard and
    results.json.

    A callback ends training early by setting `trainer.stop_training = True`
    (in `on_train_begin` or an epoch hook): `fit` returns after the current
    epoch and its checkpoint. A resumed run starts with the flag cleared, so a
    callback that stopped must set it again from its restored state.
    """

    def on_train_begin(self, trainer: "Trainer") -> None:
        """Called once before the first epoch of this process."""

    def on_epoch_begin(self, trainer: "Trainer", epoch: int) -> None:
        """Called before epoch `epoch` (0-based)."""

    def on_step_end(
        self, trainer: "Trainer", step: int, logs: dict[str, float]
    ) -> ModelRebuild | None:
        """Called after each train step; may return a `ModelRebuild`."""

    def on_epoch_end(
        self, trainer: "Trainer", epoch: int, logs: dict[str, float]
    ) -> ModelRebuild | None:
        """Called after an epoch and its validation; may return a `ModelRebuild`."""

    def on_train_end(self, trainer: "Trainer") -> None:
        """Called once after the last epoch."""

    def get_state(self) -> dict[str, Any]:
        """Returns state to checkpoint: numpy arrays and Python scalars."""
        return {}

    def set_state(self, state: dict[str, Any]) -> None:
        """Restores what `get_state` returned, when a run resumes."""
