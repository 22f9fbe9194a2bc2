"""Per-epoch checkpoints that survive a kill and a change of layer shapes.

A checkpoint is a folder `epoch-NNNNNN/` holding the model's architecture
(its Keras config, so a model whose layers shrank is rebuilt at its new
shapes), every model variable (weights, and the states of dropout seed
generators so the random stream continues exactly), the optimizer's config
and variables, the trainer's state and each callback's state. It is written
to a temporary folder and renamed into place, so a kill never leaves a half
checkpoint where `latest()` would find it.

Variables are stored in `model_variables.npz` and `optimizer_variables.npz`
under a key each and restored by key, never by position, with every shape
checked before anything is assigned. A key names the layer that owns the
variable and the variable:

* a weight: `{layer}/{weight}` (`dense_1/kernel`), the last two parts of its
  Keras path (`add_weight` creates it in its layer's name scope);
* a seed-generator state: `{layer}/seed_generator_state` for the layer that
  holds the generator (`dropout_1/seed_generator_state`; `_1`, `_2`, ...
  appended for a layer's second, third, ... generator, in creation order);
* an optimizer slot: `{key of its variable}/{slot}`
  (`dense_1/kernel/momentum`); the optimizer's own variables: their names
  (`iteration`, `learning_rate`).

Whole Keras paths are not used because they are not stable between the run
that saves and the one that restores: a generator is named
`seed_generator_N` from a process-wide counter, so its state's path
(`seed_generator_7/seed_generator_state`) depends on how many generators the
process made before; a Sequential model's weights are `mlp/dense/kernel`
when it built them itself but `dense/kernel` once deserialized; optimizers
are named `adam`, `adam_1`, ... in creation order. A model or optimizer in
which two variables get one key (nested models reusing a layer name) cannot
be checkpointed (`ConfigError`); a checkpoint that does not fit the object
it is restored into is refused with one `DataError` that names the file and
every differing variable with both shapes.
"""

import json
import os
import pathlib
import shutil
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import keras
import numpy as np

from keras_rank.core.errors import ConfigError, DataError
from keras_rank.core.surgery import optimizer_slots

_PREFIX = "epoch-"
_SEED_STATE = "seed_generator_state"


def _layer_key(variable: keras.Variable) -> str:
    """Returns `{owning layer}/{variable}`, the end of the variable's path."""
    return "/".join(variable.path.split("/")[-2:])


def _seed_state_keys(layer: keras.layers.Layer, keys: dict[int, str]) -> None:
    """Adds `{id(state): key}` for the seed generators of `layer` and below.

    Keras keeps no public list of a layer's own seed generators and
    sublayers; `_seed_generators` and `_layers` are the lists its own
    `Layer.variables` walks.
    """
    for i, generator in enumerate(layer._seed_generators):
        suffix = f"_{i}" if i else ""
        keys.setdefault(id(generator.state), f"{layer.name}/{_SEED_STATE}{suffix}")
    for sublayer in layer._layers:
        _seed_state_keys(sublayer, keys)


def _unique(pairs: Iterable[tuple[str, keras.Variable]], what: str) -> dict:
    keyed = {}
    for key, variable in pairs:
        if key in keyed:
            raise ConfigError(
                f"Two {what} variables have the checkpoint key '{key}' (owning "
                "layer/variable); checkpoints store variables by it, so layer "
                "names must be unique."
            )
        keyed[key] = variable
    return keyed


def model_variables(model: keras.Model) -> dict[str, keras.Variable]:
    """Returns every variable of `model` under its checkpoint key.

    Args:
        model: A built model.

    Returns:
        `{key: variable}` in `model.variables` order (keys: module docstring).

    Raises:
        ConfigError: Two variables have the same key.
    """
    seed_keys: dict[int, str] = {}
    _seed_state_keys(model, seed_keys)
    return _unique(
        ((seed_keys.get(id(v)) or _layer_key(v), v) for v in model.variables),
        "model",
    )


