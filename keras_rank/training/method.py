"""The one surface every compression method shows the engine (like NNCF's API).

A `Method` says, for one training run, how the model is prepared (e.g.
factorized), what the train step adds (loss terms, gradient transforms),
what runs between steps and epochs (engine callbacks), which of its settings
define the run (saved and checked on resume), and what it reports once the
run is over. `keras_rank.training.run.run_method` drives any method and is
the only caller of the engine for one; code that drives methods (trainers,
the tuner, reports) never asks which method it holds.

A method's report receives a `Run`: the trainer, the deployable (plain
Keras) form of the trained model, its test metrics, the work directory and
an evaluator of other models (post-processed ones) on the same test split.
"""

import dataclasses
import pathlib
from collections.abc import Sequence
from typing import Any, Protocol

import keras

from keras_rank.training.config import TrainConfig
from keras_rank.training.engine import Trainer
from keras_rank.training.evaluation import Deployable, ModelEvaluator
from keras_rank.training.hooks import Callback, GradientTransform, LossTerm


@dataclasses.dataclass(frozen=True)
class Run:
    """A finished training run, as a method's report sees it.

    Attributes:
        config: The run's training configuration.
        trainer: The trainer (its model, history, strategy).
        deployable: The trained model in plain Keras layers, and its size.
        test: The trained model's test ``loss`` and ``accuracy``.
        workdir: The run's work directory.
        evaluator: Tests other models on the run's test split, as the
            trainer would.
    """

    config: TrainConfig
    trainer: Trainer
    deployable: Deployable
    test: dict[str, float]
    workdir: pathlib.Path
    evaluator: ModelEvaluator

    @property
    def is_chief(self) -> bool:
        """Whether this process writes files (the chief of a cluster does)."""
        return self.trainer.is_chief


class Method(Protocol):
    """A compression method, seen by the engine.

    Attributes:
        name: Its name: the key of its entry in results.json ("dlra", ...).
        config: Its frozen settings (a config dataclass), or None.
    """

    name: str
    config: Any

    def settings(self) -> dict[str, Any] | None:
        """Returns the settings that define the run (config.json's "method")."""

    def prepare_model(self, model: keras.Model) -> keras.Model:
        """Returns the model to train made from the initial one (e.g. factorized).

        Not called when a run resumes: the checkpoint holds the model.
        """

    def loss_terms(self) -> Sequence[LossTerm]:
        """Returns the terms the train step adds to the task loss."""

    def gradient_transforms(self) -> Sequence[GradientTransform]:
        """Returns the transforms the train step applies to the gradients."""

    def callbacks(self) -> Sequence[Callback]:
        """Returns the engine callbacks of the run."""

    def report(self, run: Run) -> dict[str, Any]:
        """Returns the method's entries of results.json, after training.

        Runs on every worker of a cluster; only the chief (`run.is_chief`)
        writes files.
        """


class MethodBase:
    """A `Method` that changes nothing: subclasses override what they add.

    Every hook defaults to plain training (the model as it is, no loss
    term, no gradient transform, no callback, no settings, no report).
    """

    name = "baseline"
    config = None

    def settings(self) -> dict[str, Any] | None:
        """Returns None: no settings of its own."""
        return None

    def prepare_model(self, model: keras.Model) -> keras.Model:
        """Returns `model` unchanged."""
        return model

    def loss_terms(self) -> Sequence[LossTerm]:
        """Returns no loss term."""
        return ()

    def gradient_transforms(self) -> Sequence[GradientTransform]:
        """Returns no gradient transform."""
        return ()

    def callbacks(self) -> Sequence[Callback]:
        """Returns no callback."""
        return ()

    def report(self, run: Run) -> dict[str, Any]:
        """Returns no entries."""
        return {}


class NoCompression(MethodBase):
    """The method that trains the model as it is: the baseline."""
