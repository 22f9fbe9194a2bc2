"""`train_prox`: compression-aware training, then one decomposition per energy.

On top of `train_and_evaluate`'s outputs the work directory gets, per energy
e of `ProxConfig.energies`, ``energy_<e>/model_lowrank.keras`` (zero units
removed, every layer split at e % energy where that is cheaper) and
``energy_<e>/model_plain.keras`` (the same in plain Keras layers, for
export); ``spectra.png`` (each layer's singular values when training began
and at its end); ``tradeoff.png`` (test accuracy against exported
parameters per energy); and a ``prox`` section in results.json.
"""

import dataclasses
import os
import pathlib
from typing import Any

import keras
import numpy as np

from keras_rank import plots
from keras_rank.deployable import deployable_model, deployable_size
from keras_rank.layers._low_rank import LowRankLayer
from keras_rank.lc.layer_matrices import compressible_layers
from keras_rank.prox import decompose, operators
from keras_rank.prox.callback import Prox
from keras_rank.prox.config import ProxConfig
from keras_rank.training import TrainConfig, train_and_evaluate
from keras_rank.training.evaluation import ModelEvaluator


def layer_matrix(layer: keras.layers.Layer) -> np.ndarray:
    """Returns a Dense, Conv2D or low-rank layer's weight matrix (inputs x units)."""
    if isinstance(layer, LowRankLayer):
        u, v = (keras.ops.convert_to_numpy(weight) for weight in (layer.u, layer.v))
        return u @ v.T
    return keras.ops.convert_to_numpy(operators.kernel_as_matrix(layer.kernel))


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
) -> dict[str, Any]:
    """Removes zero units, decomposes at every energy, tests each result.

    Args:
        model: The trained model.
        energies: Energies (%) of the decompositions.
        evaluator: Tests the models.
        path: Where each energy's models are saved; None saves nothing.

    Returns:
        ``{"zero_units": [...], "energies": [...]}``: per layer what unit
        removal did; per energy the test accuracy, the exported (plain)
        model's params and FLOPs, and per layer the rank and sizes. Both
        are empty for a model without Dense/Conv2D layers left (a reloaded
        net that is low-rank throughout).
    """
    if not compressible_layers(model, required=False):
        # A reloaded net whose every layer is already low-rank.
        return {"zero_units": [], "energies": []}
    _, removals = decompose.remove_zero_units(model)
    entries = []
    for energy in energies:
        compact, layers = decompose.decompose(model, energy)
        size = deployable_size(compact)
        entries.append(
            {
                "energy": energy,
                "test_accuracy": evaluator.test_metrics(compact)["accuracy"],
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


def train_prox(
    config: TrainConfig,
    prox_config: ProxConfig,
    workdir: str | os.PathLike,
    *,
    model: keras.Model | None = None,
) -> dict[str, Any]:
    """Trains with proximal steps of eq. (5), then post-processes; resumes.

    The model is `model`, or the one `config` names (zoo or `.keras` file);
    its Dense and Conv2D layers are regularised.

    Returns:
        The results written to results.json.
    """
    method = Prox(prox_config, verbose=config.verbose)
    path = pathlib.Path(workdir)

    def report(trainer, deployable) -> dict[str, Any]:
        names = list(method.initial_spectra)
        spectra = final_spectra(trainer.model, names)
        evaluator = ModelEvaluator(config)
        processed = post_process(
            trainer.model,
            prox_config.energies,
            evaluator,
            path if trainer.is_chief else None,
        )
        trained = {
            "test_accuracy": evaluator.test_metrics(trainer.model)["accuracy"],
            "params": deployable.size["params"],
        }
        if trainer.is_chief:
            plots.plot_curves(trainer.history, path / "curves.png")
            plots.plot_spectra(method.initial_spectra, spectra, path / "spectra.png")
            plots.plot_prox_tradeoff(
                trained, processed["energies"], path / "tradeoff.png"
            )
        return {
            "prox": {
                "trained": trained,
                **processed,
                "reload": reload_saving(trainer.history, prox_config.reload_epoch)
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
                                spectra[name], prox_config.rank_tolerance
                            )
                        ),
                        "max_rank": len(spectra[name]),
                    }
                    for name in names
                },
            }
        }

    results = train_and_evaluate(
        config,
        workdir,
        model=model,
        callbacks=[method],
        report=report,
        method_config={"prox": dataclasses.asdict(prox_config)},
    )
    if config.verbose:
        print(summary_table(results))
    return results
