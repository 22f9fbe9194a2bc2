"""Weight spectra vs Marchenko-Pastur, rank-k residuals and elbows (Heitmann 3.3)."""

import json
import math

import numpy as np
import pytest
from scipy import integrate

from keras_rank.analysis.spectra import (
    MarchenkoPastur,
    correlation_eigenvalues,
    elbow,
    elbow_rank,
    ks_distance,
    layer_spectrum,
    rank_k_approximation,
    residual_curve,
)
from keras_rank.analysis.spectra_plots import plot_layer_spectra, plot_residual_curves
from keras_rank.core.errors import ConfigError

# y = units / inputs below 1, above 1 (point mass at 0), equal to 1 (lower
# edge 0, 1/sqrt singularity), and tiny.
SHAPES = [(400, 1200), (600, 300), (50, 50), (3, 7)]


# ------------------------------------------------------------ the law
@pytest.mark.parametrize("units, inputs", SHAPES)
def test_mp_pdf_integrates_to_one_minus_zero_mass_and_cdf_is_its_integral(
    units, inputs
):
    law = MarchenkoPastur(units, inputs, 0.7 / inputs)
    total, _ = integrate.quad(law.pdf, law.lower, law.upper, limit=200)
    assert total == pytest.approx(1.0 - law.zero_mass, abs=1e-9)
    assert law.cdf(law.upper) == 1.0
    for x in np.linspace(law.lower, law.upper, 9)[1:-1]:
        partial, _ = integrate.quad(law.pdf, law.lower, x, limit=200)
        assert law.cdf(x) == pytest.approx(law.zero_mass + partial, abs=1e-8)


def test_mp_edges_point_mass_and_cdf_outside_the_support():
    law = MarchenkoPastur(600, 300, 0.5)  # y = 2, scale n s2 = 150
    assert law.ratio == 2.0
    assert law.lower == pytest.approx(150 * (1 - math.sqrt(2)) ** 2)
    assert law.upper == pytest.approx(150 * (1 + math.sqrt(2)) ** 2)
    assert law.zero_mass == 0.5
    assert MarchenkoPastur(300, 600, 0.5).zero_mass == 0.0
    np.testing.assert_array_equal(
        law.cdf([-1.0, 0.0, law.lower, law.upper, 1e9]), [0.0, 0.5, 0.5, 1.0, 1.0]
    )
    np.testing.assert_array_equal(law.pdf([-1.0, 0.0, law.lower / 2, 1e9]), 0.0)
    grid = np.linspace(-1.0, 1.1 * law.upper, 2001)
    assert np.all(np.diff(law.cdf(grid)) >= 0)


@pytest.mark.parametrize("units, inputs", [(400, 1200), (600, 300)])
def test_esd_of_a_gaussian_matrix_follows_the_law_and_a_wrong_variance_does_not(
    units, inputs
):
    variance = 0.01
    matrix = np.random.default_rng(0).normal(0.0, 0.1, (units, inputs))
    eigenvalues = correlation_eigenvalues(matrix)
    assert ks_distance(eigenvalues, MarchenkoPastur(units, inputs, variance)) < 0.05
    wrong = MarchenkoPastur(units, inputs, 2 * variance)
    assert ks_distance(eigenvalues, wrong) > 0.15


def test_a_rank_3_spike_leaves_the_bulk_and_moves_the_law_of_its_variance():
    rng = np.random.default_rng(1)
    noise = rng.normal(0.0, 0.1, (400, 1200))
    spike = 0.1 * rng.normal(size=(400, 3)) @ rng.normal(size=(3, 1200))
    eigenvalues = correlation_eigenvalues(noise + spike)
    noise_law = MarchenkoPastur(400, 1200, 0.01)
    # Three eigenvalues far above the noise's edge, the rest at most near it.
    assert eigenvalues[2] > 10 * noise_law.upper
    assert eigenvalues[3] < 1.1 * noise_law.upper
    # The law of the spiked entries' variance (what an init matrix with that
    # structure would give) misses the bulk by far.
    spiked_law = MarchenkoPastur(400, 1200, float(np.var(noise + spike)))
    assert ks_distance(eigenvalues, spiked_law) > 0.5


def test_ks_distance_is_the_sup_over_both_sides_of_every_jump():
    law = MarchenkoPastur(5, 3, 0.4)  # point mass 0.4 at 0
    for eigenvalues in (
        correlation_eigenvalues(np.random.default_rng(2).normal(0, 0.6, (5, 3))),
        np.array([0.0, 0.0, 0.5, 1.2, 1.2]),
        np.array([0.3, 0.7, 2.0, 3.0, 9.0]),
    ):
        jumps = np.concatenate([eigenvalues, [0.0]])
        grid = np.sort(
            np.concatenate(
                [
                    np.linspace(-1, 12, 20001),
                    jumps,
                    jumps - 1e-12,
                    jumps + 1e-12,
                ]
            )
        )
        empirical = np.searchsorted(np.sort(eigenvalues), grid, "right") / 5
        brute = np.max(np.abs(empirical - law.cdf(grid)))
        assert ks_distance(eigenvalues, law) == pytest.approx(brute, abs=1e-9)


