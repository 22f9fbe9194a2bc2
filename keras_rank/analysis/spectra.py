"""Weight spectra against Marchenko-Pastur and rank-k residuals (Heitmann, 3.3).

A layer's unit matrix ``W`` is (m units x n inputs, `keras_rank.analysis.units`)
and its correlation matrix is ``X = W W^T`` (m x m). If the entries of ``W``
are iid with mean 0 and variance ``s2`` (an initializer's draw), then
``X = (1/n) (sqrt(n) W)(sqrt(n) W)^T`` and its empirical spectral density
(ESD) tends to the Marchenko-Pastur law of ratio ``y = m / n`` and scale
``n s2`` (the paper's ``Q = n / m = 1 / y``). Eigenvalues far above the law's
upper edge are the structure training put into the layer.

The low-rank side: ``W_k`` is the best rank-k approximation of ``W`` (the
SVD truncated to k terms; Eckart-Young-Mirsky, which the paper states in the
spectral norm). The residual curve is ``r[k] = ||W - W_k|| / ||W||`` in the
spectral norm (default: ``s_{k+1} / s_1``, the scree curve of the singular
values) or the Frobenius norm, and the elbow rank is the knee of that curve
(`elbow_rank`). Every SVD is ``tf.linalg.svd`` in float64.
"""

import dataclasses
import math
import numbers
from typing import Any

import numpy as np
import tensorflow as tf

from keras_rank.analysis.units import check_unit_matrix
from keras_rank.core.errors import ConfigError, check_at_least

RESIDUAL_NORMS = ("spectral", "frobenius")
"""Norms of the residual curve; the first is the default (the paper's)."""

FLAT_SPECTRUM = 1e-9
"""`elbow_rank` of a curve whose first and last values differ by at most this."""

ELBOW_FLAT_TOLERANCE = 1e-12
"""Normalised chord distances up to this count as 0 in `elbow` (a straight line)."""


