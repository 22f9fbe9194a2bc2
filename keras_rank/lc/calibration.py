"""The scale of LC's lambda for a given net: where its first C step stops being safe.

A useful lambda depends on the net: on LeNet300 1e-5..5e-5 gives rho_FLOPs
2.6..9, while the paper's 2.5e-4..2e-3 collapse it; on a small CNN 3e-6
already puts every conv at rank 1. What sets the scale is the C step itself
(eq. 5): ``lam * C(r) + mu / 2 * sum_{i > r} s_i^2``. Multiplying the weights
by c multiplies lam's useful range by c^2; counting costs c times larger
divides it by c.

`lambda_keeping_rank` is the largest lambda at which the first C step (at
mu0, multipliers 0, on the reference's weights) keeps a layer at rank
`rank` or more; `safe_lambda` is the smallest of these over a net's layers.
A search of ``lambda = f * safe_lambda(...)`` with f in (0, 1] is then the
same space on any net: at f = 1 the most exposed layer is exactly at the
edge, below it every layer keeps at least `rank` singular values when LC
starts.

With a cost target (a budget), `lambda_meeting_cost` is the scale instead:
the smallest lambda at which a C step at a given mu on the reference's
weights brings the compressed layers' total cost down to a fraction of their
dense cost. The search takes it at mu0, LC's first C step: it then does not
depend on the number of LC steps, so the multiple found in short trials
means the same in a longer retraining. LC's own steps make the weights more
compressible than the reference's (and mu grows), so a run at that lambda
ends below the target; multiples of 0.5 to 2 reach both sides of it.
"""

import math

import keras
import numpy as np

from keras_rank.core.linalg import robust_svd, round_up_to_multiple
from keras_rank.layers.latency import LatencyTable
from keras_rank.layers.rank_specs import LayerSpec, layer_specs
from keras_rank.lc.c_step import rank_cost, select_rank


def layer_spectra(
    model: keras.Model,
    criterion: str,
    conv_scheme: int,
    latency: LatencyTable | None = None,
) -> list[tuple[np.ndarray, LayerSpec]]:
    """Each compressible layer's singular values (float64, descending) and its spec.

    Args:
        model: The net.
        criterion: LC's cost, "flops", "storage" or "latency".
        conv_scheme: LC's conv scheme.
        latency: The measured latencies, for the latency criterion.

    Returns:
        ``[(values, spec), ...]`` in the order of `layer_specs`.
    """
    spectra = []
    for spec in layer_specs(model, criterion, conv_scheme, latency):
        spectra.append((matrix_and_spectrum(model, spec)[1], spec))
    return spectra


def matrix_and_spectrum(
    model: keras.Model, spec: LayerSpec
) -> tuple[np.ndarray, np.ndarray]:
    """A layer's matrix (LC's layout) and its singular values, float64, descending."""
    matrix = keras.ops.convert_to_numpy(spec.matrix(model.get_layer(spec.name).kernel))
    values = keras.ops.convert_to_numpy(robust_svd(matrix, spec.name)[0])
    return matrix, np.asarray(values, np.float64)


def lambda_keeping_rank(
    singular_values: np.ndarray,
    alpha: float,
    dense_cost: float,
    mu: float,
    rank: int,
    offset: float = 0.0,
) -> float:
    """Returns the largest lambda at which eq. 5's rank is still >= `rank`.

    The selected rank does not grow with lambda (costs rise with the rank,
    errors fall), so the edge is found by bisection on `select_rank` itself,
    to a relative precision of 1e-9: the result is what the C step does.
    The dense option counts as the full rank.

    Args:
        singular_values: The layer matrix's singular values, descending.
        alpha: Cost per unit of rank.
        dense_cost: Cost of the full matrix.
        mu: The penalty parameter (mu0 for the first C step).
        rank: The rank to keep, in [1, R].
        offset: Fixed cost of the low-rank form.

    Returns:
        The edge lambda (``inf`` when no lambda goes below `rank`, e.g. a
        matrix whose every rank-`rank` factorization costs as much as
        dense and which therefore stays dense).

    Raises:
        ValueError: `rank` is not in [1, R].
    """
    values = np.asarray(singular_values, np.float64)
    if not 1 <= rank <= len(values):
        raise ValueError(f"Expected rank in [1, {len(values)}]. Received: rank={rank}")

    def keeps(lam: float) -> bool:
        selection = select_rank(values, alpha, dense_cost, lam, mu, offset=offset)
        return selection.rank >= rank

    low, high = 0.0, mu * float(values[0]) ** 2 / alpha
    while keeps(high):
        high *= 10.0
        if not math.isfinite(high) or high > 1e300:
            return math.inf
    for _ in range(200):
        middle = (low + high) / 2
        if keeps(middle):
            low = middle
        else:
            high = middle
        if high - low <= 1e-9 * high:
            break
    return low