# ------------------------------------------------------------ SVD side
@pytest.mark.parametrize("shape", [(7, 4), (4, 7), (5, 5)])
def test_correlation_eigenvalues_equal_eigvalsh_of_w_w_transposed(shape):
    matrix = np.random.default_rng(3).normal(size=shape)
    eigenvalues = correlation_eigenvalues(matrix)
    assert eigenvalues.dtype == np.float64 and eigenvalues.shape == (shape[0],)
    expected = np.linalg.eigvalsh(matrix @ matrix.T)[::-1]
    np.testing.assert_allclose(eigenvalues, expected, atol=1e-12)
    assert np.all(np.diff(eigenvalues) <= 0)
    assert np.all(eigenvalues[min(shape) :] == 0.0)


@pytest.mark.parametrize("norm, order", [("spectral", 2), ("frobenius", "fro")])
@pytest.mark.parametrize("shape", [(9, 5), (5, 9)])
def test_residual_curve_is_the_direct_residual_of_every_rank_k_approximation(
    shape, norm, order
):
    matrix = np.random.default_rng(4).normal(size=shape)
    curve = residual_curve(matrix, norm)
    assert curve.shape == (min(shape) + 1,)
    assert curve[0] == 1.0 and curve[-1] == 0.0
    direct = [
        np.linalg.norm(matrix - rank_k_approximation(matrix, k), order)
        / np.linalg.norm(matrix, order)
        for k in range(min(shape) + 1)
    ]
    np.testing.assert_allclose(curve, direct, atol=1e-12)
    for k in range(min(shape) + 1):
        assert np.linalg.matrix_rank(rank_k_approximation(matrix, k)) == k


def _with_singular_values(values, inputs, seed=0):
    rng = np.random.default_rng(seed)
    left = np.linalg.qr(rng.normal(size=(len(values), len(values))))[0]
    right = np.linalg.qr(rng.normal(size=(inputs, len(values))))[0]
    return (left * values) @ right.T


def test_elbow_rank_is_the_number_of_directions_above_the_bulk():
    # Five strong directions over a flat bulk: the scree curve's knee is k = 5.
    matrix = _with_singular_values([10, 9, 8, 7, 6] + [1] * 45, 80)
    assert elbow_rank(residual_curve(matrix)) == 5
    assert layer_spectrum("d", matrix, init_variance=1.0).elbow_rank == 5


def test_elbow_rank_of_short_and_flat_curves():
    assert elbow_rank(residual_curve(_with_singular_values([3, 2, 1], 5))) == 1
    flat = residual_curve(_with_singular_values([2.0] * 6, 9))
    assert elbow_rank(flat) == 6


def test_rank_k_approximation_beats_every_other_rank_k_matrix():
    rng = np.random.default_rng(5)
    matrix = rng.normal(size=(12, 8))
    k = 3
    best = rank_k_approximation(matrix, k)
    best_error = np.linalg.norm(matrix - best)
    u, s, vt = np.linalg.svd(matrix, full_matrices=False)
    np.testing.assert_allclose(best, (u[:, :k] * s[:k]) @ vt[:k], atol=1e-12)
    others = [rng.normal(size=(12, k)) @ rng.normal(size=(k, 8)) for _ in range(5)]
    # The optimum with its factors perturbed stays rank k and gets worse.
    for scale in (1e-1, 1e-3):
        left = u[:, :k] * s[:k] + scale * rng.normal(size=(12, k))
        right = vt[:k] + scale * rng.normal(size=(k, 8))
        others.append(left @ right)
    # Another rank-k matrix: the optimum's subspace with other weights.
    others.append((u[:, :k] * (s[:k] * 1.01)) @ vt[:k])
    for other in others:
        assert np.linalg.matrix_rank(other) == k
        assert np.linalg.norm(matrix - other) > best_error


# ------------------------------------------------------------ elbow
def test_elbow_of_piecewise_linear_curves_is_their_corner():
    convex = np.concatenate([np.linspace(1.0, 0.1, 11), np.linspace(0.1, 0.0, 41)[1:]])
    assert elbow(convex) == 10
    # Both axes are normalised: an affine map of the values keeps the knee.
    assert elbow(5.0 * convex + 2.0) == 10
    concave = np.concatenate([np.linspace(1.0, 0.9, 38), np.linspace(0.9, 0.0, 14)[1:]])
    assert elbow(concave) == 37


def test_elbow_of_exponential_decay_is_the_hand_computed_knee():
    # c[k] = exp(-k / t), k = 0..L. Normalised, the distance to the chord is
    # 1 - k/L - (exp(-k/t) - exp(-L/t)) / (1 - exp(-L/t)); its derivative
    # vanishes at k* = t ln(L / (t (1 - exp(-L/t)))) = 10 ln(10.0005) = 23.03.
    t, length = 10.0, 100
    knee = t * math.log(length / (t * (1 - math.exp(-length / t))))
    assert knee == pytest.approx(23.03, abs=0.01)
    assert elbow(np.exp(-np.arange(length + 1) / t)) == 23


