"""`train_prox`: compression-aware training, then one decomposition per energy.

On top of `run_method`'s outputs the work directory gets, per energy e of
`ProxConfig.energies`, ``energy_<e>/model_lowrank.keras`` (zero units
removed, every layer split at e % energy where that is cheaper),
``energy_<e>/model_plain.keras`` (the same in plain Keras layers, for
export) and ``energy_<e>/results.json`` (its summary block, then its
entry); ``spectra.png`` (each layer's singular values when training began
and at its end); ``tradeoff.png`` (test accuracy against exported
parameters per energy); and a ``prox`` section in results.json.
"""

import dataclasses
import json
import os
import pathlib
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from keras_rank import plots
from keras_rank.core.compressible import compressible_layers
from keras_rank.core.errors import ConfigError
from keras_rank.core.layer_matrices import layer_matrix
from keras_rank.layers.deployable import deployable_model, deployable_size
from keras_rank.layers.latency import LatencyTable
from keras_rank.prox import decompose, operators
from keras_rank.prox.callback import Prox
from keras_rank.prox.config import ProxConfig
from keras_rank.training import MethodBase, Run, TrainConfig, run_method
from keras_rank.training.evaluation import ModelEvaluator
from keras_rank.training.summary import summary_block


def final_spectra(model: keras.Model, names: list[str]) -> dict[str, np.ndarray]:
    """Returns the singular values of the named layers' matrices in `model`."""
    spectra = {}
    for name in names:
        matrix = layer_matrix(model.get_layer(name))
        result = operators.soft_threshold_singular_values(matrix, 0.0, name)
        spectra[name] = keras.ops.convert_to_numpy(result.singular_values)
    return spectra


def _energy_dir(path: pathlib.Path, energy: float) -> pathlib.Path:
    return path / f"energy_{energy:g}"


def post_process(
    model: keras.Model,
    energies: tuple[float, ...],
    evaluator: ModelEvaluator,
    path: pathlib.Path | None,
    criterion: str = "storage",
    latency: LatencyTable | None = None,
    rank_multiple: int = 1,
) -> dict[str, Any]:
    """Removes zero units, decomposes at every energy, tests each result.

    Args:
        model: The trained model.
        energies: Energies (%) of the decompositions.
        evaluator: Tests the models.
        path: Where each energy's models are saved; None saves nothing.
        criterion: What a split must lower (`decompose.decompose`).
        latency: The measured latencies, needed by the latency criterion.
        rank_multiple: Ranks are its multiples or a layer's full rank.

    Returns:
        ``{"zero_units": [...], "energies": [...]}``: per layer what unit
        removal did; per energy the test accuracy, the exported (plain)
        model's params and FLOPs, its validation accuracy (None without a
        validation split), and per layer the rank and sizes. Both
        are empty for a model without Dense/Conv2D layers left (a reloaded
        net that is low-rank throughout).
    """
    if not compressible_layers(model, required=False):
        # A reloaded net whose every layer is already low-rank.
        return {"zero_units": [], "energies": []}
    _, removals = decompose.remove_zero_units(model)
    entries = []
    for energy in energies:
        compact, layers = decompose.decompose(
            model,
            energy,
            criterion=criterion,
            latency=latency,
            rank_multiple=rank_multiple,
        )
        size = deployable_size(compact)
        entries.append(
            {
                "energy": energy,
                "test_accuracy": evaluator.test_metrics(compact)["accuracy"],
                "val_accuracy": evaluator.validation_accuracy(compact),
                **size,
                "layers": [layer.as_dict() for layer in layers],
            }
        )
        if path is not None:
            folder = _energy_dir(path, energy)
            folder.mkdir(parents=True, exist_ok=True)
            compact.save(folder / "model_lowrank.keras")
            deployable_model(compact).save(folder / "model_plain.keras")
    return {
        "zero_units": [dataclasses.asdict(removal) for removal in removals],
        "energies": entries,
    }


def reload_saving(history: list[dict[str, Any]], reload_epoch: int) -> dict[str, float]:
    """Returns the training time the reload saved per epoch.

    Args:
        history: The run's per-epoch logs (``epoch_time_s``).
        reload_epoch: The epoch after which the net was compressed.

    Returns:
        Mean epoch time of the full net (the epochs up to the reload's, whose
        proximal steps and decomposition are included) and of the compact
        net, and the share of epoch time saved: ``1 - compact / full``.
    """
    full = [h["epoch_time_s"] for h in history if h["epoch"] <= reload_epoch]
    compact = [h["epoch_time_s"] for h in history if h["epoch"] > reload_epoch]
    entry = {"reload_epoch": reload_epoch, "full_epoch_s": float(np.mean(full))}
    if compact:
        entry["compact_epoch_s"] = float(np.mean(compact))
        entry["epoch_time_saved"] = 1 - entry["compact_epoch_s"] / entry["full_epoch_s"]
    return entry


