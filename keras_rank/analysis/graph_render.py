"""Pictures of cosine graphs: one PNG per frame and one HTML page with a slider.

Both draw a frame alike (`keras_rank.analysis.cosine_graph`): a node per unit
at its layout position, of radius proportional to the unit's norm on one
scale for all frames of a layer (``norm / max_norm`` times the largest
radius, at least a tenth of that so that units of norm ~0 stay visible), red when the
unit is in the largest connected component (of two units or more), blue
otherwise; an edge per kept pair, of opacity rising linearly with its weight
from 0.15 at the threshold to 1 at weight 1, stronger edges drawn over weaker
ones.

The page is one self-contained file (no network: no external script, style or
font): the frames' data as JSON in a ``<script type="application/json">``
block, an inline script that draws them as SVG ``<circle>`` and ``<line>``
elements, and a range slider over the frames that redraws on every move.
"""

import html
import json
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.collections import EllipseCollection, LineCollection

from keras_rank.analysis.cosine_graph import GraphFrame
from keras_rank.core.errors import ConfigError
from keras_rank.plots import plt, save_figure

SMALLEST_RADIUS = 0.1
"""Radius of a unit of norm 0, as a share of the largest radius."""

FAINTEST_EDGE = 0.15
"""Opacity of an edge of weight equal to the threshold."""

COMPONENT_COLOR = "#d62728"
OTHER_COLOR = "#1f77b4"


def _largest_radius(units: int) -> float:
    """Returns the radius of the node of largest norm, in layout units.

    The force layout spaces ``units`` nodes about ``1 / sqrt(units)`` apart;
    the largest node takes 0.45 of that.
    """
    return 0.45 / np.sqrt(units)


def _node_radii(frame: GraphFrame, max_norm: float | None = None) -> np.ndarray:
    """Returns the nodes' radii as shares of the largest: ``norm / max_norm``.

    Args:
        frame: The frame to draw.
        max_norm: The norm drawn at radius 1, shared by the frames of a layer;
            None takes the frame's largest norm.

    Returns:
        (units,) in [`SMALLEST_RADIUS`, 1].
    """
    top = float(np.max(frame.norms)) if max_norm is None else float(max_norm)
    if top <= 0:
        return np.full(frame.units, SMALLEST_RADIUS)
    return np.clip(frame.norms / top, SMALLEST_RADIUS, 1.0)


def _edge_opacities(frame: GraphFrame) -> np.ndarray:
    """Returns the edges' opacities: `FAINTEST_EDGE` at the threshold, 1 at 1."""
    weights = frame.edges[:, 2]
    if frame.threshold >= 1:
        return np.ones_like(weights)
    share = (weights - frame.threshold) / (1.0 - frame.threshold)
    return FAINTEST_EDGE + (1.0 - FAINTEST_EDGE) * np.clip(share, 0.0, 1.0)


def _node_colors(frame: GraphFrame) -> list[str]:
    """Returns each node's colour: red in the largest component, else blue."""
    clustered = frame.in_largest_component.sum() >= 2
    return [
        COMPONENT_COLOR if clustered and inside else OTHER_COLOR
        for inside in frame.in_largest_component
    ]


def _caption(frame: GraphFrame) -> list[str]:
    """Returns the frame's numbers as two lines of text."""
    summary = frame.summary()
    mean_cosine = summary["mean_cosine"]
    return [
        f"{summary['units']} units, {summary['edges']} edges drawn "
        f"({summary['edges_above_threshold']} of weight >= {frame.threshold:g}), "
        f"largest component {summary['largest_component']} units;",
        "mean cosine "
        + ("-" if mean_cosine is None else f"{mean_cosine:.3f}")
        + f", norms: mean {summary['mean_norm']:.3g}, max {summary['max_norm']:.3g}",
    ]


def plot_graph_frame(
    frame: GraphFrame,
    path: pathlib.Path,
    title: str | None = None,
    max_norm: float | None = None,
) -> pathlib.Path:
    """Draws one frame as a PNG.

    Args:
        frame: The frame to draw.
        path: The PNG to write.
        title: The figure's title; None uses the frame's label.
        max_norm: The norm of the largest node, shared by the frames of a
            layer so that node sizes compare; None takes the frame's own.

    Returns:
        `path`.
    """
    figure, axis = plt.subplots(figsize=(7, 7.6))
    if len(frame.edges):
        ends = frame.positions[frame.edges[:, :2].astype(int)]
        colors = np.zeros((len(frame.edges), 4))
        colors[:, 3] = _edge_opacities(frame)
        # Strongest first in the frame: draw them last, on top.
        axis.add_collection(
            LineCollection(ends[::-1], colors=colors[::-1], linewidths=0.8, zorder=1)
        )
    biggest = _largest_radius(frame.units)
    diameters = 2 * biggest * _node_radii(frame, max_norm)
    axis.add_collection(
        EllipseCollection(
            diameters,
            diameters,
            np.zeros(frame.units),
            units="xy",
            offsets=frame.positions,
            offset_transform=axis.transData,
            facecolors=_node_colors(frame),
            edgecolors="white",
            linewidths=0.5,
            zorder=2,
        )
    )
    extent = float(np.max(np.abs(frame.positions))) + 1.5 * biggest
    axis.set_xlim(-extent, extent)
    axis.set_ylim(-extent, extent)
    axis.set_aspect("equal")
    axis.set_xticks([])
    axis.set_yticks([])
    axis.set_title(frame.label if title is None else title)
    axis.set_xlabel(
        "\n".join(_caption(frame)) + "\nedges: weight exp(-(1 - cos)/sigma^2), "
        f"sigma = {frame.sigma:g}; nodes: size by norm, red = largest component",
        fontsize=8,
    )
    return save_figure(figure, pathlib.Path(path))


