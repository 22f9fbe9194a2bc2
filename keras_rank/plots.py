"""PNG plots of a run's history and of a compressed model's layer sizes."""

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