@dataclasses.dataclass(frozen=True)
class MarchenkoPastur:
    """The limit law of the eigenvalues of ``X = W W^T``, W (units x inputs) iid.

    With ratio ``y = units / inputs`` and scale ``t = inputs * variance`` the
    law has a continuous part on ``[lower, upper] = [t (1 - sqrt(y))^2,
    t (1 + sqrt(y))^2]`` of density::

        pdf(x) = sqrt((upper - x) (x - lower)) / (2 pi t y x)

    and, when ``units > inputs``, a point mass ``1 - 1/y`` at 0 (X has rank
    ``inputs`` at most).

    Attributes:
        units: m, the rows of W (eigenvalues of X), >= 1.
        inputs: n, the columns of W, >= 1.
        variance: The variance of W's entries, > 0 and finite.
    """

    units: int
    inputs: int
    variance: float

    def __post_init__(self):
        """Validates the arguments."""
        check_at_least("units", self.units, 1)
        check_at_least("inputs", self.inputs, 1)
        if (
            isinstance(self.variance, bool)
            or not isinstance(self.variance, numbers.Real)
            or not math.isfinite(self.variance)
            or self.variance <= 0
        ):
            raise ConfigError(
                "Expected variance: a finite number > 0. "
                f"Received: variance={self.variance!r}"
            )

    @property
    def ratio(self) -> float:
        """``y = units / inputs`` (the paper's ``1 / Q``)."""
        return self.units / self.inputs

    @property
    def scale(self) -> float:
        """``inputs * variance``: the variance of the entries of ``sqrt(n) W``."""
        return self.inputs * float(self.variance)

    @property
    def lower(self) -> float:
        """The lower edge ``n s2 (1 - sqrt(y))^2`` of the continuous part."""
        return self.scale * (1.0 - math.sqrt(self.ratio)) ** 2

    @property
    def upper(self) -> float:
        """The upper edge ``n s2 (1 + sqrt(y))^2`` of the continuous part."""
        return self.scale * (1.0 + math.sqrt(self.ratio)) ** 2

    @property
    def zero_mass(self) -> float:
        """The point mass at 0: ``1 - inputs / units`` if units > inputs, else 0."""
        return max(0.0, 1.0 - self.inputs / self.units)

    def pdf(self, x) -> np.ndarray:
        """Returns the density of the continuous part at `x` (0 outside the edges).

        It integrates to ``1 - zero_mass``; the point mass at 0 is not in it.
        At ``x = 0`` the density is 0 (when ``y = 1`` it is infinite there,
        an integrable ``1 / sqrt(x)`` singularity).

        Args:
            x: Scalar or array of eigenvalues.

        Returns:
            float64 array of `x`'s shape.
        """
        x = np.asarray(x, np.float64)
        inside = (x > self.lower) & (x < self.upper) & (x > 0)
        safe = np.where(inside, x, self.upper)
        root = np.sqrt(np.maximum((self.upper - safe) * (safe - self.lower), 0.0))
        density = root / (2.0 * math.pi * self.scale * self.ratio * safe)
        return np.where(inside, density, 0.0)

    def cdf(self, x) -> np.ndarray:
        """Returns ``P(eigenvalue <= x)``, the point mass at 0 included.

        Exact closed form (no numerical integration). With ``u = x / t``,
        ``a, b`` the edges over ``t`` and ``R(u) = sqrt((b - u)(u - a))``,
        an antiderivative of ``R(u) / u`` on ``[a, b]`` is::

            G(u) = R(u) + (a + b)/2 asin((2u - a - b)/(b - a))
                   - sqrt(a b) asin(((a + b) u - 2 a b)/(u (b - a)))

        and the continuous part's CDF is ``(G(u) - G(a)) / (2 pi y)``, which
        reaches ``1 - zero_mass`` at ``u = b``.

        Args:
            x: Scalar or array of eigenvalues.

        Returns:
            float64 array of `x`'s shape, non-decreasing, 1 from the upper edge.
        """
        x = np.asarray(x, np.float64)
        a = self.lower / self.scale
        b = self.upper / self.scale
        u = np.clip(x / self.scale, a, b)
        continuous = (self._antiderivative(u, a, b) - self._antiderivative(a, a, b)) / (
            2.0 * math.pi * self.ratio
        )
        continuous = np.clip(continuous, 0.0, 1.0 - self.zero_mass)
        total = np.where(x >= 0, self.zero_mass, 0.0) + continuous
        return np.where(x >= self.upper, 1.0, total)

    @staticmethod
    def _antiderivative(u, a: float, b: float) -> np.ndarray:
        """``G(u)`` of `cdf`'s docstring, for ``a <= u <= b`` (u > 0 if a > 0)."""
        u = np.asarray(u, np.float64)
        root = np.sqrt(np.maximum((b - u) * (u - a), 0.0))
        first = 0.5 * (a + b) * np.arcsin(np.clip((2 * u - a - b) / (b - a), -1, 1))
        if a == 0.0:
            return root + first
        second = math.sqrt(a * b) * np.arcsin(
            np.clip(((a + b) * u - 2 * a * b) / (u * (b - a)), -1, 1)
        )
        return root + first - second


def _singular_values(matrix) -> np.ndarray:
    """Returns the min(m, n) singular values of `matrix`, descending, float64."""
    values = tf.linalg.svd(tf.constant(matrix, tf.float64), compute_uv=False)
    return np.sort(values.numpy())[::-1]


def _eigenvalues(singular_values: np.ndarray, units: int) -> np.ndarray:
    """Returns the `units` eigenvalues of W W^T from W's singular values."""
    squared = singular_values**2
    return np.concatenate([squared, np.zeros(units - len(squared))])


def _residuals(singular_values: np.ndarray, norm: str) -> np.ndarray:
    """Returns ``r[k] = ||W - W_k|| / ||W||`` for k = 0..R in `norm`.

    Spectral: ``s_{k+1} / s_1`` (0 at k = R). Frobenius:
    ``sqrt(sum_{i > k} s_i^2 / sum_i s_i^2)``.
    """
    if norm == "spectral":
        return np.concatenate([singular_values / singular_values[0], [0.0]])
    # Tail sums, accumulated from the smallest value up (exact 0 at k = R).
    tails = np.concatenate([np.cumsum(singular_values[::-1] ** 2)[::-1], [0.0]])
    return np.sqrt(tails / tails[0])


def _check_norm(norm: object) -> str:
    if norm not in RESIDUAL_NORMS:
        raise ConfigError(
            f"Expected residual_norm in {RESIDUAL_NORMS}. Received: "
            f"residual_norm={norm!r}"
        )
    return norm


