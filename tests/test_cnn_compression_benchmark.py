"""benchmarks/cnn_compression.py: each target is judged as the issue writes it."""

import json
import sys

import keras
import pytest
from trainer_runs import REPO

from keras_rank.core import costs
from keras_rank.layers.deployable import deployable_size
from keras_rank.layers.rank_specs import layer_specs
from keras_rank.models import build_model

sys.path.insert(0, str(REPO / "benchmarks"))

import cnn_compression  # noqa: E402


def _row(accuracy, flops, latency, drop):
    return {
        "formats": {
            "float32": {
                "test_accuracy": accuracy,
                "flops_ratio": flops,
                "latency_ratio": latency,
                "drop_vs_dense_float32_pt": drop,
            }
        }
    }


def _models(lc_flops, lc_latency, prox):
    return {
        "dense": _row(0.92, 1.0, 1.0, 0.0),
        "lc_flops": _row(*lc_flops),
        "lc_latency": _row(*lc_latency),
        "prox_90": _row(*prox),
    }


def test_resnet_targets_met_by_one_row_and_missed_by_the_others():
    models = _models(
        (0.918, 0.45, 0.60, 0.2),  # 2.2x at -0.2 pt; latency 0.15 above
        (0.918, 0.55, 0.58, 0.2),  # only 1.8x fewer FLOPs
        (0.900, 0.40, 0.45, 2.0),  # 2.5x but 2 pt down
    )
    lines = cnn_compression.targets("resnet20", models)
    assert lines[0].startswith(">= 2x fewer FLOPs") and lines[0].endswith(
        "met by lc_flops"
    )
    assert lines[1].startswith("lc_flops:") and lines[1].endswith("MISSED")
    assert lines[2].startswith("lc_latency:") and lines[2].endswith(": met")
    assert lines[3].startswith("prox_90:") and lines[3].endswith(": met")
    # Faster than flops (0.58 < 0.60) at the same accuracy.
    assert lines[4].startswith("latency criterion") and lines[4].endswith(": met")


def test_the_latency_criterion_must_be_as_fast_and_as_accurate():
    slower = _models(
        (0.918, 0.45, 0.50, 0.2), (0.918, 0.45, 0.52, 0.2), (0.9, 0.4, 0.4, 2)
    )
    less_accurate = _models(
        (0.918, 0.45, 0.50, 0.2), (0.910, 0.45, 0.45, 1.0), (0.9, 0.4, 0.4, 2)
    )
    for models in (slower, less_accurate):
        last = cnn_compression.targets("mobilenetv2_small", models)[-1]
        assert last.startswith("latency criterion") and last.endswith("MISSED")
    # No FLOPs target on MobileNetV2: one latency line per compressed row.
    assert len(cnn_compression.targets("mobilenetv2_small", slower)) == 4


@pytest.mark.parametrize("net", cnn_compression.NETS)
@pytest.mark.parametrize("row", cnn_compression.BASELINE_ROWS)
def test_the_baseline_row_starts_within_its_flops_budget_on_the_exported_model(
    net, row, tmp_path
):
    keras.utils.set_random_seed(0)
    dense = build_model(net, (28, 28, 1), 10)
    scheme, multiple = cnn_compression.BASELINE_ROWS[row]
    start = cnn_compression._baseline_start(
        dense, tmp_path / "row" / "start.keras", scheme, multiple
    )
    model = keras.saving.load_model(start)
    ratio = deployable_size(model)["flops_mac1"] / costs.model_cost(dense).flops_mac1
    assert 0.45 < ratio <= cnn_compression.BASELINE_FLOPS
    ranks = json.loads((tmp_path / "row" / cnn_compression.RANKS_FILE).read_text())
    specs = layer_specs(dense, "flops", scheme)
    assert set(ranks) == {spec.name for spec in specs}
    for spec in specs:  # a multiple, or the layer's full rank (kept dense)
        rank = ranks[spec.name]
        assert isinstance(rank, str) or rank % multiple == 0, (spec.name, rank)
