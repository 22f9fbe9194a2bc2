"""PNG plots of runs: histories, layer sizes, ranks and error-compression curves."""

import pathlib
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _save(figure, path: pathlib.Path) -> pathlib.Path:
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def plot_curves(
    history: Sequence[dict[str, float]], path: pathlib.Path
) -> pathlib.Path:
    """Plots train/validation accuracy and loss per epoch."""
    epochs = [h["epoch"] for h in history]
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, metric in zip(axes, ("accuracy", "loss"), strict=True):
        axis.plot(epochs, [h[metric] for h in history], label="train")
        if all(f"val_{metric}" in h for h in history):
            axis.plot(epochs, [h[f"val_{metric}"] for h in history], label="validation")
        axis.set_xlabel("epoch")
        axis.set_ylabel(metric)
        axis.legend()
    return _save(figure, path)


def plot_compression(
    history: Sequence[dict[str, float]], path: pathlib.Path
) -> pathlib.Path:
    """Plots the share of parameters removed after each epoch."""
    figure, axis = plt.subplots(figsize=(5, 4))
    axis.plot(
        [h["epoch"] for h in history],
        [100 * h.get("compression", 0.0) for h in history],
        marker="o",
    )
    axis.set_xlabel("epoch")
    axis.set_ylabel("compression (% of parameters removed)")
    return _save(figure, path)


def plot_layer_dims(
    layers: Sequence[dict[str, Any]], path: pathlib.Path
) -> pathlib.Path:
    """Bar chart of each layer's input, output and feature dimensions."""
    figure, axis = plt.subplots(figsize=(max(5, 1.5 * len(layers)), 4))
    width = 0.27
    for offset, key in enumerate(("input", "output", "features")):
        axis.bar(
            [i + (offset - 1) * width for i in range(len(layers))],
            [layer[key] for layer in layers],
            width,
            label=key,
        )
    axis.set_xticks(range(len(layers)), [layer["layer"] for layer in layers])
    axis.set_ylabel("dimension")
    axis.legend()
    return _save(figure, path)


def plot_lc_ranks(ranks: dict[str, Sequence[int]], path: pathlib.Path) -> pathlib.Path:
    """Plots each layer's rank after every C step of an LC run."""
    figure, axis = plt.subplots(figsize=(6, 4))
    for name, values in ranks.items():
        axis.plot(range(len(values)), values, marker=".", label=name)
    axis.set_xlabel("C step (0: on the reference weights)")
    axis.set_ylabel("rank")
    axis.set_yscale("log")
    axis.legend()
    return _save(figure, path)


def plot_error_vs_rho(
    reference: dict[str, Any], runs: Sequence[dict[str, Any]], path: pathlib.Path
) -> pathlib.Path:
    """Plots test error against rho_FLOPs for LC and its baselines.

    Args:
        reference: Holds the reference net's ``test_error`` (%).
        runs: One entry per lambda with ``rho_flops``, ``test_error`` and
            optionally ``baselines``: ``{name: {rho_flops, test_error}}``.
        path: The PNG to write.
    """
    figure, axis = plt.subplots(figsize=(6, 4))
    axis.axhline(reference["test_error"], color="black", ls="--", label="reference")
    series: dict[str, list[tuple[float, float]]] = {}
    for run in runs:
        series.setdefault("LC", []).append((run["rho_flops"], run["test_error"]))
        for name, entry in run.get("baselines", {}).items():
            series.setdefault(name, []).append(
                (entry["rho_flops"], entry["test_error"])
            )
    for name, points in series.items():
        points.sort()
        axis.plot(*zip(*points, strict=True), marker="o", label=name)
    axis.set_xlabel("rho_FLOPs (reference FLOPs / compressed FLOPs)")
    axis.set_ylabel("test error (%)")
    axis.legend()
    return _save(figure, path)