def correlation_eigenvalues(matrix) -> np.ndarray:
    """Returns the m eigenvalues of ``X = W W^T``, descending, float64.

    They are the squared singular values of `matrix` (``tf.linalg.svd``),
    with ``m - n`` exact zeros appended when m > n.

    Args:
        matrix: The unit matrix W (m units x n inputs).

    Raises:
        ConfigError: `matrix` is not a finite 2-D matrix.
    """
    matrix = check_unit_matrix(matrix)
    return _eigenvalues(_singular_values(matrix), matrix.shape[0])


def ks_distance(eigenvalues, law: MarchenkoPastur) -> float:
    """Returns the Kolmogorov-Smirnov distance of an ESD to `law`.

    ``sup_x |F_n(x) - law.cdf(x)|`` with ``F_n`` the empirical CDF of
    `eigenvalues`. Both CDFs are compared on both sides of every jump of
    either (each distinct eigenvalue, and 0 where the law has its point
    mass); between jumps the difference is monotone, so that is the sup.

    Args:
        eigenvalues: 1-D, at least one finite value.
        law: The reference law.

    Raises:
        ConfigError: `eigenvalues` is empty, not 1-D or not finite.
    """
    values = np.asarray(eigenvalues, np.float64)
    if values.ndim != 1 or values.size == 0 or not np.all(np.isfinite(values)):
        raise ConfigError(
            "Expected eigenvalues: a 1-D array of at least one finite value. "
            f"Received: eigenvalues.shape={values.shape}"
        )
    values = np.sort(values)
    points = np.union1d(values, [0.0])
    at = np.searchsorted(values, points, side="right") / values.size
    before = np.searchsorted(values, points, side="left") / values.size
    law_at = law.cdf(points)
    # The law's only jump is the point mass at 0; elsewhere it is continuous.
    law_before = np.where(points == 0.0, 0.0, law_at)
    return float(max(np.max(np.abs(at - law_at)), np.max(np.abs(before - law_before))))


def residual_curve(matrix, residual_norm: str = "spectral") -> np.ndarray:
    """Returns ``r[k] = ||W - W_k|| / ||W||`` for k = 0..min(m, n).

    ``W_k`` is the best rank-k approximation (`rank_k_approximation`) in
    both norms. Spectral norm: ``r[k] = s_{k+1} / s_1``. Frobenius norm:
    ``r[k]^2`` is the share of ``sum_i s_i^2`` in the singular values after
    the k-th. Either way ``r[0] = 1``, ``r[min(m, n)] = 0``, non-increasing.

    Args:
        matrix: The unit matrix W (m units x n inputs), not all zero.
        residual_norm: One of :data:`RESIDUAL_NORMS`.

    Raises:
        ConfigError: `matrix` is not a finite 2-D matrix, or is zero, or
            the norm is unknown.
    """
    residual_norm = _check_norm(residual_norm)
    singular_values = _singular_values(check_unit_matrix(matrix))
    _check_nonzero(singular_values)
    return _residuals(singular_values, residual_norm)


def elbow_rank(residuals) -> int:
    """Returns the rank at the knee of a residual curve ``r[0..R]``.

    The knee (`elbow`) of ``r[0..R-1]``: the last point ``r[R] = 0`` is
    left out, since in the spectral norm it is no singular value but the
    end of the spectrum (its drop would tilt the chord). In the spectral
    norm the curve is the scree plot ``s_{k+1} / s_1``, so one dominant
    direction gives k = 1 and d directions above a flat bulk give k = d.
    The rank is at least 1; a flat curve (equal singular values: no knee)
    gives R, the full rank; a curve of fewer than 3 such points gives 1.

    Args:
        residuals: A residual curve (`residual_curve`), at least 2 values.
    """
    curve = np.asarray(residuals, np.float64)[:-1]
    if len(curve) < 3:
        return 1
    if curve[0] - curve[-1] <= FLAT_SPECTRUM:
        return len(curve)
    return max(1, elbow(curve))


def _check_nonzero(singular_values: np.ndarray) -> None:
    if singular_values[0] == 0.0:
        raise ConfigError(
            "Expected matrix: a non-zero matrix (its relative residuals divide "
            "by ||W||_F). Received: a matrix of zeros"
        )


