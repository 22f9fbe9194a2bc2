"""The weights of a run's layers over training, for the analysis of its units.

:class:`UnitHistory` is an engine callback that writes, under
``workdir/unit_history/``:

* ``init.npz``: the unit matrix (units x inputs,
  `keras_rank.core.layer_matrices.unit_matrix`) of every Dense and Conv2D
  layer at initialisation, by layer name, for the spectra at init
  (`trainers.analyze`);
* ``<layer>/epoch_<e>.npy``: the unit matrix of each layer asked for
  (`TrainConfig.record_units`) at init (e = 0) and after each epoch e, for
  the cosine graph of its units over training.

Matrices are those of the model as it exports (`keras_rank.layers.deployable`): a
DLRA layer's ``P W' Q``, an LC low-rank layer's ``U V``. A layer that changes
shape during training (a fusion, a reload) is recorded at its shape of the
time. A resumed run keeps what was written and goes on from its epoch.
"""

import os
import pathlib

import numpy as np

from keras_rank.core.compressible import matrix_layer, matrix_layers
from keras_rank.core.layer_matrices import unit_matrix
from keras_rank.layers.deployable import deployable_model
from keras_rank.training.hooks import Callback

HISTORY_DIR = "unit_history"
"""The folder of the history inside a work directory."""

INIT_FILE = "init.npz"


def epoch_file(folder: pathlib.Path, layer: str, epoch: int) -> pathlib.Path:
    """Returns the file of `layer`'s unit matrix after `epoch` epochs."""
    return folder / layer / f"epoch_{epoch:04d}.npy"


class UnitHistory(Callback):
    """Writes unit matrices at init and after each epoch (chief only).

    Args:
        folder: The history folder (``workdir/unit_history``).
        layers: Names of the Dense/Conv2D layers recorded every epoch.
    """

    def __init__(self, folder: str | os.PathLike, layers: tuple[str, ...] = ()):
        self.folder = pathlib.Path(folder)
        self.layers = tuple(layers)

    def on_train_begin(self, trainer) -> None:
        """Checks the layer names; at epoch 0 writes the init matrices."""
        model = deployable_model(trainer.model)
        for name in self.layers:
            matrix_layer(model, name)
        if not trainer.is_chief or trainer.epochs_done:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        matrices = {
            layer.name: unit_matrix(layer.kernel).astype(np.float32)
            for layer in matrix_layers(model)
        }
        np.savez(self.folder / INIT_FILE, **matrices)
        self._record(model, 0)

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, float]) -> None:
        """Writes the recorded layers' matrices after this epoch."""
        if self.layers and trainer.is_chief:
            self._record(deployable_model(trainer.model), epoch + 1)

    def _record(self, model, epoch: int) -> None:
        for name in self.layers:
            path = epoch_file(self.folder, name, epoch)
            path.parent.mkdir(parents=True, exist_ok=True)
            matrix = unit_matrix(model.get_layer(name).kernel)
            np.save(path, matrix.astype(np.float32))


def load_initial_matrices(folder: str | os.PathLike) -> dict[str, np.ndarray]:
    """Returns the init unit matrices by layer name ({} if none were written)."""
    path = pathlib.Path(folder) / INIT_FILE
    if not path.is_file():
        return {}
    with np.load(path) as saved:
        return {name: saved[name].astype(np.float64) for name in saved.files}


def load_layer_history(
    folder: str | os.PathLike, layer: str
) -> list[tuple[int, np.ndarray]]:
    """Returns ``(epoch, unit matrix)`` of `layer` in epoch order ([] if none)."""
    files = sorted((pathlib.Path(folder) / layer).glob("epoch_*.npy"))
    return [
        (int(path.stem.split("_")[1]), np.load(path).astype(np.float64))
        for path in files
    ]


def recorded_layers(folder: str | os.PathLike) -> list[str]:
    """Returns the names of the layers with a recorded history, sorted."""
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        return []
    return sorted(
        p.name for p in folder.iterdir() if p.is_dir() and any(p.glob("*.npy"))
    )