def lambda_meeting_cost(
    model: keras.Model,
    criterion: str,
    conv_scheme: int,
    mu: float,
    fraction: float,
    min_rank: int = 1,
    latency: LatencyTable | None = None,
    rank_multiple: int = 1,
) -> float:
    """Returns the smallest lambda whose C step meets a cost `fraction`.

    The C step (eq. 5, multipliers 0, penalty `mu`) runs on every
    compressible layer of `model`; the total cost does not grow with
    lambda, so the edge is found by bisection on `select_rank` itself, to a
    relative precision of 1e-6.

    Args:
        model: The trained reference net.
        criterion: LC's cost, "flops", "storage" or "latency".
        conv_scheme: LC's conv scheme.
        mu: The penalty parameter of the C step.
        fraction: The target, a fraction in (0, 1] of the compressed layers'
            total dense cost.
        min_rank: LC's lowest rank.
        latency: The measured latencies, for the latency criterion.
        rank_multiple: LC's rank multiple.

    Returns:
        The lambda; where even every layer at its lowest rank costs more
        than the target, the lambda at which they all get there.

    Raises:
        ValueError: `fraction` is not in (0, 1].
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"Expected fraction in (0, 1]. Received: fraction={fraction}")
    layers = layer_spectra(model, criterion, conv_scheme, latency)
    target = fraction * sum(spec.dense_cost for _, spec in layers)
    floor = sum(
        float(
            rank_cost(
                round_up_to_multiple(min_rank, spec.max_rank, rank_multiple),
                spec.alpha,
                spec.dense_cost,
                spec.offset,
            )
        )
        for _, spec in layers
    )
    target = max(target, floor)

    def cost(lam: float) -> float:
        return sum(
            select_rank(
                values,
                spec.alpha,
                spec.dense_cost,
                lam,
                mu,
                min_rank,
                spec.offset,
                rank_multiple,
            ).cost
            for values, spec in layers
        )

    low, high = (
        0.0,
        max(mu * float(values[0]) ** 2 / spec.alpha for values, spec in layers),
    )
    while cost(high) > target and high < 1e300:
        low, high = high, high * 10.0
    for _ in range(200):
        middle = (low + high) / 2
        if cost(middle) > target:
            low = middle
        else:
            high = middle
        if high - low <= 1e-6 * high:
            break
    return high


def safe_lambda(
    model: keras.Model,
    criterion: str,
    conv_scheme: int,
    mu0: float,
    rank: int = 3,
    latency: LatencyTable | None = None,
) -> dict[str, float]:
    """Returns each compressible layer's `lambda_keeping_rank` and their minimum.

    Args:
        model: The trained reference net.
        criterion: LC's cost, "flops", "storage" or "latency".
        conv_scheme: LC's conv scheme.
        mu0: LC's first penalty parameter.
        rank: The rank every layer keeps at the first C step (capped at
            each layer's full rank).
        latency: The measured latencies, for the latency criterion.

    Returns:
        ``{layer name: lambda, ..., "min": the smallest}``.
    """
    edges = {}
    for values, spec in layer_spectra(model, criterion, conv_scheme, latency):
        edges[spec.name] = lambda_keeping_rank(
            values,
            spec.alpha,
            spec.dense_cost,
            mu0,
            min(rank, spec.max_rank),
            spec.offset,
        )
    return {**edges, "min": min(edges.values())}