def elbow(curve) -> int:
    """Returns the index of the knee of a non-increasing curve (Kneedle-style).

    Both axes are normalised to [0, 1] (index ``k / (len - 1)``, value
    ``(curve[k] - curve[-1]) / (curve[0] - curve[-1])``), so the chord from
    the first to the last point is the line ``x + y = 1``. The knee is the
    point farthest from that chord, on either side (``|1 - x - y|``, the
    perpendicular distance up to a constant): below it for a convex curve
    such as a residual curve of decaying singular values, above it for a
    concave one. Ties go to the smallest index; a straight line (every
    distance within `ELBOW_FLAT_TOLERANCE`) therefore gives 0.

    Args:
        curve: 1-D, at least 3 finite values, non-increasing, with
            ``curve[0] > curve[-1]``.

    Raises:
        ConfigError: `curve` is not such a sequence.
    """
    values = np.asarray(curve, np.float64)
    if (
        values.ndim != 1
        or values.size < 3
        or not np.all(np.isfinite(values))
        or np.any(np.diff(values) > 0)
        or values[0] <= values[-1]
    ):
        raise ConfigError(
            "Expected curve: a 1-D non-increasing sequence of at least 3 finite "
            "values with curve[0] > curve[-1]. Received: curve of shape "
            f"{values.shape}"
            + (f" from {values[0]!r} to {values[-1]!r}" if values.size else "")
        )
    x = np.arange(values.size) / (values.size - 1)
    y = (values - values[-1]) / (values[0] - values[-1])
    distance = np.abs(1.0 - x - y)
    distance[distance <= ELBOW_FLAT_TOLERANCE] = 0.0
    return int(np.argmax(distance))


def rank_k_approximation(matrix, k: int) -> np.ndarray:
    """Returns ``W_k = U_k S_k V_k^T``, the best rank-k approximation of W.

    Best in the Frobenius and spectral norms (Eckart-Young-Mirsky). Computed
    with ``tf.linalg.svd`` in float64.

    Args:
        matrix: The unit matrix W (m units x n inputs).
        k: The rank, an integer in [0, min(m, n)].

    Returns:
        float64 array of W's shape (zeros for k = 0).

    Raises:
        ConfigError: `matrix` is not a finite 2-D matrix, or `k` is out of
            range.
    """
    matrix = check_unit_matrix(matrix)
    largest = min(matrix.shape)
    if (
        isinstance(k, bool)
        or not isinstance(k, numbers.Integral)
        or not (0 <= k <= largest)
    ):
        raise ConfigError(
            f"Expected k: an integer in [0, {largest}] (min(units, inputs) of a "
            f"{matrix.shape[0]} x {matrix.shape[1]} matrix). Received: k={k!r}"
        )
    s, u, v = tf.linalg.svd(tf.constant(matrix, tf.float64), full_matrices=False)
    k = int(k)
    return (u[:, :k].numpy() * s[:k].numpy()) @ v[:, :k].numpy().T


@dataclasses.dataclass(frozen=True, eq=False)
class LayerSpectrum:
    """A layer's spectrum against Marchenko-Pastur and its elbow rank.

    Attributes:
        name: The layer's name.
        units: m, rows of the unit matrix W.
        inputs: n, its columns.
        eigenvalues: The m eigenvalues of the trained ``W W^T``, descending.
        init_eigenvalues: Those of the initial W, or None.
        law: Marchenko-Pastur of W's shape and the init variance.
        ks_init: KS distance of the init ESD to `law`, or None.
        ks_trained: KS distance of the trained ESD to `law`.
        residuals: ``||W - W_k|| / ||W||`` for k = 0..min(m, n) in
            `residual_norm`.
        residual_norm: One of :data:`RESIDUAL_NORMS`.
        elbow_rank: The knee of `residuals` (:func:`elbow_rank`).
        kept_norm_percent: ``100 ||W_k||_F / ||W||_F`` at the elbow rank
            (Frobenius whatever the residual norm, as the paper's figure 8).
    """

    name: str
    units: int
    inputs: int
    eigenvalues: np.ndarray
    init_eigenvalues: np.ndarray | None
    law: MarchenkoPastur
    ks_init: float | None
    ks_trained: float
    residuals: np.ndarray
    residual_norm: str
    elbow_rank: int
    kept_norm_percent: float

    def as_dict(self) -> dict[str, Any]:
        """Returns the JSON-able summary numbers (no eigenvalue arrays).

        Keys: ``name``, ``units``, ``inputs``, ``ratio`` (y = units/inputs),
        ``q`` (the paper's Q = inputs/units), ``variance``, ``lower_edge``,
        ``upper_edge``, ``zero_mass``, ``ks_init`` (None without init),
        ``ks_trained``, ``elbow_rank``, ``kept_norm_percent``,
        ``largest_eigenvalue`` (trained), ``above_edge_trained`` and
        ``above_edge_init`` (eigenvalues > the upper edge; None without init).
        """

        def above(values: np.ndarray | None) -> int | None:
            return None if values is None else int(np.sum(values > self.law.upper))

        return {
            "name": self.name,
            "units": self.units,
            "inputs": self.inputs,
            "ratio": self.law.ratio,
            "q": self.inputs / self.units,
            "variance": float(self.law.variance),
            "lower_edge": self.law.lower,
            "upper_edge": self.law.upper,
            "zero_mass": self.law.zero_mass,
            "ks_init": self.ks_init,
            "ks_trained": self.ks_trained,
            "residual_norm": self.residual_norm,
            "elbow_rank": self.elbow_rank,
            "kept_norm_percent": self.kept_norm_percent,
            "largest_eigenvalue": float(self.eigenvalues[0]),
            "above_edge_trained": above(self.eigenvalues),
            "above_edge_init": above(self.init_eigenvalues),
        }