def summary_table(results: dict[str, Any]) -> str:
    """Returns the end-of-run table: accuracy and sizes per energy."""
    lines = [
        f"{'model':<26}{'test acc %':>11}{'params':>12}{'FLOPs (1/MAC)':>15}",
        f"{'trained, not decomposed':<26}{100 * results['test_accuracy']:>11.2f}"
        f"{results['deployable']['params']:>12,}"
        f"{results['deployable']['flops_mac1']:>15,}",
    ]
    reload = results["prox"]["reload"]
    if reload and "epoch_time_saved" in reload:
        lines.append(
            f"reload after epoch {reload['reload_epoch']}: epochs of "
            f"{reload['full_epoch_s']:.1f} s -> {reload['compact_epoch_s']:.1f} s "
            f"({100 * reload['epoch_time_saved']:.0f} % of training time saved)"
        )
    for entry in results["prox"]["energies"]:
        label = f"decomposed at {entry['energy']:g} %"
        lines.append(
            f"{label:<26}{100 * entry['test_accuracy']:>11.2f}"
            f"{entry['params']:>12,}{entry['flops_mac1']:>15,}"
        )
    lines.append("(params and FLOPs of the plain exported model)")
    return "\n".join(lines)


class ProxMethod(MethodBase):
    """Compression-aware training as a `keras_rank.training.Method`.

    Its Dense and Conv2D layers take proximal steps (`Prox`); after
    training, zero units are removed and the net is decomposed at every
    energy, each result tested on the run's test split and saved.

    Args:
        config: The hyperparameters.
        verbose: Print one line per epoch with the effective ranks.
        latency: The measured latencies, needed by the latency criterion.
    """

    name = "prox"

    def __init__(
        self,
        config: ProxConfig,
        verbose: int = 1,
        latency: LatencyTable | None = None,
    ):
        self.config = config
        self.latency = latency
        self.callback = Prox(config, verbose=verbose, latency=latency)

    def settings(self) -> dict[str, Any]:
        """Returns ``{"prox": <the config>}``."""
        return {"prox": dataclasses.asdict(self.config)}

    def callbacks(self) -> list:
        """Returns the `Prox` callback."""
        return [self.callback]

    def report(self, run: Run) -> dict[str, Any]:
        """Returns the ``prox`` entry; writes the decompositions and plots."""
        method, model, path = self.callback, run.trainer.model, run.workdir
        names = list(method.initial_spectra)
        spectra = final_spectra(model, names)
        processed = post_process(
            model,
            self.config.energies,
            run.evaluator,
            path if run.is_chief else None,
            self.config.criterion,
            self.latency,
            self.config.rank_multiple,
        )
        trained = {
            "test_accuracy": run.test["accuracy"],
            "params": run.deployable.size["params"],
        }
        if run.is_chief:
            for entry in processed["energies"]:
                self._write_energy_results(run, entry)
            plots.plot_curves(run.trainer.history, path / "curves.png")
            plots.plot_spectra(method.initial_spectra, spectra, path / "spectra.png")
            plots.plot_prox_tradeoff(
                trained, processed["energies"], path / "tradeoff.png"
            )
        return {
            "prox": {
                "trained": trained,
                **processed,
                "reload": reload_saving(run.trainer.history, self.config.reload_epoch)
                if method.reloaded
                else None,
                "layers": {
                    name: {
                        "initial_nuclear_norm": float(
                            np.sum(method.initial_spectra[name])
                        ),
                        "final_nuclear_norm": float(np.sum(spectra[name])),
                        "final_rank": int(
                            operators.effective_rank(
                                spectra[name], self.config.rank_tolerance
                            )
                        ),
                        "max_rank": len(spectra[name]),
                    }
                    for name in names
                },
            }
        }

    def _write_energy_results(self, run: Run, entry: dict[str, Any]) -> None:
        """Writes ``energy_<e>/results.json``: the summary of one decomposition."""
        settings = {**dataclasses.asdict(self.config), "energy": entry["energy"]}
        block = summary_block(
            method=self.name,
            test_accuracy=entry["test_accuracy"],
            best_val_accuracy=entry["val_accuracy"],
            epochs=run.trainer.epochs_done,
            deployable=entry,
            method_size=None,
            train_time_s=run.trainer.wall_time_s,
            wall_time_s=run.trainer.wall_time_s,
            settings={"train": run.config.to_dict(), "method": {"prox": settings}},
        )
        folder = _energy_dir(run.workdir, entry["energy"])
        (folder / "results.json").write_text(
            json.dumps({"summary": block, **entry}, indent=1)
        )


def train_prox(
    config: TrainConfig,
    prox_config: ProxConfig,
    workdir: str | os.PathLike,
    *,
    model: keras.Model | None = None,
    latency: LatencyTable | None = None,
    callbacks: Sequence[Any] = (),
) -> dict[str, Any]:
    """Trains with proximal steps of eq. (5), then post-processes; resumes.

    `callbacks` are the user's, as in `keras_rank.training.run_method`.
    The model is `model`, or the one `config` names (zoo or `.keras` file);
    its Dense and Conv2D layers are regularised (`ProxMethod`). Under the
    latency criterion the timings are cached in `latency`, default a table
    in `workdir`.

    Returns:
        The results written to results.json.

    Raises:
        ConfigError: `prox_config.reload_epoch` leaves no epoch to train the
            compressed net (it must be below `config.epochs`).
    """
    reload = prox_config.reload_epoch
    if reload is not None and reload >= config.epochs:
        raise ConfigError(
            f"Expected reload_epoch below epochs ({config.epochs}): the net is "
            "compressed after that epoch and trains on compressed. Received: "
            f"reload_epoch={reload}"
        )
    if prox_config.criterion != "latency":
        latency = None
    elif latency is None:
        latency = LatencyTable(workdir)
    method = ProxMethod(prox_config, verbose=config.verbose, latency=latency)
    results = run_method(method, config, workdir, model=model, callbacks=callbacks)
    if config.verbose:
        print(summary_table(results))
    return results
