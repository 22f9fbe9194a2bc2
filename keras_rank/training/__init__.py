"""The shared training engine: config, loop, hooks, checkpoints, strategies."""

from keras_rank.training.config import STRATEGIES, TrainConfig
from keras_rank.training.engine import Trainer, TrainingDivergedError
from keras_rank.training.hooks import (
    Callback,
    GradientTransform,
    LossTerm,
    ModelRebuild,
)
from keras_rank.training.method import Method, MethodBase, NoCompression, Run
from keras_rank.training.run import run_method, train_and_evaluate

__all__ = [
    "STRATEGIES",
    "Callback",
    "GradientTransform",
    "LossTerm",
    "Method",
    "MethodBase",
    "ModelRebuild",
    "NoCompression",
    "Run",
    "TrainConfig",
    "Trainer",
    "TrainingDivergedError",
    "run_method",
    "train_and_evaluate",
]
