"""The cosine graph of a layer's units over training (Heitmann, section 3.2).

A layer's units are the rows ``w_i`` of its unit matrix ``W`` (m units x n
inputs, `keras_rank.analysis.units`). ``W_hat`` is ``W`` with rows of norm 1
and ``X = W_hat W_hat^T`` holds the units' cosine similarities. The graph has
one node per unit, sized by its norm ``||w_i||``, and an edge of weight::

    A_ij = exp(-dist^2(w_i, w_j) / sigma^2),   dist^2(w_i, w_j) = (1 - X)_ij

between units i != j: 1 for parallel rows, ``exp(-1 / sigma^2)`` for
orthogonal ones, ``exp(-2 / sigma^2)`` for opposite ones. Edges below a
threshold are dropped, and at most `max_edges` of the strongest are kept, so
that a layer of hundreds of units stays drawable.

Defaults: ``sigma = 1`` and ``threshold = 0.5`` keep the pairs with
``cos >= 1 - ln 2 ~ 0.31``. The rows of a random layer of n inputs have
cosines of about ``0 +- 1 / sqrt(n)`` (``+- 0.036`` for n = 784, weights
``exp(-1) ~ 0.37``), so a layer at init shows no edges unless n is small
(below ~100 inputs some random pairs pass). Trained layers do: in LeNet-300's
first layer (300 units, 784 inputs; Adam on Fashion-MNIST) no pair passes at
init (largest cosine 0.17), 251 after 5 epochs and 483 after 10, where they
join 223 units into one connected component (only 10 pairs reach
``cos >= 0.5``, so a higher threshold shows little).

Layout: like the paper, a force layout (units repel each other, edges pull
their ends together, a gravity keeps disconnected units in view), so that a
cluster of similar units gathers in the middle and units similar to no other
are pushed to the rim. It is deterministic: Fruchterman-Reingold with gravity
from a fixed start (a sunflower spiral in unit order), a fixed number of
moves, only the kept edges pulling; positions are centred, in a disc of
radius about 1. A frame with as many units as the previous one is then
rotated or reflected onto it (2-D orthogonal Procrustes), so that over
epochs the units move instead of the picture turning; a frame whose unit
count changed (a layer that shrank) keeps its own orientation. It costs
``O(units^2)`` per move: per frame about 0.3 s for 300 units, 0.7 s for
500, 4.5 s for 1000 (2 shared cores).
"""

import dataclasses
import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from keras_rank.analysis.units import check_unit_matrix, cosine_similarities
from keras_rank.core.errors import ConfigError, check_at_least

DEFAULT_SIGMA = 1.0
"""Width of the Gaussian of the cosine distance."""

DEFAULT_THRESHOLD = 0.5
"""Edges of lower weight are dropped: with `DEFAULT_SIGMA`, ``cos < 1 - ln 2``."""

DEFAULT_MAX_EDGES = 2000
"""At most this many of the strongest edges are kept per frame."""

LAYOUT_ITERATIONS = 200
"""Moves of the force layout."""

LAYOUT_START_STEP = 0.1
"""The longest move of the force layout's first iteration (the layout's radius ~1)."""


def edge_weights(matrix, sigma: float = DEFAULT_SIGMA) -> np.ndarray:
    """Returns the weights ``exp(-(1 - X_ij) / sigma^2)`` of all pairs of units.

    Args:
        matrix: ``W``, a unit matrix (units x inputs).
        sigma: Width of the Gaussian, a finite number > 0.

    Returns:
        (units x units) float64, symmetric, zero diagonal; off the diagonal in
        ``[exp(-2 / sigma^2), 1]`` (opposite to parallel rows).

    Raises:
        ConfigError: Bad `matrix` or `sigma`.
    """
    _check_sigma(sigma)
    weights = _gaussian(cosine_similarities(matrix), sigma)
    np.fill_diagonal(weights, 0.0)
    return weights