def test_elbow_of_a_straight_line_is_the_first_index():
    assert elbow(np.linspace(1.0, 0.0, 17)) == 0


# ------------------------------------------------------------ layer spectrum
def test_layer_spectrum_ties_law_distances_residuals_and_elbow_together():
    rng = np.random.default_rng(6)
    init = rng.normal(0.0, 0.5, (6, 4))
    trained = init + 3.0 * np.outer(rng.normal(size=6), rng.normal(size=4))
    spectrum = layer_spectrum("dense", trained, init_matrix=init)
    assert (spectrum.units, spectrum.inputs) == (6, 4)
    assert spectrum.law == MarchenkoPastur(6, 4, float(np.var(init)))
    np.testing.assert_allclose(spectrum.eigenvalues, correlation_eigenvalues(trained))
    np.testing.assert_allclose(spectrum.init_eigenvalues, correlation_eigenvalues(init))
    assert spectrum.ks_trained == ks_distance(spectrum.eigenvalues, spectrum.law)
    assert spectrum.ks_init == ks_distance(spectrum.init_eigenvalues, spectrum.law)
    np.testing.assert_allclose(spectrum.residuals, residual_curve(trained))
    assert spectrum.residual_norm == "spectral"
    assert spectrum.elbow_rank == elbow_rank(spectrum.residuals) == 1
    kept = np.linalg.norm(rank_k_approximation(trained, 1)) / np.linalg.norm(trained)
    assert spectrum.kept_norm_percent == pytest.approx(100 * kept)
    summary = spectrum.as_dict()
    assert json.loads(json.dumps(summary)) == summary
    assert summary["ratio"] == 1.5 and summary["zero_mass"] == pytest.approx(1 / 3)
    assert summary["largest_eigenvalue"] == spectrum.eigenvalues[0]
    assert summary["above_edge_trained"] == int(
        np.sum(spectrum.eigenvalues > spectrum.law.upper)
    )
    assert summary["above_edge_trained"] >= 1

    given = layer_spectrum("dense", trained, init_variance=0.25)
    assert given.law.variance == 0.25
    assert given.ks_init is None and given.init_eigenvalues is None
    assert given.as_dict()["above_edge_init"] is None


def test_layer_spectrum_of_a_single_unit_keeps_rank_one():
    spectrum = layer_spectrum("out", np.ones((1, 5)), init_variance=1.0)
    assert spectrum.elbow_rank == 1 and spectrum.kept_norm_percent == 100.0


# ------------------------------------------------------------ errors
@pytest.mark.parametrize(
    "build, argument",
    [
        (lambda: MarchenkoPastur(0, 5, 1.0), "units"),
        (lambda: MarchenkoPastur(5, 2.5, 1.0), "inputs"),
        (lambda: MarchenkoPastur(5, 5, 0.0), "variance"),
        (lambda: MarchenkoPastur(5, 5, math.inf), "variance"),
        (lambda: rank_k_approximation(np.ones((3, 2)), 3), "k"),
        (lambda: rank_k_approximation(np.ones((3, 2)), -1), "k"),
        (lambda: elbow([1.0, 0.0]), "curve"),
        (lambda: elbow([1.0, 1.0, 1.0]), "curve"),
        (lambda: elbow([1.0, 0.0, 0.5]), "curve"),
        (lambda: residual_curve(np.zeros((3, 2))), "matrix"),
        (lambda: residual_curve(np.ones((3, 2)), "nuclear"), "residual_norm"),
        (lambda: correlation_eigenvalues(np.ones(3)), "matrix"),
        (lambda: correlation_eigenvalues([[1.0, np.nan]]), "matrix"),
        (lambda: ks_distance([], MarchenkoPastur(1, 1, 1.0)), "eigenvalues"),
        (
            lambda: layer_spectrum("d", np.ones((3, 2)), init_matrix=np.ones((2, 3))),
            "init_matrix",
        ),
        (lambda: layer_spectrum("d", np.ones((3, 2))), "init_matrix or init_variance"),
        (
            lambda: layer_spectrum("d", np.ones((3, 2)), init_matrix=np.ones((3, 2))),
            "init_matrix with variance > 0",
        ),
    ],
)
def test_bad_arguments_raise_config_error_naming_them(build, argument):
    with pytest.raises(ConfigError, match=f"Expected {argument}"):
        build()


# ------------------------------------------------------------ plots
def test_plots_write_png_files(tmp_path):
    rng = np.random.default_rng(7)
    init = rng.normal(0.0, 0.1, (30, 12))
    spike = 0.5 * np.outer(rng.normal(size=12), rng.normal(size=30))
    wide = layer_spectrum("wide", init.T + spike, init_variance=0.01)
    tall = layer_spectrum("tall", 3 * init, init_matrix=init)  # point mass at 0
    for plot, name in (
        (plot_layer_spectra, "spectra.png"),
        (plot_residual_curves, "residuals.png"),
    ):
        path = plot([wide, tall], tmp_path / name)
        assert path == tmp_path / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
