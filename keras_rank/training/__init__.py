"""The shared training engine: config, loop, hooks, checkpoints, strategies."""

from keras_rank.training.config import STRATEGIES, TrainConfig
from keras_rank.training.engine import Trainer, TrainingDivergedError
from keras_rank.training.hooks import (
    Callback,
    GradientTransform,
    LossTerm,
    ModelRebuild,
)
from keras_rank.training.run import train_and_evaluate

__all__ = [
    "STRATEGIES",
    "Callback",
    "GradientTransform",
    "LossTerm",
    "ModelRebuild",
    "TrainConfig",
    "Trainer",
    "TrainingDivergedError",
    "train_and_evaluate",
]