def optimizer_variables(
    optimizer: keras.optimizers.Optimizer, variables: Sequence[keras.Variable]
) -> dict[str, keras.Variable]:
    """Returns every variable of a built optimizer under its checkpoint key.

    Args:
        optimizer: An optimizer built on `variables`.
        variables: The model variables it updates.

    Returns:
        `{key: variable}` in `optimizer.variables` order: a slot under
        `{key of its variable}/{slot}`, any other variable under its name.

    Raises:
        ConfigError: Two variables have the same key.
    """
    variable_keys = {variable.path: _layer_key(variable) for variable in variables}
    slot_keys = {
        id(slot): f"{variable_keys[path]}/{slot_name}"
        for path, slots in optimizer_slots(optimizer, variables).items()
        for slot_name, slot in slots.items()
    }
    return _unique(
        ((slot_keys.get(id(v)) or v.name, v) for v in optimizer.variables),
        "optimizer",
    )


def _save_variables(
    file: pathlib.Path, variables: Mapping[str, keras.Variable]
) -> None:
    np.savez(file, **{key: np.asarray(v.numpy()) for key, v in variables.items()})


def _describe(key: str, saved: tuple | None, current: tuple | None, what: str) -> str:
    if saved is None:
        return f"'{key}' (shape {current}) is missing from the checkpoint"
    if current is None:
        return f"'{key}' (shape {saved}) is in the checkpoint but not in the {what}"
    return f"'{key}' has shape {saved} in the checkpoint and {current} in the {what}"


def _restore_variables(
    file: pathlib.Path, variables: Mapping[str, keras.Variable], what: str
) -> None:
    """Assigns each variable the array stored under its key, shapes checked.

    Raises:
        DataError: A key is missing on either side or a shape differs; the
            message names the file and lists every such variable with both
            shapes. Nothing is assigned then.
    """
    with np.load(file) as archive:
        values = {key: archive[key] for key in archive.files}
    mismatches = []
    for key in sorted(values.keys() | variables.keys()):
        saved = values[key].shape if key in values else None
        current = tuple(variables[key].shape) if key in variables else None
        if saved != current:
            mismatches.append(_describe(key, saved, current, what))
    if mismatches:
        raise DataError(
            f"Checkpoint file {file} does not match the {what} being restored: "
            + "; ".join(mismatches)
            + "."
        )
    for key, variable in variables.items():
        variable.assign(values[key])


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
        _save_variables(tmp / "model_variables.npz", model_variables(model))
        (tmp / "optimizer.json").write_text(
            json.dumps(keras.optimizers.serialize(optimizer))
        )
        _save_variables(
            tmp / "optimizer_variables.npz",
            optimizer_variables(optimizer, model.trainable_variables),
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
        """Rebuilds the checkpointed model at its saved shapes, with its values.

        Raises:
            DataError: The stored variables do not match the rebuilt model's
                (a key missing on either side, or another shape).
        """
        model = keras.saving.deserialize_keras_object(
            json.loads((path / "model.json").read_text())
        )
        _restore_variables(
            path / "model_variables.npz", model_variables(model), "model"
        )
        return model

    @staticmethod
    def restore_optimizer(
        path: pathlib.Path, variables: Sequence
    ) -> keras.optimizers.Optimizer:
        """Rebuilds the checkpointed optimizer on `variables`, with its state.

        Slots are matched to `variables` by their owning layer and name, so
        the order of `variables` does not matter.

        Raises:
            DataError: The stored optimizer variables do not match the slots
                built for `variables` (a key missing on either side, or
                another shape).
        """
        optimizer = keras.optimizers.deserialize(
            json.loads((path / "optimizer.json").read_text())
        )
        optimizer.build(variables)
        _restore_variables(
            path / "optimizer_variables.npz",
            optimizer_variables(optimizer, variables),
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


def checkpointed_time_s(folder: str | os.PathLike) -> float:
    """Returns the training time saved by the runs under `folder`, in seconds.

    A run started again after a kill resumes from its newest checkpoint and
    goes on counting from the training time saved there; this sums that time
    over every checkpoint folder found below `folder` (0 when there is none).
    Work done after a run's newest checkpoint is not in it: the resumed run
    does it again and counts it then.
    """
    directories = {
        path.parent.parent
        for path in pathlib.Path(folder).rglob(f"{_PREFIX}*/state.json")
    }
    return sum(
        CheckpointManager.restore_state(CheckpointManager(directory).latest())[
            "wall_time_s"
        ]
        for directory in sorted(directories)
    )
