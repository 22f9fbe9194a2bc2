"""The two rank heuristics of Idelbayev & Carreira-Perpinan 2020, section 4.1.

Both read the singular values of a trained reference net's layers (one 1-D
array per layer, descending, in the matrix layout of
`keras_rank.core.layer_matrices`) and return one rank per layer; the caller
builds the low-rank net and fine-tunes it.

Costs follow :func:`keras_rank.lc.c_step.rank_cost`: layer k at rank r costs
``min(offset_k + alpha_k * r, dense_cost_k)`` (offsets 0 unless given: the
latency criterion's fixed time of a low-rank pair), and a rank that is not
cheaper than dense (:func:`keras_rank.core.linalg.stays_dense`) means the
layer stays full.

* Baseline 1 (Zhang et al.): :func:`greedy_ranks_under_budget`, the largest
  singular values over all layers, one rank at a time, under a cost budget.
* Baseline 2 (Wen et al.; Xu et al.): :func:`energy_ranks`, per layer the
  lowest rank r with ``||W - W_r||_F <= (1 - p) ||W||_F``, and
  :func:`energy_threshold_for_budget`, the p whose ranks fit a budget best.

Each takes a ``multiple``: ranks are then multiples of it (or a layer's full
rank R_k), the sizes a phone's kernels run best. XNNPACK, LiteRT's CPU
backend, computes output channels in tiles of 8 or 16 floats, so a
low-rank pair of rank 3 costs about what rank 8 costs (measured in
docs/results.md).
"""

import dataclasses
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from keras_rank.core.errors import ConfigError
from keras_rank.core.linalg import check_rank_multiple, round_up_to_multiple
from keras_rank.lc.c_step import (
    check_rank_cost,
    rank_cost,
    truncation_errors,
)

Spectrum = tf.Tensor | np.ndarray


@dataclasses.dataclass(frozen=True)
class EnergyThreshold:
    """The baseline-2 ranks that best fit a cost budget.

    Attributes:
        p: The largest energy proportion giving these ranks;
            ``energy_ranks(singular_values, p, multiple) == ranks``.
        ranks: One rank per layer.
        cost: Their total cost, <= the budget.
    """

    p: float
    ranks: list[int]
    cost: float


def _spectra(singular_values: Sequence[Spectrum]) -> list[np.ndarray]:
    spectra = [np.asarray(s, np.float64) for s in singular_values]
    for k, s in enumerate(spectra):
        if s.ndim != 1 or s.size == 0:
            raise ConfigError(
                "Expected a non-empty 1-D array of singular values per layer. "
                f"Received: singular_values[{k}] of shape {s.shape}"
            )
    return spectra


def _check_costs(
    spectra: list[np.ndarray],
    alphas: Sequence[float],
    dense_costs: Sequence[float],
    offsets: Sequence[float] | None,
) -> list[float]:
    """Checks the per-layer costs; returns the offsets (zeros if None)."""
    offsets = [0.0] * len(spectra) if offsets is None else list(offsets)
    if not len(spectra) == len(alphas) == len(dense_costs) == len(offsets):
        raise ConfigError(
            "Expected one alpha, one dense_cost and one offset per layer. "
            f"Received: {len(spectra)} layers, {len(alphas)} alphas, "
            f"{len(dense_costs)} dense_costs, {len(offsets)} offsets"
        )
    for alpha, dense_cost, offset in zip(alphas, dense_costs, offsets, strict=True):
        check_rank_cost(alpha, dense_cost, offset)
    return offsets


def _check_budget(budget: float, least: float, what: str) -> None:
    if not (isinstance(budget, (int, float, np.number)) and budget >= least):
        raise ConfigError(
            f"Expected budget >= {least:g} ({what}). Received: budget={budget!r}"
        )


def greedy_ranks_under_budget(
    singular_values: Sequence[Spectrum],
    alphas: Sequence[float],
    dense_costs: Sequence[float],
    budget: float,
    offsets: Sequence[float] | None = None,
    multiple: int = 1,
) -> list[int]:
    """Baseline 1: keeps the largest singular values over all layers.

    Approximately maximises ``sum_k sum_{i <= r_k} s_ki`` (the kept singular
    values; all of them for a layer that stays dense) subject to
    ``sum_k min(offset_k + alpha_k r_k, dense_cost_k) <= budget``, with the paper's
    literal greedy rule: starting from rank 1 in every layer, take the
    largest next singular value over all layers (ties: the earlier layer);
    if that layer's next rank does not fit the remaining budget, the layer
    stops growing (its next rank never fits later either: the remaining
    budget only shrinks) and the other layers go on. The key is the
    singular value itself, not value per cost ``s / alpha``, so a layer
    with a costly rank can take budget that several cheap ranks would use
    better.

    Every layer keeps at least rank 1: rank 0 would cut the net. Once a
    layer's rank is not cheaper than dense, the layer is kept full and
    charged ``dense_cost_k``; its further ranks cost nothing, so it ends at
    rank R_k with every singular value kept.

    With ``multiple`` m > 1 a layer starts at rank min(m, R_k) and grows m
    ranks at a time (to at most R_k), keyed by the first singular value it
    would add.

    Args:
        singular_values: One 1-D array per layer, descending.
        alphas: Cost per unit of rank per layer, > 0.
        dense_costs: Cost of each layer kept full, > 0.
        budget: The largest total cost allowed, at least the cost of rank 1
            in every layer.
        offsets: Fixed cost of each layer's low-rank form, >= 0; default 0.
        multiple: Ranks are multiples of it (or R_k); default 1.

    Returns:
        One rank per layer; R_k for a layer that stays dense.
    """
    spectra = _spectra(singular_values)
    offsets = _check_costs(spectra, alphas, dense_costs, offsets)
    check_rank_multiple(multiple, "multiple")

    def cost(k: int, rank: int) -> float:
        return float(rank_cost(rank, alphas[k], dense_costs[k], offsets[k]))

    ranks = [min(multiple, len(s)) for s in spectra]
    total = sum(cost(k, rank) for k, rank in enumerate(ranks))
    least = f"every layer at rank {multiple}"
    _check_budget(budget, total, least + (" or its full rank" if multiple > 1 else ""))
    stopped: set[int] = set()
    # The first singular value of each step s_ki, i = m, 2m, ... (0-based),
    # largest first; a layer's own steps come in index order, so step i is
    # always that layer's next one.
    starts = [np.arange(min(multiple, len(s)), len(s), multiple) for s in spectra]
    layer = np.concatenate([np.full(len(i), k) for k, i in enumerate(starts)])
    index = np.concatenate(starts)
    value = np.concatenate([s[i] for s, i in zip(spectra, starts, strict=True)])
    for k in layer[np.lexsort((index, layer, -value))].tolist():
        if k in stopped:
            continue
        grown = min(ranks[k] + multiple, len(spectra[k]))
        extra = cost(k, grown) - cost(k, ranks[k])
        if total + extra > budget:
            stopped.add(k)
        else:
            total += extra
            ranks[k] = grown
    return ranks


