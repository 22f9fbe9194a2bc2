"""`analyze`: the redundancy report of one saved model (Heitmann, section 3).

Work directory layout::

    analysis.json            every number below, and the config
    pruning_<layer>.png      accuracy after pruning p units, per criterion
    pruned_<layer>_<criterion>_<p>.keras
                             the pruned model nearest half the units, by the
                             criterion that kept most accuracy there
    spectra.png              ESD of W W^T per layer vs Marchenko-Pastur
    residuals.png            rank-k residual curves and their elbows
    graph_<layer>_epoch_<e>.png   cosine graph of the layer's units
    graph_<layer>.html       the same over all recorded epochs, with a slider
    report.md, report.html   the report (report.html embeds its PNGs)

The model is analysed in the plain form it exports in
(`keras_rank.layers.deployable`): DLRA's ``P W' Q`` and LC's ``U V`` are each one
Dense/Conv2D layer. Accuracies are on the test split of the data the model
was trained on, without retraining.
"""

import json
import os
import pathlib
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from keras_rank.analysis import pruning, spectra
from keras_rank.analysis.config import AnalysisConfig
from keras_rank.analysis.cosine_graph import GraphFrame, graph_frames
from keras_rank.analysis.graph_render import plot_graph_frame, write_graph_page
from keras_rank.analysis.pruning_criteria import pruning_order
from keras_rank.analysis.pruning_plots import plot_pruning_curves
from keras_rank.analysis.report import write_report
from keras_rank.analysis.spectra_plots import plot_layer_spectra, plot_residual_curves
from keras_rank.analysis.units import with_unit_matrix
from keras_rank.core import costs, user_models
from keras_rank.core.compressible import matrix_layers
from keras_rank.core.errors import ConfigError
from keras_rank.core.layer_matrices import unit_matrix
from keras_rank.core.workdirs import check_writable_folder, make_writable_folder
from keras_rank.layers.deployable import deployable_model
from keras_rank.training.evaluation import ModelEvaluator
from keras_rank.training.unit_history import (
    load_initial_matrices,
    load_layer_history,
    recorded_layers,
)

HALF = 0.5
"""The share of units at which the report compares the criteria."""


def _first_prunable(model: keras.Model, config: AnalysisConfig) -> str:
    """Returns the first Dense/Conv2D layer whose units `config`'s grid can prune.

    A layer is skipped when its units cannot be removed, or when it is too
    narrow for every count of `prune_units` (a rank-1 factor of a low-rank
    pair cannot lose 60 % of its one unit).
    """
    for layer in matrix_layers(model):
        try:
            pruning.check_prunable(model, layer.name)
            config.counts(pruning.layer_width(model, layer.name))
        except ConfigError:
            continue
        return layer.name
    raise ConfigError(
        "Expected a model with a Dense or Conv2D layer whose units can be "
        "removed (its channels read only by Dense/Conv2D layers, through "
        "layers that keep channels apart) and that is wider than every count "
        f"of --prune_units={','.join(map(str, config.prune_units))}. Received: "
        f"layers {[layer.name for layer in model.layers]}"
    )


def _nearest(counts: tuple[int, ...], target: float) -> int:
    return min(counts, key=lambda count: (abs(count - target), count))


