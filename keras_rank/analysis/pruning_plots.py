"""The pruning curves of one layer as a PNG (Heitmann, figure 2)."""

import pathlib
from collections.abc import Sequence

from keras_rank.analysis.pruning import PruningCurve
from keras_rank.plots import plt, save_figure

_STYLES = {
    "max_magnitude": ("tab:blue", "o-"),
    "min_magnitude": ("tab:blue", "o--"),
    "max_frame_potential": ("tab:red", "s-"),
    "min_frame_potential": ("tab:red", "s--"),
    "random": ("tab:gray", "^-"),
}


def plot_pruning_curves(
    curves: Sequence[PruningCurve],
    width: int,
    path: pathlib.Path,
    title: str,
) -> pathlib.Path:
    """Plots test accuracy against the share of units pruned, per criterion.

    Args:
        curves: One curve per criterion; ``random`` gets error bars of one
            standard deviation over its seeds.
        width: The layer's units (the x axis is in percent of them).
        path: The PNG to write.
        title: The figure's title (the layer).
    """
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for curve in curves:
        color, style = _STYLES[curve.criterion]
        shares = [100.0 * count / width for count in curve.counts]
        accuracy = [100.0 * value for value in curve.accuracy]
        label = curve.criterion
        if curve.std is not None:
            label += f" (mean of {len(curve.seeds)} seeds, +-1 std)"
            axis.errorbar(
                shares,
                accuracy,
                yerr=[100.0 * value for value in curve.std],
                fmt=style,
                color=color,
                capsize=3,
                label=label,
            )
        else:
            axis.plot(shares, accuracy, style, color=color, label=label)
    axis.set_xlabel(f"units pruned (% of {width})")
    axis.set_ylabel("test accuracy (%)")
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return save_figure(figure, path)
