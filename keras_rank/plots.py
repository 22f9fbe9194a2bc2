"""PNG plots of runs: histories, layer sizes, ranks and error-compression curves."""

import pathlib
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import ticker  # noqa: E402


def save_figure(figure, path: pathlib.Path) -> pathlib.Path:
    """Lays out `figure`, writes it to `path` as a PNG, closes it; returns `path`."""
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
    return save_figure(figure, path)


def plot_compression(
    history: Sequence[dict[str, float]],
    path: pathlib.Path,
    *,
    deployable_compression: float | None = None,
) -> pathlib.Path:
    """Plots the share of parameters DLRA removed after each epoch.

    The curve is DLRA's own count (``compression`` of each epoch's logs: the
    factorized W', as the paper counts). The plain exported model holds more
    parameters than W' when fused column groups remain, since its plain layers
    keep them at full width; its share removed at the end of the run is drawn
    as one labelled point.

    Args:
        history: The trainer's per-epoch logs.
        path: The PNG to write.
        deployable_compression: Share of parameters the plain exported model
            has removed (against the plain model before training); None draws
            the curve only.
    """
    epochs = [h["epoch"] for h in history]
    figure, axis = plt.subplots(figsize=(6, 4))
    axis.plot(
        epochs,
        [100 * h.get("compression", 0.0) for h in history],
        marker="o",
        label="factorized W' (DLRA's and the paper's count)",
    )
    if deployable_compression is not None:
        axis.plot(
            epochs[-1:],
            [100 * deployable_compression],
            marker="*",
            markersize=12,
            linestyle="none",
            label="plain exported model (deployable): fused column\n"
            "groups keep their full width in plain layers",
        )
    axis.set_xlabel("epoch")
    axis.set_ylabel("compression (% of parameters removed)")
    axis.legend(fontsize="small")
    return save_figure(figure, path)


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
    return save_figure(figure, path)


def plot_lc_ranks(ranks: dict[str, Sequence[int]], path: pathlib.Path) -> pathlib.Path:
    """Plots each layer's rank after every C step of an LC run."""
    figure, axis = plt.subplots(figsize=(6, 4))
    for name, values in ranks.items():
        axis.plot(range(len(values)), values, marker=".", label=name)
    axis.set_xlabel("C step (0: on the reference weights)")
    axis.set_ylabel("rank")
    axis.set_yscale("log")
    axis.legend()
    return save_figure(figure, path)


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
    return save_figure(figure, path)


def plot_export_points(
    points: Sequence[dict[str, Any]], path: pathlib.Path
) -> pathlib.Path:
    """Plots exported files' test accuracy against file size and latency.

    Args:
        points: One dict per file: "model", "format", "size_kb",
            "latency_us" (or None) and "accuracy_pct".
        path: The PNG to write.
    """
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    models = list(dict.fromkeys(point["model"] for point in points))
    formats = list(dict.fromkeys(point["format"] for point in points))
    markers = "osD^vP*X"
    for axis, key, label in (
        (axes[0], "size_kb", "file size (KB, log scale)"),
        (axes[1], "latency_us", "median latency, 1 thread, batch 1 (µs, log scale)"),
    ):
        for point in points:
            if point[key] is None:
                continue
            axis.scatter(
                point[key],
                point["accuracy_pct"],
                color=f"C{models.index(point['model'])}",
                marker=markers[formats.index(point["format"]) % len(markers)],
            )
        axis.set_xscale("log")
        axis.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
        axis.xaxis.set_minor_formatter(ticker.NullFormatter())
        axis.set_xlabel(label)
        axis.set_ylabel("test accuracy of the file (%)")
        axis.grid(alpha=0.3)
    handles = [
        plt.Line2D([], [], color=f"C{index}", marker="o", linestyle="", label=name)
        for index, name in enumerate(models)
    ] + [
        plt.Line2D(
            [],
            [],
            color="gray",
            marker=markers[index % len(markers)],
            linestyle="",
            label=fmt,
        )
        for index, fmt in enumerate(formats)
    ]
    axes[1].legend(handles=handles, fontsize="small", loc="best")
    return save_figure(figure, path)


def plot_spectra(
    initial: dict[str, Any], final: dict[str, Any], path: pathlib.Path
) -> pathlib.Path:
    """Plots each layer's singular values when training began and at its end.

    Args:
        initial: Per layer name, its singular values at the start.
        final: Per layer name, its singular values at the end.
        path: The PNG to write.
    """
    names = list(initial)
    columns = min(len(names), 3) or 1
    rows = -(-len(names) // columns) or 1
    figure, axes = plt.subplots(
        rows, columns, figsize=(4 * columns, 3 * rows), squeeze=False
    )
    for axis, name in zip(axes.flat, names, strict=False):
        for label, spectra in (("start", initial), ("end", final)):
            if name in spectra:
                axis.plot(range(1, len(spectra[name]) + 1), spectra[name], label=label)
        axis.set_yscale("symlog", linthresh=1e-3)
        axis.set_title(name)
        axis.set_xlabel("index")
        axis.set_ylabel("singular value")
        axis.legend(fontsize="small")
    for axis in list(axes.flat)[len(names) :]:
        axis.set_visible(False)
    return save_figure(figure, path)


def plot_prox_tradeoff(
    trained: dict[str, Any], energies: Sequence[dict[str, Any]], path: pathlib.Path
) -> pathlib.Path:
    """Plots test accuracy against exported parameters, one point per energy.

    Args:
        trained: ``test_accuracy`` and ``params`` of the trained model before
            any decomposition.
        energies: Per energy: ``energy``, ``test_accuracy``, ``params``.
        path: The PNG to write.
    """
    figure, axis = plt.subplots(figsize=(6, 4))
    axis.scatter(
        [trained["params"]],
        [100 * trained["test_accuracy"]],
        color="black",
        label="trained, not decomposed",
    )
    axis.plot(
        [entry["params"] for entry in energies],
        [100 * entry["test_accuracy"] for entry in energies],
        marker="o",
        label="decomposed",
    )
    for entry in energies:
        axis.annotate(
            f"{entry['energy']:g} %",
            (entry["params"], 100 * entry["test_accuracy"]),
            textcoords="offset points",
            xytext=(4, 4),
            fontsize="small",
        )
    axis.set_xlabel("parameters of the exported plain model")
    axis.set_ylabel("test accuracy (%)")
    axis.legend()
    return save_figure(figure, path)
