"""Per-epoch checkpoints that survive a kill and a change of layer shapes.

A checkpoint is a folder `epoch-NNNNNN/` holding the model's architecture
(its Keras config, so a model whose layers shrank is rebuilt at its new
shapes), every model variable (weights, and the states of dropout seed
generators so the random stream continues exactly), the optimizer's config
and variables, the trainer's state and each callback's state. It is written
to a temporary folder and renamed into place, so a kill never leaves a half
checkpoint where `latest()` would find it.
"""

import json
import os
import pathlib
import shutil
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from keras_rank.errors import DataError

_PREFIX = "epoch-"


def _save_arrays(path: pathlib.Path, arrays: Sequence[np.ndarray]) -> None:
    np.savez(path, **{f"a{i:05d}": np.asarray(a) for i, a in enumerate(arrays)})


def _load_arrays(path: pathlib.Path) -> list[np.ndarray]:
    with np.load(path) as archive:
        return [archive[key] for key in sorted(archive.files)]


def _assign_all(variables: Sequence, values: Sequence[np.ndarray], what: str) -> None:
    if len(variables) != len(values):
        raise DataError(
            f"Checkpoint holds {len(values)} {what} variables; "
            f"the restored object has {len(variables)}."
        )
    for variable, value in zip(variables, values, strict=True):
        variable.assign(value)


class CheckpointManager:
    """Writes and reads the per-epoch checkpoints of one work directory.

    Args:
        directory: Folder of the checkpoints (created when missing).
        max_to_keep: How many of the newest checkpoints to keep.
    """

    def __init__(self, directory: str | os.PathLike, max_to_keep: int = 2):
        self.directory = pathlib.Path(directory)
        self.max_to_keep = max_to_keep

    def latest(self) -> pathlib.Path | None:
        """Returns the newest complete checkpoint folder, or None."""
        if not self.directory.is_dir():
            return None
        found = sorted(
            p
            for p in self.directory.iterdir()
            if p.name.startswith(_PREFIX) and (p / "state.json").is_file()
        )
        return found[-1] if found else None

    def save(
        self,
        epoch: int,
        model: keras.Model,
        optimizer: keras.optimizers.Optimizer,
        state: dict[str, Any],
        callback_states: Sequence[dict[str, Any]] = (),
    ) -> pathlib.Path:
        """Writes the checkpoint taken after `epoch` epochs (1-based count).

        Args:
            epoch: Number of epochs completed.
            model: The model being trained.
            optimizer: Its optimizer (built).
            state: JSON-able trainer state (history, step, wall time, ...).
            callback_states: One `Callback.get_state()` dict per callback.

        Returns:
            The checkpoint folder.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / f"{_PREFIX}{epoch:06d}"
        tmp = self.directory / f".tmp-{final.name}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        (tmp / "model.json").write_text(
            json.dumps(keras.saving.serialize_keras_object(model))
        )
        _save_arrays(tmp / "model_variables.npz", [v.numpy() for v in model.variables])
        (tmp / "optimizer.json").write_text(
            json.dumps(keras.optimizers.serialize(optimizer))
        )
        _save_arrays(
            tmp / "optimizer_variables.npz", [v.numpy() for v in optimizer.variables]
        )
        for i, cb_state in enumerate(callback_states):
            np.savez(tmp / f"callback_{i:03d}.npz", **cb_state)
        # state.json last: its presence marks the checkpoint as complete.
        (tmp / "state.json").write_text(json.dumps(state, indent=1))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        self._prune()
        return final

    def _prune(self) -> None:
        found = sorted(
            p for p in self.directory.iterdir() if p.name.startswith(_PREFIX)
        )
        for old in found[: -self.max_to_keep]:
            shutil.rmtree(old, ignore_errors=True)

    @staticmethod
    def restore_model(path: pathlib.Path) -> keras.Model:
        """Rebuilds the checkpointed model at its saved shapes, with its values."""
        model = keras.saving.deserialize_keras_object(
            json.loads((path / "model.json").read_text())
        )
        _assign_all(
            model.variables, _load_arrays(path / "model_variables.npz"), "model"
        )
        return model

    @staticmethod
    def restore_optimizer(
        path: pathlib.Path, variables: Sequence
    ) -> keras.optimizers.Optimizer:
        """Rebuilds the checkpointed optimizer on `variables`, with its state."""
        optimizer = keras.optimizers.deserialize(
            json.loads((path / "optimizer.json").read_text())
        )
        optimizer.build(variables)
        _assign_all(
            optimizer.variables,
            _load_arrays(path / "optimizer_variables.npz"),
            "optimizer",
        )
        return optimizer

    @staticmethod
    def restore_state(path: pathlib.Path) -> dict[str, Any]:
        """Returns the trainer state saved with the checkpoint."""
        return json.loads((path / "state.json").read_text())

    @staticmethod
    def restore_callback_states(path: pathlib.Path, count: int) -> list[dict[str, Any]]:
        """Returns the states of the first `count` callbacks."""
        states = []
        for i in range(count):
            file = path / f"callback_{i:03d}.npz"
            if not file.is_file():
                states.append({})
                continue
            with np.load(file) as archive:
                states.append({key: archive[key] for key in archive.files})
        return states
