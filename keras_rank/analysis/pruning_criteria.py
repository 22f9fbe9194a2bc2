"""Greedy orders in which to prune a layer's units (Heitmann, section 3.1).

A layer's units are the rows ``w_i`` of its unit matrix ``W`` (units x
inputs, `keras_rank.analysis.units`). ``W_hat`` is ``W`` with unit rows and
``X = W_hat W_hat^T`` the cosine similarities of the units. The frame
potential is ``FP(W_hat) = ||X||_F^2 = sum_ij <w_i_hat, w_j_hat>^2``; unit
i's contribution to it is the row sum ``c_i = sum_j X_ij^2`` (``X_ii = 1``
included), and removing unit i lowers FP by ``2 c_i - 1``.

The criteria, named as in the paper's figure 2 by what the pruned matrix
keeps:

* ``max_magnitude``: remove the unit of smallest norm first (the usual
  magnitude pruning; the pruned matrix keeps the largest Frobenius norm);
* ``min_magnitude``: remove the unit of largest norm first;
* ``max_frame_potential``: remove the unit of smallest contribution to the
  frame potential first, recomputed over the remaining units after each
  removal (the paper's frame-potential pruning: the units least aligned
  with the others go first, the pruned matrix keeps the largest FP);
* ``min_frame_potential``: remove the unit of largest contribution first;
* ``random``: a random order (`seed`).

Removing a unit does not change the others' norms, so the magnitude orders
are plain sorts; the frame-potential orders are greedy. Ties go to the lower
index. A zero row has norm 0, similarity 0 with every other unit and 1 with
itself.
"""

import numpy as np

from keras_rank.analysis.units import check_unit_matrix, cosine_similarities
from keras_rank.core.errors import ConfigError

CRITERIA = (
    "max_magnitude",
    "min_magnitude",
    "max_frame_potential",
    "min_frame_potential",
    "random",
)
"""The pruning criteria, in the order the report draws them."""


def frame_potential(matrix) -> float:
    """Returns ``FP(W_hat) = ||W_hat W_hat^T||_F^2`` of `matrix`'s rows."""
    return float(np.sum(cosine_similarities(matrix) ** 2))


def frame_potential_contributions(matrix) -> np.ndarray:
    """Returns each unit's contribution ``c_i = sum_j <w_i_hat, w_j_hat>^2``."""
    return np.sum(cosine_similarities(matrix) ** 2, axis=1)


def _greedy_frame_potential(matrix, remove_largest: bool) -> np.ndarray:
    squared = cosine_similarities(matrix) ** 2
    contributions = squared.sum(axis=1)
    remaining = np.ones(len(squared), bool)
    order = []
    for _ in range(len(squared)):
        candidates = np.where(remaining, contributions, np.nan)
        unit = int(
            np.nanargmax(candidates) if remove_largest else np.nanargmin(candidates)
        )
        order.append(unit)
        remaining[unit] = False
        contributions -= squared[:, unit]
    return np.asarray(order)


def pruning_order(matrix, criterion: str, seed: int = 0) -> np.ndarray:
    """Returns every unit's index in the order `criterion` removes them.

    The first p entries are the p units to prune.

    Args:
        matrix: The layer's unit matrix (units x inputs).
        criterion: One of :data:`CRITERIA`.
        seed: Seed of the ``random`` order (ignored by the others).

    Raises:
        ConfigError: Unknown criterion, or not a 2-D matrix.
    """
    matrix = check_unit_matrix(matrix)
    if criterion not in CRITERIA:
        raise ConfigError(
            f"Expected criterion in {CRITERIA}. Received: criterion={criterion!r}"
        )
    if criterion == "random":
        return np.random.default_rng(seed).permutation(len(matrix))
    if criterion.endswith("magnitude"):
        norms = np.linalg.norm(matrix, axis=1)
        keys = norms if criterion == "max_magnitude" else -norms
        return np.argsort(keys, kind="stable")
    return _greedy_frame_potential(matrix, criterion == "min_frame_potential")
