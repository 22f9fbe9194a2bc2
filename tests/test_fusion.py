"""Tests of keras_rank.dlra.fusion: every fusion must keep the network's function."""

import numpy as np
import pytest

from keras_rank.core.errors import ConfigError
from keras_rank.dlra import fusion
from keras_rank.layers.state import FactorState

TOL = {"rtol": 1e-5, "atol": 1e-5}


# --------------------------------------------------------------------------
# A NumPy reference of the factorized layer, written from the state's
# docstring: W = P W' Q built densely.


def make_state(n, m, seed=0, fn=False, bias=True, in_channels=None):
    rng = np.random.default_rng(seed)
    kernel = rng.normal(size=(n, m)).astype(np.float32)
    channels = n if in_channels is None else in_channels
    return FactorState(
        kernel=kernel,
        bias=rng.normal(size=m).astype(np.float32) if bias else None,
        gain=np.float32(1.3) if fn else None,
        norm0=np.float32(0.8 * np.linalg.norm(kernel)) if fn else None,
        col_mask=np.ones(n, np.float32),
        row_mask=np.ones(m, np.float32),
        q_index=np.arange(n, dtype=np.int32),
        q_coef=np.ones(n, np.float32),
        p_index=np.arange(m, dtype=np.int32),
        p_coef=np.ones(m, np.float32),
        in_index=np.arange(channels, dtype=np.int32),
        in_scale=np.ones(channels, np.float32),
        feature_group=np.arange(m, dtype=np.int32),
        feature_scale=np.ones(m, np.float32),
    )


def make_chain(sizes, seed=0, fn=False, bias=True):
    return [
        make_state(n, m, seed=seed + i, fn=fn, bias=bias)
        for i, (n, m) in enumerate(zip(sizes[:-1], sizes[1:], strict=True))
    ]


def dense_q(state):
    q = np.zeros((len(state.col_mask), len(state.q_index)))
    q[state.q_index, np.arange(len(state.q_index))] = state.q_coef
    return q


def dense_p(state):
    p = np.zeros((len(state.p_index), len(state.row_mask)))
    p[np.arange(len(state.p_index)), state.p_index] = state.p_coef
    return p


def masked_bias(state):
    if state.bias is None:
        return np.zeros(len(state.row_mask))
    return state.bias.astype(np.float64) * state.row_mask


def original_inputs(state, x):
    return state.in_scale * x[:, state.in_index]


def layer_outputs(state, x):
    """y = W x_orig + P b', W = P W' Q (m x n)."""
    w_prime = state.effective_kernel.T.astype(np.float64)
    w = dense_p(state) @ w_prime @ dense_q(state)
    return original_inputs(state, x) @ w.T + dense_p(state) @ masked_bias(state)


def pre_activations(state, x):
    """z = W' Q x_orig + b' (one entry per row group)."""
    w_prime = state.effective_kernel.T.astype(np.float64)
    return original_inputs(state, x) @ (w_prime @ dense_q(state)).T + masked_bias(state)


def relu(x):
    return np.maximum(x, 0.0)


def layer_features(state, x):
    z = pre_activations(state, x)
    return relu(state.feature_scale * z[:, state.feature_group])


def chain_outputs(states, x):
    """ReLU features between layers, the last layer's outputs y at the end."""
    for state in states[:-1]:
        x = layer_features(state, x)
    return layer_outputs(states[-1], x)


def inputs(n, seed=99, batch=16):
    return np.random.default_rng(seed).normal(size=(batch, n))


def norm_e(state):
    return float(np.linalg.norm(state.effective_kernel))


def set_parallel_columns(state, keep, drop, ratio):
    state.kernel[drop] = ratio * state.kernel[keep]


def set_parallel_rows(state, keep, drop, ratio):
    state.kernel[:, drop] = ratio * state.kernel[:, keep]
    if state.bias is not None:
        state.bias[drop] = ratio * state.bias[keep]


# --------------------------------------------------------------------------
# The reference itself.


def test_reference_unfused_layer_is_plain_dense():
    state = make_state(5, 4, fn=True)
    x = inputs(5)
    want = x @ state.effective_kernel + state.bias
    np.testing.assert_allclose(layer_outputs(state, x), want, **TOL)
    np.testing.assert_allclose(layer_features(state, x), relu(want), **TOL)


# --------------------------------------------------------------------------
# Coefficients.