@dataclasses.dataclass(frozen=True)
class GraphFrame:
    """The cosine graph of one layer's units at one epoch.

    Attributes:
        epoch: Epochs trained (0: at init), or None for weights of unknown
            epoch (a saved model).
        norms: (m,) the units' norms ``||w_i||``.
        positions: (m, 2) the layout, centred (see the module docstring).
        edges: (k, 3) rows ``(i, j, weight)`` with ``i < j``, strongest first
            (ties: lower ``i``, then lower ``j``).
        edges_above_threshold: Pairs whose weight reached the threshold, at
            least ``k`` (more when `max_edges` cut them).
        in_largest_component: (m,) True for the units of the largest connected
            component of the graph of all pairs above the threshold (ties: the
            component of the lowest unit index; a single unit when there are
            no edges).
        mean_cosine: Mean of ``X_ij`` over the pairs i != j; None for one unit.
        sigma: The Gaussian's width.
        threshold: The weight below which pairs have no edge.
    """

    epoch: int | None
    norms: np.ndarray
    positions: np.ndarray
    edges: np.ndarray
    edges_above_threshold: int
    in_largest_component: np.ndarray
    mean_cosine: float | None
    sigma: float
    threshold: float

    @property
    def label(self) -> str:
        """The frame's name: epoch 0 (init), epoch 3, ..., or final weights (None)."""
        if self.epoch is None:
            return "final weights"
        return "epoch 0 (init)" if self.epoch == 0 else f"epoch {self.epoch}"

    @property
    def units(self) -> int:
        """m, the number of units (nodes)."""
        return len(self.norms)

    def summary(self) -> dict[str, Any]:
        """Returns the frame's numbers: label, units, edges, component, norms."""
        return {
            "label": self.label,
            "units": self.units,
            "edges": len(self.edges),
            "edges_above_threshold": self.edges_above_threshold,
            "largest_component": int(np.sum(self.in_largest_component)),
            "mean_cosine": self.mean_cosine,
            "mean_norm": float(np.mean(self.norms)),
            "max_norm": float(np.max(self.norms)),
        }

    def as_dict(self) -> dict[str, Any]:
        """Returns the frame as JSON-able Python values (for the HTML page).

        Holds `summary` and ``epoch``, ``sigma``, ``threshold``, ``norms``,
        ``positions`` (rounded to 1e-4), ``edges`` as ``[i, j, weight]``
        (weight rounded to 1e-4) and ``in_largest_component``.
        """
        return {
            **self.summary(),
            "epoch": self.epoch,
            "sigma": self.sigma,
            "threshold": self.threshold,
            "norms": [float(norm) for norm in self.norms],
            "positions": np.round(self.positions, 4).tolist(),
            "edges": [
                [int(i), int(j), round(float(weight), 4)] for i, j, weight in self.edges
            ],
            "in_largest_component": [bool(x) for x in self.in_largest_component],
        }


def graph_frames(
    matrices: Sequence[tuple[int | None, Any]],
    *,
    sigma: float = DEFAULT_SIGMA,
    threshold: float = DEFAULT_THRESHOLD,
    max_edges: int = DEFAULT_MAX_EDGES,
) -> list[GraphFrame]:
    """Returns the cosine graph of one layer's units at each recorded epoch.

    Args:
        matrices: ``(epoch, W)`` pairs in training order: epoch an int >= 0
            or None, W a unit matrix (units x inputs) with finite entries.
            The unit count may change between epochs.
        sigma: Width of the Gaussian, a finite number > 0.
        threshold: Pairs of weight below it get no edge, in [0, 1].
        max_edges: At most this many of the strongest edges per frame, >= 0.

    Returns:
        One frame per pair, laid out as the module docstring says.

    Raises:
        ConfigError: Empty `matrices`, a pair that is not (epoch, 2-D finite
            matrix), or `sigma`, `threshold`, `max_edges` out of range.
    """
    _check_sigma(sigma)
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, numbers.Real)
        or not 0 <= threshold <= 1
    ):
        raise ConfigError(
            f"Expected threshold in [0, 1]. Received: threshold={threshold!r}"
        )
    check_at_least("max_edges", max_edges, 0)
    if len(matrices) == 0:
        raise ConfigError(
            "Expected matrices: a non-empty sequence of (epoch, unit matrix) "
            f"pairs. Received: matrices={matrices!r}"
        )
    frames = []
    for pair in matrices:
        frame = _frame(*_check_pair(pair), sigma, threshold, max_edges)
        if frames and frames[-1].units == frame.units:
            aligned = _align(frame.positions, frames[-1].positions)
            frame = dataclasses.replace(frame, positions=aligned)
        frames.append(frame)
    return frames


def _frame(
    epoch: int | None,
    matrix: np.ndarray,
    sigma: float,
    threshold: float,
    max_edges: int,
) -> GraphFrame:
    """Returns the frame of `matrix` with a fresh layout."""
    similarities = cosine_similarities(matrix)
    rows, cols = np.triu_indices(len(matrix), 1)
    pair_cosines = similarities[rows, cols]
    weights = _gaussian(pair_cosines, sigma)
    above = weights >= threshold
    rows, cols, weights = rows[above], cols[above], weights[above]
    strongest = np.argsort(-weights, kind="stable")[:max_edges]
    edges = np.stack([rows[strongest], cols[strongest], weights[strongest]], axis=1)
    return GraphFrame(
        epoch=epoch,
        norms=np.linalg.norm(matrix, axis=1),
        positions=_layout(len(matrix), edges),
        edges=edges,
        edges_above_threshold=len(rows),
        in_largest_component=_largest_component(len(matrix), rows, cols),
        mean_cosine=float(pair_cosines.mean()) if len(pair_cosines) else None,
        sigma=float(sigma),
        threshold=float(threshold),
    )