def _energy_thresholds(s: np.ndarray) -> np.ndarray:
    """Returns ``t`` (non-decreasing, length R + 1): rank <= r iff ``p <= t[r]``.

    ``t[r] = 1 - ||W - W_r||_F / ||W||_F``; a zero matrix has rank 0 at every
    p (``t = 1``).
    """
    errors = truncation_errors(s)
    if errors[0] == 0.0:
        return np.ones_like(errors)
    return 1.0 - np.sqrt(errors / errors[0])


def energy_ranks(
    singular_values: Sequence[Spectrum], p: float, multiple: int = 1
) -> list[int]:
    """Baseline 2: per layer the lowest rank keeping a proportion p of the norm.

    Layer k gets the lowest ``r`` with ``||W_k - W_k,r||_F <= (1 - p)
    ||W_k||_F``, both norms from the singular values
    (``sqrt(sum_{i > r} s_i^2)`` and ``sqrt(sum_i s_i^2)``). p = 0 gives rank
    0; any p > 0 keeps at least rank 1 of a non-zero matrix; p = 1 keeps
    every non-zero singular value.

    Args:
        singular_values: One 1-D array per layer, descending.
        p: The proportion, in [0, 1].
        multiple: Each rank is rounded up to a multiple of it, at most the
            layer's full rank; default 1.

    Returns:
        One rank per layer.
    """
    if not (isinstance(p, (int, float, np.number)) and 0.0 <= p <= 1.0):
        raise ConfigError(f"Expected p in [0, 1]. Received: p={p!r}")
    check_rank_multiple(multiple, "multiple")
    return [
        int(
            round_up_to_multiple(
                np.searchsorted(_energy_thresholds(s), p, side="left"), len(s), multiple
            )
        )
        for s in _spectra(singular_values)
    ]


def energy_threshold_for_budget(
    singular_values: Sequence[Spectrum],
    alphas: Sequence[float],
    dense_costs: Sequence[float],
    budget: float,
    offsets: Sequence[float] | None = None,
    multiple: int = 1,
) -> EnergyThreshold:
    """Baseline 2 at a budget: the p whose ranks cost most without exceeding it.

    Maximises ``sum_k min(offset_k + alpha_k r_k(p), dense_cost_k)`` subject to it being
    <= budget, over p in (0, 1], where ``r_k(p)`` are :func:`energy_ranks`.
    The ranks only change at the finitely many p where a layer's rank steps
    up, ``t_kr = 1 - ||W_k - W_k,r||_F / ||W_k||_F``, and the total cost never
    falls as p grows, so the answer is the largest such p that fits. Used to
    compare baseline 2 with LC at LC's cost (its rho_FLOPs).

    Args:
        singular_values: One 1-D array per layer, descending.
        alphas: Cost per unit of rank per layer, > 0.
        dense_costs: Cost of each layer kept full, > 0.
        budget: The largest total cost allowed, at least the cost of the
            smallest p > 0 (rank 1 in every non-zero layer).
        offsets: Fixed cost of each layer's low-rank form, >= 0; default 0.
        multiple: The ranks are :func:`energy_ranks` rounded up to multiples
            of it (rounding up keeps the cost non-decreasing in p); default 1.

    Returns:
        An :class:`EnergyThreshold`.
    """
    spectra = _spectra(singular_values)
    offsets = _check_costs(spectra, alphas, dense_costs, offsets)
    check_rank_multiple(multiple, "multiple")
    thresholds = [_energy_thresholds(s) for s in spectra]
    candidates = np.unique(np.concatenate(thresholds))
    candidates = candidates[candidates > 0.0]
    ranks = np.stack(
        [
            round_up_to_multiple(
                np.searchsorted(t, candidates, side="left"), len(s), multiple
            )
            for s, t in zip(spectra, thresholds, strict=True)
        ]
    )
    costs = sum(
        rank_cost(r, alpha, dense_cost, offset)
        for r, alpha, dense_cost, offset in zip(
            ranks, alphas, dense_costs, offsets, strict=True
        )
    )
    _check_budget(
        budget,
        float(costs[0]),
        f"the smallest p > 0: rank {multiple} per layer"
        + (" or its full rank" if multiple > 1 else ""),
    )
    best = int(np.flatnonzero(costs <= budget)[-1])
    return EnergyThreshold(
        p=float(candidates[best]),
        ranks=[int(r) for r in ranks[:, best]],
        cost=float(costs[best]),
    )