def test_fusion_coefficients_least_squares_ratio():
    keep = np.array([1.0, 2.0, -1.0])
    r, s = fusion.fusion_coefficients(-3.0 * keep, keep)
    assert r == pytest.approx(-3.0)
    assert s == pytest.approx(np.sqrt(10.0))
    noisy = 2.0 * keep + np.array([0.1, -0.3, 0.2])
    r, _ = fusion.fusion_coefficients(noisy, keep)
    assert r == pytest.approx(np.linalg.lstsq(keep[:, None], noisy, rcond=None)[0][0])


def test_fusion_coefficients_zero_keep_gives_zero_ratio():
    assert fusion.fusion_coefficients(np.ones(3), np.zeros(3)) == (0.0, 1.0)


def test_fusion_coefficients_sum_zero_keep_does_not_blow_up():
    keep = np.array([1.0, -1.0, 2.0, -2.0])
    r, _ = fusion.fusion_coefficients(1.5 * keep, keep)
    assert r == pytest.approx(1.5)


# --------------------------------------------------------------------------
# Columns.


@pytest.mark.parametrize("fn", [False, True])
@pytest.mark.parametrize("ratio", [2.5, -2.5, 0.4, -0.4])
def test_fuse_columns_parallel_or_opposite_keeps_outputs_and_keeps_shorter(fn, ratio):
    state = make_state(6, 5, fn=fn)
    set_parallel_columns(state, keep=1, drop=3, ratio=ratio)
    x = inputs(6)
    before, norm_before = layer_outputs(state, x), norm_e(state)
    shorter = 1 if abs(ratio) > 1 else 3
    record = fusion.fuse_columns(state, 1, 3)
    assert record.axis == "columns"
    assert (record.kept, record.dropped) == (shorter, 4 - shorter)
    assert np.sign(record.r) == np.sign(ratio)
    assert record.s == pytest.approx(np.sqrt(record.r**2 + 1))
    assert state.col_mask[record.dropped] == 0.0
    np.testing.assert_array_equal(state.kernel[record.dropped], 0.0)
    assert not np.any(state.q_index == record.dropped)
    np.testing.assert_allclose(layer_outputs(state, x), before, **TOL)
    if fn:
        assert norm_e(state) == pytest.approx(norm_before, rel=1e-5)


def test_fuse_columns_q_row_is_r_q_drop_plus_q_keep_over_s():
    state = make_state(4, 3)
    set_parallel_columns(state, keep=0, drop=2, ratio=-2.0)
    q_before = dense_q(state)
    record = fusion.fuse_columns(state, 2, 0)
    r, s = record.r, record.s
    want = (r * q_before[2] + q_before[0]) / s
    np.testing.assert_allclose(dense_q(state)[0], want, **TOL)
    np.testing.assert_allclose(state.kernel[0], s * make_state(4, 3).kernel[0], **TOL)


def test_fuse_columns_without_bias_keeps_outputs():
    state = make_state(5, 4, bias=False)
    set_parallel_columns(state, keep=4, drop=0, ratio=3.0)
    x = inputs(5)
    before = layer_outputs(state, x)
    fusion.fuse_columns(state, 0, 4)
    np.testing.assert_allclose(layer_outputs(state, x), before, **TOL)


@pytest.mark.parametrize("fn", [False, True])
def test_fuse_columns_three_parallel_fused_twice_is_exact(fn):
    state = make_state(7, 4, fn=fn)
    set_parallel_columns(state, keep=2, drop=5, ratio=2.0)
    set_parallel_columns(state, keep=2, drop=6, ratio=-3.0)
    x = inputs(7)
    before, norm_before = layer_outputs(state, x), norm_e(state)
    first = fusion.fuse_columns(state, 2, 5)
    second = fusion.fuse_columns(state, first.kept, 6)
    assert first.kept == 2 and second.kept == 2
    assert fusion.live_counts(state)["groups_in"] == 5
    np.testing.assert_allclose(layer_outputs(state, x), before, **TOL)
    if fn:
        assert norm_e(state) == pytest.approx(norm_before, rel=1e-5)


def test_fuse_columns_zero_column_is_dropped_not_kept():
    state = make_state(4, 3)
    state.kernel[1] = 0.0
    x = inputs(4)
    before = layer_outputs(state, x)
    record = fusion.fuse_columns(state, 1, 2)
    assert (record.kept, record.dropped, record.r) == (2, 1, 0.0)
    np.testing.assert_allclose(layer_outputs(state, x), before, **TOL)