def _gaussian(similarities: np.ndarray, sigma: float) -> np.ndarray:
    """Returns ``exp(-(1 - similarities) / sigma^2)``."""
    return np.exp(-(1.0 - similarities) / sigma**2)


def _check_sigma(sigma) -> None:
    if (
        isinstance(sigma, bool)
        or not isinstance(sigma, numbers.Real)
        or not 0 < sigma < math.inf
    ):
        raise ConfigError(
            f"Expected sigma: a finite number > 0. Received: sigma={sigma!r}"
        )


def _check_pair(pair) -> tuple[int | None, np.ndarray]:
    if not isinstance(pair, tuple | list) or len(pair) != 2:
        raise ConfigError(
            "Expected each item of matrices to be an (epoch, unit matrix) pair. "
            f"Received: {type(pair).__name__}"
        )
    epoch, matrix = pair
    if epoch is not None and (
        isinstance(epoch, bool) or not isinstance(epoch, numbers.Integral) or epoch < 0
    ):
        raise ConfigError(
            f"Expected epoch: an int >= 0 or None. Received: epoch={epoch!r}"
        )
    matrix = check_unit_matrix(matrix, f"the matrix of epoch {epoch}")
    return None if epoch is None else int(epoch), matrix


def _layout(units: int, edges: np.ndarray) -> np.ndarray:
    """Returns the force layout of a graph of `units` nodes and `edges` (i, j, w).

    Fruchterman-Reingold with gravity, vectorised: every pair repels with
    ``k^2 / d``, every edge attracts with ``w d^2 / k``, every node is pulled
    to the centre with ``d``, ``k = 1 / sqrt(units)`` (so that the layout
    fills a disc of radius about 1). Nodes start on a sunflower spiral in
    index order and move `LAYOUT_ITERATIONS` times by their force, each move
    at most a temperature that cools linearly from `LAYOUT_START_STEP` to 0.
    """
    index = np.arange(units)
    radius = np.sqrt((index + 0.5) / units)
    angle = math.pi * (3.0 - math.sqrt(5.0)) * index
    x, y = radius * np.cos(angle), radius * np.sin(angle)
    spacing = 1.0 / units
    attraction = np.zeros((units, units))
    rows, cols = edges[:, 0].astype(int), edges[:, 1].astype(int)
    attraction[rows, cols] = attraction[cols, rows] = edges[:, 2] / math.sqrt(spacing)
    for step in range(LAYOUT_ITERATIONS):
        dx, dy = x[:, None] - x[None, :], y[:, None] - y[None, :]
        squared = dx * dx + dy * dy
        np.fill_diagonal(squared, 1.0)
        pull = spacing / squared - attraction * np.sqrt(squared)
        np.fill_diagonal(pull, 0.0)
        fx = (pull * dx).sum(axis=1) - x
        fy = (pull * dy).sum(axis=1) - y
        length = np.maximum(np.hypot(fx, fy), 1e-300)
        temperature = LAYOUT_START_STEP * (1.0 - step / LAYOUT_ITERATIONS)
        move = np.minimum(length, temperature) / length
        x, y = x + fx * move, y + fy * move
    positions = np.stack([x, y], axis=1)
    return positions - positions.mean(axis=0)


def _align(positions: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Rotates or reflects centred 2-D `positions` onto `reference` (Procrustes).

    The orthogonal R minimising ``||positions R - reference||_F`` maximises
    ``trace(R^T M)``, ``M = positions^T reference``. Over rotations by angle
    t it is ``cos t (M00 + M11) + sin t (M10 - M01)``, over reflections
    ``cos t (M00 - M11) + sin t (M10 + M01)``: each is maximal at the angle
    of its coefficient vector, with the vector's length as value.
    """
    m = positions.T @ reference
    rotation = (m[0, 0] + m[1, 1], m[1, 0] - m[0, 1])
    reflection = (m[0, 0] - m[1, 1], m[1, 0] + m[0, 1])
    if math.hypot(*reflection) > math.hypot(*rotation):
        angle = math.atan2(reflection[1], reflection[0])
        c, s = math.cos(angle), math.sin(angle)
        return positions @ np.array([[c, s], [s, -c]])
    angle = math.atan2(rotation[1], rotation[0])
    c, s = math.cos(angle), math.sin(angle)
    return positions @ np.array([[c, -s], [s, c]])


def _largest_component(units: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Returns the mask of the largest connected component (ties: lowest unit)."""
    parent = np.arange(units)

    def root(node: int) -> int:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
        a, b = root(i), root(j)
        if a != b:
            parent[max(a, b)] = min(a, b)
    roots = np.array([root(node) for node in range(units)])
    return roots == np.argmax(np.bincount(roots, minlength=units))