def prune_section(
    model: keras.Model,
    layer: str,
    config: AnalysisConfig,
    evaluate: Callable[[keras.Model], float],
    path: pathlib.Path,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Pruning curves of `layer`, their plot and the pruned model at half."""
    width = pruning.layer_width(model, layer)
    counts = config.counts(width)
    curves = pruning.pruning_curves(
        model,
        layer,
        counts,
        evaluate,
        criteria=config.criteria,
        seeds=config.random_seeds,
        progress=say,
    )
    plot = plot_pruning_curves(
        curves, width, path / f"pruning_{layer}.png", f"pruning units of {layer}"
    )
    half = _nearest(counts, HALF * width)
    ranked = sorted(
        (curve for curve in curves if curve.criterion != "random"),
        key=lambda curve: -curve.at(half),
    )
    section = {
        "layer": layer,
        "units": width,
        "counts": list(counts),
        "curves": [curve.as_dict() for curve in curves],
        "plot": plot.name,
        "half": {
            "units_pruned": half,
            "accuracy": {curve.criterion: curve.at(half) for curve in curves},
        },
    }
    if ranked and half:
        best = ranked[0]
        matrix = unit_matrix(model.get_layer(layer).kernel)
        order = pruning_order(matrix, best.criterion)
        pruned = pruning.prune_units(model, layer, order[:half])
        name = f"pruned_{layer}_{best.criterion}_{half}.keras"
        pruned.save(path / name)
        section["half"].update(
            best=best.criterion, model=name, params=int(pruned.count_params())
        )
    return section


def _initial_matrix(
    layer: Any, recorded: dict[str, np.ndarray], drawn: keras.Model
) -> tuple[np.ndarray, str]:
    """Returns the layer's init unit matrix and where it comes from."""
    matrix = unit_matrix(layer.kernel)
    saved = recorded.get(layer.name)
    if saved is not None and saved.shape == matrix.shape:
        return saved, "recorded at init"
    return unit_matrix(drawn.get_layer(layer.name).kernel), "drawn from the initializer"


def spectra_section(
    model: keras.Model,
    config: AnalysisConfig,
    evaluate: Callable[[keras.Model], float],
    path: pathlib.Path,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Spectra of every layer against Marchenko-Pastur and the elbow ranks."""
    recorded = load_initial_matrices(config.history_folder())
    keras.utils.set_random_seed(0)
    drawn = keras.models.clone_model(model)
    layers, entries = [], []
    for layer in matrix_layers(model):
        matrix = unit_matrix(layer.kernel)
        init, source = _initial_matrix(layer, recorded, drawn)
        spectrum = spectra.layer_spectrum(
            layer.name, matrix, init_matrix=init, residual_norm=config.residual_norm
        )
        approximation = spectra.rank_k_approximation(matrix, spectrum.elbow_rank)
        accuracy = evaluate(with_unit_matrix(model, layer.name, approximation))
        units, inputs = matrix.shape
        rank = spectrum.elbow_rank
        entry = {
            **spectrum.as_dict(),
            "init_source": source,
            "accuracy_at_elbow_rank": accuracy,
            "params_at_elbow_rank": rank * (units + inputs),
            "params": units * inputs,
        }
        say(
            f"spectrum {layer.name}: elbow rank {rank}, accuracy at it "
            f"{accuracy:.4f}, KS to MP: init {entry['ks_init']:.3f}, "
            f"trained {entry['ks_trained']:.3f}"
        )
        layers.append(spectrum)
        entries.append(entry)
    return {
        "layers": entries,
        "plot": plot_layer_spectra(layers, path / "spectra.png").name,
        "residual_plot": plot_residual_curves(layers, path / "residuals.png").name,
    }


def _graph_epochs(frames: list[GraphFrame], chosen) -> list[int]:
    """Returns the frame indices with a static PNG."""
    if chosen is None:
        last = len(frames) - 1
        return sorted({0, last // 3, (2 * last) // 3, last})
    epochs = [frame.epoch for frame in frames]
    missing = [epoch for epoch in chosen if epoch not in epochs]
    if missing:
        raise ConfigError(
            f"Expected graph_epochs from the recorded epochs {epochs}. "
            f"Received: {list(chosen)}"
        )
    return [epochs.index(epoch) for epoch in chosen]


def graph_section(
    model: keras.Model, layer: str, config: AnalysisConfig, path: pathlib.Path
) -> dict[str, Any]:
    """Cosine graphs of `layer`'s units: PNGs and the page with a slider."""
    history = load_layer_history(config.history_folder(), layer)
    if history:
        source = f"recorded in {config.history_folder()}"
    else:
        history = [(None, unit_matrix(model.get_layer(layer).kernel))]
        others = recorded_layers(config.history_folder())
        source = (
            "the saved weights only (train with --record_units="
            f"{layer} for every epoch"
            + (f"; recorded: {', '.join(others)}" if others else "")
            + ")"
        )
    options = {
        name: getattr(config, name)
        for name in ("sigma", "threshold")
        if getattr(config, name) is not None
    }
    frames = graph_frames(history, **options)
    max_norm = max(float(np.max(frame.norms)) for frame in frames)
    pictures = []
    for index in _graph_epochs(frames, config.graph_epochs):
        frame = frames[index]
        suffix = "final" if frame.epoch is None else f"epoch_{frame.epoch}"
        picture = plot_graph_frame(
            frame,
            path / f"graph_{layer}_{suffix}.png",
            title=f"{layer}: {frame.label}",
            max_norm=max_norm,
        )
        pictures.append(picture.name)
    page = write_graph_page(frames, path / f"graph_{layer}.html", f"units of {layer}")
    return {
        "layer": layer,
        "source": source,
        "frames": [frame.summary() for frame in frames],
        "pictures": pictures,
        "page": page.name,
    }


def analyze(config: AnalysisConfig, workdir: str | os.PathLike) -> dict[str, Any]:
    """Writes the redundancy report of `config.model_path` into `workdir`.

    Args:
        config: What to analyse and how.
        workdir: Output folder (created; see the module docstring).

    Returns:
        The dict written to ``analysis.json``.

    Raises:
        ConfigError: Bad layer, counts or data, or a model file that fails
            to load.
    """
    say = print if config.verbose else (lambda line: None)
    check_writable_folder(workdir, "workdir")
    loaded = user_models.load_model_file(config.model_path)
    model = deployable_model(loaded)
    layer = config.layer or _first_prunable(model, config)
    pruning.check_prunable(model, layer)
    config.counts(pruning.layer_width(model, layer))
    evaluator = ModelEvaluator(config.train_config())
    splits = evaluator.splits
    user_models.check_fits_data(model, splits.input_shape, splits.num_classes)
    # Written only once the model, the layer, the counts and the data are good.
    path = make_writable_folder(workdir, "workdir")

    def evaluate(candidate: keras.Model) -> float:
        return float(evaluator.test_metrics(candidate)["accuracy"])

    accuracy = evaluate(model)
    say(f"{config.model_path}: test accuracy {accuracy:.4f}, layer {layer}")
    results = {
        "model_path": config.model_path,
        "data": splits.source,
        "test_accuracy": accuracy,
        "params": int(model.count_params()),
        "method_params": int(costs.model_cost(loaded).params),
        "pruning": prune_section(model, layer, config, evaluate, path, say),
        "spectra": spectra_section(model, config, evaluate, path, say),
        "graph": graph_section(model, layer, config, path),
        "config": config.to_dict(),
    }
    (path / "analysis.json").write_text(json.dumps(results, indent=1))
    report = write_report(results, path)
    say(f"report: {report}")
    return results