def _embedded_json(data: Any) -> str:
    """Returns `data` as JSON that cannot end or confuse an HTML ``<script>``."""
    text = json.dumps(data, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 1em; color: #222; }}
#controls {{ display: flex; align-items: center; gap: 1em; }}
#frame {{ width: 24em; }}
#label {{ font-weight: bold; }}
#summary, #legend {{ font-size: 0.9em; margin: 0.4em 0; }}
svg {{ border: 1px solid #ccc; background: #fff; }}
</style>
</head>
<body>
<h1>{title}</h1>
<div id="controls">
<input type="range" id="frame" min="0" max="{last}" step="1" value="0"
 aria-label="frame">
<span id="label"></span>
</div>
<p id="summary"></p>
<p id="legend">{legend}</p>
<svg id="graph" width="{size}" height="{size}" viewBox="0 0 {size} {size}"
 role="img" aria-label="cosine graph"></svg>
<script id="graph-data" type="application/json">{data}</script>
<script>
"use strict";
const data = JSON.parse(document.getElementById("graph-data").textContent);
const svg = document.getElementById("graph");
const slider = document.getElementById("frame");
const x = (point) => data.size / 2 + data.scale * point[0];
const y = (point) => data.size / 2 - data.scale * point[1];

function element(name, attributes) {{
  const node = document.createElementNS(svg.namespaceURI, name);
  for (const [key, value] of Object.entries(attributes)) {{
    node.setAttribute(key, value);
  }}
  return node;
}}

function draw(index) {{
  const frame = data.frames[index];
  svg.replaceChildren();
  for (let k = frame.edges.length - 1; k >= 0; k--) {{
    const [i, j] = frame.edges[k];
    svg.appendChild(element("line", {{
      x1: x(frame.positions[i]), y1: y(frame.positions[i]),
      x2: x(frame.positions[j]), y2: y(frame.positions[j]),
      stroke: "#000", "stroke-width": 0.7, "stroke-opacity": frame.opacity[k],
    }}));
  }}
  frame.positions.forEach((point, unit) => {{
    const circle = element("circle", {{
      cx: x(point), cy: y(point), r: data.largest_radius * frame.radius[unit],
      fill: frame.color[unit], stroke: "#fff", "stroke-width": 0.5,
    }});
    const tip = element("title", {{}});
    tip.textContent = "unit " + unit + ", norm " + frame.norms[unit].toPrecision(4);
    circle.appendChild(tip);
    svg.appendChild(circle);
  }});
  document.getElementById("label").textContent = frame.label;
  document.getElementById("summary").textContent = frame.caption;
}}

slider.addEventListener("input", () => draw(Number(slider.value)));
draw(Number(slider.value));
</script>
</body>
</html>
"""


def write_graph_page(
    frames: Sequence[GraphFrame], path: pathlib.Path, title: str
) -> pathlib.Path:
    """Writes one self-contained HTML page showing `frames` with a slider.

    Node radii share one scale: the largest norm of all frames.

    Args:
        frames: The frames of one layer, in order (`cosine_graph.graph_frames`).
        path: The HTML file to write.
        title: The page's title and heading (HTML-escaped).

    Returns:
        `path`.

    Raises:
        ConfigError: `frames` is empty or holds something else.
    """
    others = sorted({type(f).__name__ for f in frames if not isinstance(f, GraphFrame)})
    if not frames or others:
        raise ConfigError(
            "Expected frames: a non-empty sequence of GraphFrame. Received: "
            + (f"items of type {others}" if others else "frames=[]")
        )
    max_norm = max(float(np.max(frame.norms)) for frame in frames)
    biggest = _largest_radius(max(frame.units for frame in frames))
    extent = biggest + max(float(np.max(np.abs(frame.positions))) for frame in frames)
    size, margin = 720, 10
    scale = (size / 2 - margin) / extent
    data = {
        "size": size,
        "scale": scale,
        "largest_radius": biggest * scale,
        "frames": [
            {
                **frame.as_dict(),
                "radius": np.round(_node_radii(frame, max_norm), 4).tolist(),
                "opacity": np.round(_edge_opacities(frame), 3).tolist(),
                "color": _node_colors(frame),
                "caption": " ".join(_caption(frame)),
            }
            for frame in frames
        ],
    }
    first = frames[0]
    legend = (
        f"Nodes: units, radius proportional to the norm (largest: {max_norm:.3g}); "
        "red: the largest connected component. Edges: pairs of units with weight "
        f"exp(-(1 - cos)/sigma^2) >= {first.threshold:g}, sigma = {first.sigma:g}, "
        "darker when stronger. Move the slider (or use the arrow keys) to step "
        "through the epochs."
    )
    page = _PAGE.format(
        title=html.escape(title),
        last=len(frames) - 1,
        legend=html.escape(legend),
        size=size,
        data=_embedded_json(data),
    )
    path = pathlib.Path(path)
    path.write_text(page, encoding="utf-8")
    return path