def test_fuse_columns_nearly_parallel_is_close():
    state = make_state(6, 40, seed=3)
    rng = np.random.default_rng(5)
    state.kernel[4] = 2.0 * state.kernel[0] + 1e-3 * rng.normal(size=40)
    x = inputs(6)
    before = layer_outputs(state, x)
    fusion.fuse_columns(state, 0, 4)
    np.testing.assert_allclose(layer_outputs(state, x), before, atol=2e-2)


# --------------------------------------------------------------------------
# Rows.


def chain_and_layer(states, x):
    return chain_outputs(states, x), layer_outputs(states[0], x)


@pytest.mark.parametrize("fn", [False, True])
@pytest.mark.parametrize("ratio", [1.8, -1.8, 0.5, -0.5])
@pytest.mark.parametrize("reduce", [False, True])
def test_fuse_rows_parallel_or_opposite_keeps_chain_outputs(fn, ratio, reduce):
    states = make_chain([5, 6, 4], fn=fn)
    first, second = states
    set_parallel_rows(first, keep=2, drop=4, ratio=ratio)
    x = inputs(5)
    if reduce:
        fusion.init_feature_reduction(first, second)
    chain_before, layer_before = chain_and_layer(states, x)
    norm_before = norm_e(first)
    record = fusion.fuse_rows(first, 2, 4, next_state=second if reduce else None)
    shorter = 2 if abs(ratio) > 1 else 4
    assert record.axis == "rows"
    assert (record.kept, record.dropped) == (shorter, 6 - shorter)
    assert first.row_mask[record.dropped] == 0.0
    assert first.bias[record.dropped] == 0.0
    np.testing.assert_array_equal(first.kernel[:, record.dropped], 0.0)
    chain_after, layer_after = chain_and_layer(states, x)
    np.testing.assert_allclose(layer_after, layer_before, **TOL)
    np.testing.assert_allclose(chain_after, chain_before, **TOL)
    if fn:
        assert norm_e(first) == pytest.approx(norm_before, rel=1e-5)
    if not reduce:
        np.testing.assert_array_equal(first.feature_group, first.p_index)
        np.testing.assert_array_equal(first.feature_scale, first.p_coef)


def test_fuse_rows_p_column_is_r_p_drop_plus_p_keep_over_s():
    state = make_state(3, 5)
    set_parallel_rows(state, keep=3, drop=1, ratio=-4.0)
    p_before = dense_p(state)
    record = fusion.fuse_rows(state, 1, 3)
    want = (record.r * p_before[:, 1] + p_before[:, 3]) / record.s
    np.testing.assert_allclose(dense_p(state)[:, 3], want, **TOL)


def test_fuse_rows_bias_not_parallel_is_not_exact():
    """The bias is part of a row: r and the exactness account for it."""
    state = make_state(4, 5)
    state.kernel[:, 1] = 2.0 * state.kernel[:, 0]
    state.bias[1] = 2.0 * state.bias[0] + 5.0
    x = inputs(4)
    before = layer_outputs(state, x)
    record = fusion.fuse_rows(state, 0, 1)
    assert record.r != pytest.approx(2.0)
    assert not np.allclose(layer_outputs(state, x), before, atol=1e-3)


@pytest.mark.parametrize("reduce", [False, True])
def test_fuse_rows_three_parallel_fused_twice_is_exact(reduce):
    states = make_chain([4, 7, 3], seed=4, fn=True)
    first, second = states
    set_parallel_rows(first, keep=1, drop=3, ratio=1.5)
    set_parallel_rows(first, keep=1, drop=6, ratio=-2.0)
    if reduce:
        fusion.init_feature_reduction(first, second)
    x = inputs(4)
    before = chain_and_layer(states, x)
    next_state = second if reduce else None
    a = fusion.fuse_rows(first, 1, 3, next_state=next_state)
    fusion.fuse_rows(first, a.kept, 6, next_state=next_state)
    after = chain_and_layer(states, x)
    for got, want in zip(after, before, strict=True):
        np.testing.assert_allclose(got, want, **TOL)
    counts = fusion.live_counts(first)
    assert counts["groups_out"] == 5
    assert counts["features_out"] == (6 if reduce else 7)