def layer_spectrum(
    name: str,
    matrix,
    init_matrix=None,
    init_variance: float | None = None,
    residual_norm: str = "spectral",
) -> LayerSpectrum:
    """Returns the spectrum of a trained layer against its init's law.

    The law needs the variance of the initial entries: `init_variance` if
    given (e.g. the initializer's, 2 / (fan_in + fan_out) for Glorot
    normal), else the empirical variance of `init_matrix` (about its mean: a
    mean moves one eigenvalue, not the bulk).

    Args:
        name: The layer's name.
        matrix: The trained unit matrix W (units x inputs), not all zero.
        init_matrix: The unit matrix at initialisation, of W's shape, or None.
        init_variance: The init entries' variance, > 0, or None.
        residual_norm: The norm of the residual curve whose elbow gives
            the rank, one of :data:`RESIDUAL_NORMS`.

    Raises:
        ConfigError: Neither `init_matrix` nor `init_variance` is given, the
            shapes differ, `init_matrix` has variance 0 (a constant init has
            no Marchenko-Pastur law; pass `init_variance`), or a matrix is
            not a finite non-zero 2-D matrix.
    """
    matrix = check_unit_matrix(matrix)
    units, inputs = matrix.shape
    init = (
        None if init_matrix is None else check_unit_matrix(init_matrix, "init_matrix")
    )
    if init is not None and init.shape != matrix.shape:
        raise ConfigError(
            f"Expected init_matrix of the trained matrix's shape {matrix.shape} "
            "(a layer that changed shape during training has no init spectrum "
            f"to compare with). Received: init_matrix.shape={init.shape}"
        )
    if init_variance is None:
        if init is None:
            raise ConfigError(
                "Expected init_matrix or init_variance: the Marchenko-Pastur law "
                "needs the variance of the initial weights. Received: neither"
            )
        init_variance = float(np.var(init))
        if init_variance == 0.0:
            raise ConfigError(
                "Expected init_matrix with variance > 0 (a constant init has no "
                "Marchenko-Pastur law; pass init_variance). Received: variance 0"
            )
    law = MarchenkoPastur(units, inputs, init_variance)
    singular_values = _singular_values(matrix)
    _check_nonzero(singular_values)
    eigenvalues = _eigenvalues(singular_values, units)
    init_eigenvalues = None if init is None else correlation_eigenvalues(init)
    residuals = _residuals(singular_values, _check_norm(residual_norm))
    rank = elbow_rank(residuals)
    frobenius = _residuals(singular_values, "frobenius")
    return LayerSpectrum(
        name=name,
        units=units,
        inputs=inputs,
        eigenvalues=eigenvalues,
        init_eigenvalues=init_eigenvalues,
        law=law,
        ks_init=None if init is None else ks_distance(init_eigenvalues, law),
        ks_trained=ks_distance(eigenvalues, law),
        residuals=residuals,
        residual_norm=residual_norm,
        elbow_rank=rank,
        kept_norm_percent=100.0 * math.sqrt(1.0 - frobenius[rank] ** 2),
    )
