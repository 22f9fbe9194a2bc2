"""Layer spectra against Marchenko-Pastur and rank-k residuals as PNGs (Heitmann, 3.3).

Trained eigenvalues span decades (a few large ones, a bulk, many near 0), so
`plot_layer_spectra` draws the density of ``log10(eigenvalue)`` on a log x
axis: histograms with log-spaced bins, each bar of height ``count / (N *
bin width in decades)``, and the Marchenko-Pastur density transformed the
same way, ``pdf(x) * x * ln(10)``. Areas are shares of all N eigenvalues, so
bars and curve compare directly. Eigenvalues up to `ZERO_BELOW` times the
largest one or the MP upper edge, whichever is larger (the point mass at 0
of a layer with more units than inputs, numerically zero directions),
cannot sit on a log axis: they are counted in the panel instead.
"""

import math
import pathlib
from collections.abc import Sequence

import numpy as np

from keras_rank.analysis.spectra import LayerSpectrum
from keras_rank.plots import plt, save_figure, ticker

ZERO_BELOW = 1e-10
"""Eigenvalues up to this share of a panel's largest value (or MP edge) are 0."""

_BINS = 40
_COLUMNS = 3


def _log_density_histogram(axis, values, edges, **style) -> None:
    """Draws the density of log10(values) over `edges`, as shares of all values."""
    widths = np.diff(np.log10(edges))
    counts, _ = np.histogram(values, edges)
    axis.stairs(counts / (len(values) * widths), edges, **style)


def _panel(axis, spectrum: LayerSpectrum) -> None:
    law = spectrum.law
    sets = [("trained", spectrum.eigenvalues, "tab:blue", True)]
    if spectrum.init_eigenvalues is not None:
        sets.append(("init", spectrum.init_eigenvalues, "tab:orange", False))
    largest = max(law.upper, *(values[0] for _, values, _, _ in sets))
    floor = ZERO_BELOW * largest
    positive = [v for _, values, _, _ in sets for v in values if v > floor]
    if law.lower > floor:
        positive.append(law.lower)
    low = min(positive) / 1.5
    edges = np.logspace(math.log10(low), math.log10(1.5 * largest), _BINS + 1)
    zeros = []
    for label, values, color, filled in sets:
        _log_density_histogram(
            axis,
            values,
            edges,
            color=color,
            fill=filled,
            alpha=0.5 if filled else 1.0,
            linewidth=1.5,
            label=f"{label} ESD",
        )
        zeros.append(f"{label} {int(np.sum(values <= floor))}")
    grid = np.logspace(math.log10(max(low, law.lower)), math.log10(law.upper), 400)
    axis.plot(grid, law.pdf(grid) * grid * math.log(10), "k-", label="Marchenko-Pastur")
    axis.axvline(law.upper, color="tab:red", linestyle="--", label="MP upper edge")
    above = int(np.sum(spectrum.eigenvalues > law.upper))
    info = (
        f"above edge: trained {above}\n"
        f"~0 (<= {ZERO_BELOW:g} max): {', '.join(zeros)}\n"
        f"MP mass at 0: {law.zero_mass:.2f}"
    )
    axis.set_xscale("log")
    axis.xaxis.set_minor_formatter(ticker.LogFormatter(minor_thresholds=(1, 0.4)))
    axis.set_xlabel("eigenvalue of W W^T")
    axis.set_ylabel("density of log10(eigenvalue)")
    ks = f"KS trained {spectrum.ks_trained:.3f}"
    if spectrum.ks_init is not None:
        ks = f"KS init {spectrum.ks_init:.3f}, {ks}"
    axis.set_title(
        f"{spectrum.name} ({spectrum.units} x {spectrum.inputs}), "
        f"Q = {spectrum.inputs / spectrum.units:.3g}\n{ks}",
        fontsize=9,
    )
    axis.legend(fontsize=7, title=info, title_fontsize=7, loc="best")


def plot_layer_spectra(
    spectra: Sequence[LayerSpectrum], path: pathlib.Path
) -> pathlib.Path:
    """Plots each layer's ESD (trained, init) against its Marchenko-Pastur law.

    One panel per layer, in a grid of up to three columns: see the module
    docstring for the log-scaled density.

    Args:
        spectra: The layers, in the order to draw.
        path: The PNG to write.
    """
    columns = min(_COLUMNS, len(spectra))
    rows = math.ceil(len(spectra) / columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(5 * columns, 4 * rows), squeeze=False
    )
    for axis, spectrum in zip(axes.flat, spectra, strict=False):
        _panel(axis, spectrum)
    for axis in axes.flat[len(spectra) :]:
        axis.set_visible(False)
    return save_figure(figure, pathlib.Path(path))


def plot_residual_curves(
    spectra: Sequence[LayerSpectrum], path: pathlib.Path
) -> pathlib.Path:
    """Plots ``||W - W_k|| / ||W||`` against k for each layer, elbows marked.

    The x axis is the rank k on a log scale, from 1 to min(units, inputs),
    so a layer of 10 units and one of 500 both show their first ranks
    (k = 0, where the residual is 1 by definition, is left out). Each elbow
    is a dot labelled with its k; the legend adds the share of ``||W||_F``
    that ``W_k`` keeps.

    Args:
        spectra: The layers.
        path: The PNG to write.
    """
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for index, spectrum in enumerate(spectra):
        full = len(spectrum.residuals) - 1
        k = spectrum.elbow_rank
        (line,) = axis.plot(
            np.arange(1, full + 1),
            spectrum.residuals[1:],
            label=f"{spectrum.name}: elbow k = {k} of {full} "
            f"(W_k keeps {spectrum.kept_norm_percent:.1f} % of ||W||_F)",
        )
        axis.plot(k, spectrum.residuals[k], "o", color=line.get_color())
        axis.annotate(
            f"k={k}",
            (k, spectrum.residuals[k]),
            textcoords="offset points",
            xytext=(6, 4 + 10 * (index % 3)),
            fontsize=8,
            color=line.get_color(),
        )
    axis.set_xscale("log")
    axis.set_xlabel("rank k of W_k (log scale)")
    norms = sorted({spectrum.residual_norm for spectrum in spectra})
    axis.set_ylabel(" / ".join(f"||W - W_k|| / ||W|| ({norm})" for norm in norms))
    axis.set_ylim(0, 1.02)
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=8)
    return save_figure(figure, pathlib.Path(path))