def test_feature_reduction_positive_ratio_is_lossless_and_drops_a_feature():
    states = make_chain([5, 6, 3], seed=7)
    first, second = states
    fusion.init_feature_reduction(first, second)
    set_parallel_rows(first, keep=0, drop=5, ratio=2.0)
    x = inputs(5)
    before = chain_outputs(states, x)
    assert fusion.live_counts(first)["features_out"] == 6
    fusion.fuse_rows(first, 0, 5, next_state=second)
    assert fusion.live_counts(first)["features_out"] == 5
    np.testing.assert_allclose(chain_outputs(states, x), before, **TOL)
    live = first.feature_scale != 0
    np.testing.assert_array_equal(np.abs(first.feature_scale[live]), 1.0)
    assert set(first.feature_group[live]) == {0, 1, 2, 3, 4}


def test_feature_reduction_negative_ratio_keeps_both_signs():
    states = make_chain([5, 6, 3], seed=8)
    first, second = states
    fusion.init_feature_reduction(first, second)
    set_parallel_rows(first, keep=0, drop=5, ratio=-2.0)
    x = inputs(5)
    before = chain_outputs(states, x)
    fusion.fuse_rows(first, 0, 5, next_state=second)
    assert fusion.live_counts(first)["features_out"] == 6
    np.testing.assert_allclose(chain_outputs(states, x), before, **TOL)
    live = first.feature_scale != 0
    slots = set(zip(first.feature_group[live], first.feature_scale[live], strict=True))
    assert (0, 1.0) in slots and (0, -1.0) in slots


def test_feature_reduction_then_opposite_then_parallel_merges_into_two_slots():
    states = make_chain([5, 6, 3], seed=9)
    first, second = states
    fusion.init_feature_reduction(first, second)
    set_parallel_rows(first, keep=0, drop=5, ratio=-2.0)
    set_parallel_rows(first, keep=0, drop=3, ratio=3.0)
    set_parallel_rows(first, keep=0, drop=1, ratio=-1.5)
    x = inputs(5)
    before = chain_outputs(states, x)
    kept = 0
    for drop in (5, 3, 1):
        kept = fusion.fuse_rows(first, kept, drop, next_state=second).kept
    assert fusion.live_counts(first)["features_out"] == 4
    np.testing.assert_allclose(chain_outputs(states, x), before, **TOL)


def test_fuse_rows_with_next_state_on_unreduced_pair_is_exact():
    states = make_chain([5, 6, 3], seed=10)
    first, second = states
    set_parallel_rows(first, keep=2, drop=3, ratio=2.0)
    x = inputs(5)
    before = chain_outputs(states, x)
    fusion.fuse_rows(first, 2, 3, next_state=second)
    np.testing.assert_allclose(chain_outputs(states, x), before, **TOL)
    assert fusion.live_counts(first)["features_out"] == 5


def test_init_feature_reduction_fresh_pair_changes_nothing():
    first, second = make_chain([5, 6, 3], seed=11)
    fresh = (first.copy(), second.copy())
    fusion.init_feature_reduction(first, second)
    for got, want in zip((first, second), fresh, strict=True):
        np.testing.assert_array_equal(got.feature_group, want.feature_group)
        np.testing.assert_array_equal(got.feature_scale, want.feature_scale)
        np.testing.assert_array_equal(got.in_index, want.in_index)
        np.testing.assert_array_equal(got.in_scale, want.in_scale)


def test_init_feature_reduction_after_unreduced_fusions_merges_slots():
    states = make_chain([5, 7, 3], seed=12)
    first, second = states
    set_parallel_rows(first, keep=0, drop=2, ratio=2.0)
    set_parallel_rows(first, keep=0, drop=4, ratio=-0.5)
    set_parallel_rows(first, keep=1, drop=6, ratio=3.0)
    for a, b in ((0, 2), (0, 4), (1, 6)):
        fusion.fuse_rows(first, a, b)
    x = inputs(5)
    before = chain_outputs(states, x)
    keys = set(zip(first.p_index, np.sign(first.p_coef), strict=True))
    fusion.init_feature_reduction(first, second)
    np.testing.assert_allclose(chain_outputs(states, x), before, **TOL)
    assert fusion.live_counts(first)["features_out"] == len(keys) == 5
    assert first.feature_group.shape == (7,)
    assert second.in_index.shape == (7,)


# --------------------------------------------------------------------------
# Compaction.


