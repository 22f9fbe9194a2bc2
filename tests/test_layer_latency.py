"""The latency criterion: LiteRT timings of layer forms, their fit and cache."""

import json

import keras
import numpy as np
import pytest

from keras_rank.core.errors import ConfigError
from keras_rank.layers import latency as latency_lib
from keras_rank.layers.latency import LatencyTable, fit_affine, measured_ranks
from keras_rank.layers.rank_specs import layer_spec, layer_specs
from keras_rank.lc.callback import LC
from keras_rank.lc.config import LCConfig
from keras_rank.prox import decompose
from keras_rank.training import Trainer


def test_measured_ranks_are_geometric_up_to_the_last_rank_with_fewer_macs():
    assert measured_ranks(64, 32.0) == [1, 2, 4, 8, 16, 31]
    assert measured_ranks(3, 100.0) == [1, 2, 3]
    assert measured_ranks(10, 1.5) == [1]
    assert measured_ranks(10, 0.5) == [1]


def test_fit_affine_recovers_a_line_and_keeps_its_terms_non_negative():
    offset, alpha = fit_affine({1: 7.0, 2: 9.0, 4: 13.0})
    assert (offset, alpha) == pytest.approx((5.0, 2.0))
    # A negative intercept is refitted through the origin.
    offset, alpha = fit_affine({1: 1.0, 2: 3.0, 3: 5.0})
    assert offset == 0.0 and alpha == pytest.approx(22.0 / 14.0)
    # Flat (or falling) timings: a fixed cost and a slope of almost nothing.
    offset, alpha = fit_affine({1: 4.0, 2: 3.0})
    assert offset == pytest.approx(3.5) and 0 < alpha < 1e-5
    assert fit_affine({1: 4.0}) == pytest.approx((4.0, 4e-6))


def _dense(inputs=16, units=8, name="hidden"):
    layer = keras.layers.Dense(units, name=name)
    layer.build((None, inputs))
    return layer


def _mlp():
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((12,)),
            keras.layers.Dense(10, activation="tanh", name="hidden"),
            keras.layers.Dense(6, name="out"),
        ]
    )


@pytest.fixture(scope="module")
def timed_shapes(tmp_path_factory):
    """A cache holding real timings of `_dense()` and of `_mlp()`'s layers."""
    folder = tmp_path_factory.mktemp("latency")
    table = LatencyTable(folder, invocations=5, rounds=1)
    table.costs(_dense())
    layer_specs(_mlp(), "latency", 1, table)
    return json.loads((folder / latency_lib.CACHE_FILE).read_text())


def _set_times(times, folder, dense_us, low_rank_us):
    """A table in `folder` with the keys of `times` and made-up timings.

    The full layer takes `dense_us`, rank r ``low_rank_us(r)``.
    """
    ranks = {key: json.loads(key)["rank"] for key in times}
    fake = {
        key: dense_us if rank is None else low_rank_us(rank)
        for key, rank in ranks.items()
    }
    (folder / latency_lib.CACHE_FILE).write_text(json.dumps(fake))
    return LatencyTable(folder)


def test_latency_table_times_each_shape_once_and_reads_the_cache(tmp_path, monkeypatch):
    layer = _dense()
    costs = LatencyTable(tmp_path, invocations=5, rounds=1).costs(layer)
    assert costs.dense_us > 0 and costs.per_rank_us > 0 and costs.offset_us >= 0
    assert sorted(costs.measured_us) == measured_ranks(8, 16 * 8 / 24)
    cached = json.loads((tmp_path / latency_lib.CACHE_FILE).read_text())
    assert len(cached) == 1 + len(costs.measured_us)

    calls = []
    monkeypatch.setattr(
        latency_lib,
        "measure_forms",
        lambda layer, scheme, ranks, **kwargs: calls.append([None, *ranks]) or {},
    )
    again = LatencyTable(tmp_path).costs(_dense(name="another_name"))
    assert again == costs and calls == []
    # Another input width is another shape: it is measured.
    with pytest.raises(KeyError):
        LatencyTable(tmp_path).costs(_dense(inputs=32))
    assert len(calls) == 1 and set(calls[0]) == {None, *measured_ranks(8, 32 * 8 / 40)}


def test_forms_are_the_full_layer_and_the_plain_pairs_the_export_writes():
    layer = _dense()
    forms = latency_lib._forms(layer, None, [1, 3])
    assert [type(x).__name__ for x in forms[None].layers[1:]] == ["Dense"]
    assert [x.units for x in forms[3].layers[1:]] == [3, 8]
    x = np.random.default_rng(0).normal(size=(4, 16)).astype(np.float32)
    u, s, vt = np.linalg.svd(layer.kernel.numpy())
    truncated = (u[:, :3] * s[:3]) @ vt[:3]
    np.testing.assert_allclose(forms[3](x), x @ truncated, atol=1e-5)


def test_latency_spec_takes_the_fit_and_needs_a_table(tmp_path, timed_shapes):
    layer = _dense()
    with pytest.raises(ConfigError, match="latency criterion needs a LatencyTable"):
        layer_spec(layer, "latency", 1)
    table = _set_times(timed_shapes, tmp_path, 50.0, lambda rank: 10.0 + 2.0 * rank)
    spec = layer_spec(layer, "latency", 1, table)
    assert (spec.dense_cost, spec.offset, spec.alpha) == pytest.approx((50, 10, 2))
    assert spec.cost(3, dense=False) == pytest.approx(16.0)


@pytest.mark.parametrize("offset,dense", [(0.0, False), (1e6, True)])
def test_lc_c_step_charges_the_measured_latency(tmp_path, timed_shapes, offset, dense):
    model = _mlp()
    # Rank r takes offset + r us, the full layer 100 us: a fixed cost above
    # the full layer's time keeps every layer dense, none splits every one.
    table = _set_times(timed_shapes, tmp_path, 100.0, lambda rank: offset + rank)
    config = LCConfig(lambdas=(1e-3,), mu0=1e-2, criterion="latency")
    lc = LC(config, lam=1e-3, verbose=0, latency=table)
    trainer = Trainer(model, keras.optimizers.Adam(0.01), callbacks=[lc], verbose=0)
    lc.on_train_begin(trainer)
    layers = lc.steps[0]["layers"]
    assert [layers[spec.name]["dense"] for spec in lc.specs] == [dense, dense]


def test_prox_decomposition_splits_only_where_the_pair_is_faster(
    tmp_path, timed_shapes
):
    model = _mlp()
    table = _set_times(timed_shapes, tmp_path, 100.0, lambda rank: 150.0 + rank)
    _, by_storage = decompose.decompose(model, 50.0)
    _, by_latency = decompose.decompose(model, 50.0, criterion="latency", latency=table)
    assert [entry.low_rank for entry in by_storage] == [True, True]
    assert [entry.low_rank for entry in by_latency] == [False, False]