def fuse_chain(states, links):
    """Fuses exactly parallel pairs in every layer of a 3-layer chain."""
    first, second, third = states
    set_parallel_columns(first, keep=0, drop=5, ratio=-2.0)
    fusion.fuse_columns(first, 0, 5)
    set_parallel_rows(first, keep=1, drop=4, ratio=3.0)
    set_parallel_rows(first, keep=1, drop=6, ratio=-0.5)
    first_next = second if 0 in links else None
    kept = fusion.fuse_rows(first, 1, 4, next_state=first_next).kept
    fusion.fuse_rows(first, kept, 6, next_state=first_next)
    set_parallel_columns(second, keep=2, drop=3, ratio=0.5)
    fusion.fuse_columns(second, 2, 3)
    set_parallel_rows(second, keep=0, drop=5, ratio=2.0)
    second_next = third if 1 in links else None
    fusion.fuse_rows(second, 0, 5, next_state=second_next)
    set_parallel_columns(third, keep=1, drop=2, ratio=1.5)
    fusion.fuse_columns(third, 1, 2)


@pytest.mark.parametrize("fn", [False, True])
@pytest.mark.parametrize("links", [{0: 1}, {1: 2}, {0: 1, 1: 2}])
def test_compact_keeps_chain_outputs_and_shrinks_shapes(fn, links):
    states = make_chain([6, 7, 6, 4], seed=20, fn=fn)
    for producer, consumer in links.items():
        fusion.init_feature_reduction(states[producer], states[consumer])
    fuse_chain(states, links)
    x = inputs(6)
    before = chain_outputs(states, x)
    snapshot = [state.copy() for state in states]
    new = fusion.compact(states, links)
    np.testing.assert_allclose(chain_outputs(new, x), before, **TOL)
    assert [s.kernel.shape for s in new] == [(5, 5), (6, 5), (5, 4)]
    assert new[0].q_index.shape == (6,) and new[0].p_index.shape == (7,)
    features = [len(s.feature_group) for s in new]
    assert features[0] == (6 if 0 in links else 7)
    assert features[1] == (5 if 1 in links else 6)
    assert features[2] == 4
    for state in new:
        np.testing.assert_array_equal(state.col_mask, 1.0)
        np.testing.assert_array_equal(state.row_mask, 1.0)
        assert fusion.live_counts(state)["features_out"] == len(state.feature_group)
    for old, kept in zip(states, snapshot, strict=True):
        np.testing.assert_array_equal(old.kernel, kept.kernel)
        np.testing.assert_array_equal(old.in_index, kept.in_index)


def branch_outputs(states, x):
    """States 0 and 1 read x; 2 reads state 0's features (a graph, not a chain)."""
    source, side, reader = states
    return np.concatenate(
        [chain_outputs([source, reader], x), layer_outputs(side, x)], axis=1
    )


def test_compact_follows_a_link_between_states_that_are_not_neighbours():
    states = [make_state(5, 6, seed=30), make_state(5, 6, seed=31)]
    states.append(make_state(6, 3, seed=32))
    source, side, reader = states
    fusion.init_feature_reduction(source, reader)
    set_parallel_rows(source, keep=0, drop=3, ratio=2.0)
    set_parallel_rows(source, keep=0, drop=4, ratio=-1.5)
    fusion.fuse_rows(source, 0, 3, next_state=reader)
    fusion.fuse_rows(source, 0, 4, next_state=reader)
    set_parallel_rows(side, keep=1, drop=2, ratio=0.5)
    fusion.fuse_rows(side, 1, 2)
    x = inputs(5)
    before = branch_outputs(states, x)

    new = fusion.compact(states, {0: 2})

    np.testing.assert_allclose(branch_outputs(new, x), before, **TOL)
    assert [len(s.feature_group) for s in new] == [5, 6, 3]
    assert new[2].in_index.max() == 4 and new[1].in_index.shape == (5,)


def test_compact_without_links_keeps_one_feature_per_output():
    states = make_chain([4, 5, 3], seed=21)
    new = fusion.compact(states, {})
    assert [len(s.feature_group) for s in new] == [5, 3]


def test_compact_rejects_unlinked_reduced_layer():
    states = make_chain([5, 6, 3], seed=22)
    set_parallel_rows(states[0], keep=0, drop=1, ratio=2.0)
    fusion.init_feature_reduction(states[0], states[1])
    fusion.fuse_rows(states[0], 0, 1, next_state=states[1])
    with pytest.raises(ConfigError, match=r"entry for state 0.*links=\{\}"):
        fusion.compact(states, {})


@pytest.mark.parametrize(
    "links, message",
    [
        ([True, False], r"mapping \{producer index: consumer index\}.*\[True, False\]"),
        ({0: 3}, r"indices in \[0, 2\].*\{0: 3\}"),
        ({-1: 0}, r"indices in \[0, 2\]"),
        ({0: True}, r"indices in \[0, 2\]"),
        ({1: 1}, r"two different states.*state 1 linked to itself"),
        ({0: 2, 1: 2}, r"one producer per consumer.*2 producers for state 2"),
        (
            {0: 1},
            r"one input channel per output coordinate of state 0 \(6\).*"
            r"len\(in_index\)=4",
        ),
    ],
)
def test_compact_rejects_malformed_links_naming_them(links, message):
    states = [make_state(4, 6, seed=23), make_state(4, 6, seed=24)]
    states.append(make_state(6, 3, seed=25))
    with pytest.raises(ConfigError, match=message):
        fusion.compact(states, links)


# --------------------------------------------------------------------------
# Errors and counts.


@pytest.mark.parametrize("fuse", [fusion.fuse_columns, fusion.fuse_rows])
def test_fuse_dead_group_raises_naming_argument(fuse):
    state = make_state(5, 5)
    state.col_mask[3] = 0.0
    state.row_mask[3] = 0.0
    with pytest.raises(ConfigError, match="b=3"):
        fuse(state, 1, 3)
    with pytest.raises(ConfigError, match="a=3"):
        fuse(state, 3, 1)


@pytest.mark.parametrize("fuse", [fusion.fuse_columns, fusion.fuse_rows])
def test_fuse_same_group_raises_naming_argument(fuse):
    with pytest.raises(ConfigError, match="a=2, b=2"):
        fuse(make_state(4, 4), 2, 2)


@pytest.mark.parametrize("fuse", [fusion.fuse_columns, fusion.fuse_rows])
def test_fuse_layer_with_single_live_group_raises(fuse):
    state = make_state(3, 3)
    state.col_mask[1:] = 0.0
    state.row_mask[1:] = 0.0
    with pytest.raises(ConfigError, match="state with 1 live"):
        fuse(state, 0, 1)


@pytest.mark.parametrize("fuse", [fusion.fuse_columns, fusion.fuse_rows])
@pytest.mark.parametrize("bad", [7, -1, 1.0, True])
def test_fuse_bad_index_raises_naming_argument(fuse, bad):
    with pytest.raises(ConfigError, match=f"b={bad}"):
        fuse(make_state(4, 4), 0, bad)


def test_fuse_rows_next_state_of_wrong_width_raises():
    first = make_state(4, 5)
    other = make_state(6, 3)
    with pytest.raises(ConfigError, match="next_state"):
        fusion.fuse_rows(first, 0, 1, next_state=other)


def test_fuse_rows_reduced_layer_without_next_state_raises():
    state = make_state(4, 5)
    state.feature_group = state.feature_group[:3]
    state.feature_scale = state.feature_scale[:3]
    with pytest.raises(ConfigError, match="next_state=None"):
        fusion.fuse_rows(state, 0, 1)


def test_failed_fusion_leaves_state_untouched():
    state = make_state(4, 4)
    snapshot = state.copy()
    with pytest.raises(ConfigError):
        fusion.fuse_columns(state, 1, 1)
    np.testing.assert_array_equal(state.kernel, snapshot.kernel)
    np.testing.assert_array_equal(state.q_coef, snapshot.q_coef)


def test_live_counts_counts_live_entries():
    state = make_state(5, 4)
    state.col_mask[0] = 0.0
    state.row_mask[[1, 2]] = 0.0
    state.feature_scale[3] = 0.0
    assert fusion.live_counts(state) == {
        "groups_in": 4,
        "groups_out": 2,
        "features_out": 3,
    }


def test_row_vectors_append_bias():
    state = make_state(3, 4)
    vectors, mask = fusion.row_vectors(state)
    assert vectors.shape == (4, 4)
    np.testing.assert_allclose(vectors[:, :3], state.kernel.T)
    np.testing.assert_allclose(vectors[:, 3], state.bias)
    assert mask is state.row_mask
