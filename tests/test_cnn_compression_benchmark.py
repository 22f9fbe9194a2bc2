"""benchmarks/cnn_compression.py: each target is judged as the issue writes it."""

import json
import sys

import keras
import pytest
from trainer_runs import REPO

from keras_rank.core import costs
from keras_rank.layers.deployable import deployable_size
from keras_rank.layers.latency import LatencyCosts
from keras_rank.layers.low_rank_conv import conv2d_rank_costs
from keras_rank.layers.low_rank_dense import dense_rank_costs
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


class _MacsLatency:
    """A latency table without timing: 1 us per 1,000 MACs, 2 us per op."""

    def costs(self, layer, scheme=1):
        if isinstance(layer, keras.layers.Conv2D):
            rank_costs = conv2d_rank_costs(layer, scheme)
        else:
            rank_costs = dense_rank_costs(layer)
        return LatencyCosts(
            2.0 + rank_costs.dense_macs / 1000,
            4.0,
            rank_costs.macs_per_rank / 1000,
            {},
        )


@pytest.mark.parametrize("net", cnn_compression.NETS)
@pytest.mark.parametrize("row", cnn_compression.BASELINE_ROWS)
def test_the_baseline_row_starts_within_its_budget(net, row, tmp_path):
    keras.utils.set_random_seed(0)
    dense = build_model(net, (28, 28, 1), 10)
    baseline = cnn_compression.BASELINE_ROWS[row]
    table = _MacsLatency()
    start = cnn_compression._baseline_start(
        dense, tmp_path / "row" / "start.keras", baseline, table
    )
    model = keras.saving.load_model(start)
    specs = layer_specs(dense, baseline.criterion, baseline.scheme, table)
    if baseline.criterion == "flops":  # on the exported model
        spent = deployable_size(model)["flops_mac1"]
        budget = baseline.fraction * costs.model_cost(dense).flops_mac1
    else:  # the compressed layers' latency
        spent = sum(
            spec.dense_cost
            if isinstance(
                model.get_layer(spec.name), keras.layers.Dense | keras.layers.Conv2D
            )
            else spec.offset + spec.alpha * model.get_layer(spec.name).rank
            for spec in specs
        )
        budget = baseline.fraction * sum(spec.dense_cost for spec in specs)
    assert 0.9 * budget < spent <= budget
    ranks = json.loads((tmp_path / "row" / cnn_compression.RANKS_FILE).read_text())
    assert set(ranks) == {spec.name for spec in specs}
    for spec in specs:  # a multiple, or the layer's full rank (kept dense)
        rank = ranks[spec.name]
        assert isinstance(rank, str) or rank % baseline.multiple == 0, (spec.name, rank)


def _measured_net(root, net):
    """Writes the run files of one net's export with a dense and two LC rows."""
    models = {}
    for name, accuracy in (("dense", 0.92), ("lc_flops", 0.91), ("lc_latency", 0.91)):
        row = _row(accuracy, 0.5, 0.55, 1.0)
        row["formats"]["int8"] = row["formats"]["float32"]
        for file in row["formats"].values():
            file["latency"] = {"median_us": 100.0}
        row["keras"] = {"params": 1000}
        models[name] = row
        if name != "dense":
            run = {"lambda": 1e-3, "ranks": {"conv": 4}}
            (root / net / name).mkdir(parents=True)
            (root / net / name / "results.json").write_text(json.dumps({"runs": [run]}))
    (root / net / "export").mkdir(parents=True)
    (root / net / "export" / "export.json").write_text(json.dumps({"models": models}))


def test_tables_keep_what_the_docs_say_of_a_net_not_measured_here(
    tmp_path, monkeypatch
):
    doc = tmp_path / "results.md"
    monkeypatch.setattr(cnn_compression, "RESULTS_DOC", doc)
    old_rows = [
        f"| {net} | lc_flops | 1.00 (2.00) | 0.300 | 0.700 |"
        for net in cnn_compression.NETS
    ]
    doc.write_text(
        "intro\n\n<!-- cnn-summary:begin -->\n"
        + "\n".join(cnn_compression.SUMMARY_HEADER + old_rows)
        + "\n<!-- cnn-summary:end -->\n\n<!-- cnn-compression:begin -->\n"
        + "".join(f"### {net}\n\nold {net} table\n\n" for net in cnn_compression.NETS)
        + "<!-- cnn-compression:end -->\n"
    )
    before = doc.read_text()
    cnn_compression.write_tables(tmp_path / "runs")
    assert doc.read_text() == before  # nothing measured: nothing changes
    first, second = cnn_compression.NETS
    _measured_net(tmp_path / "runs", second)
    block = cnn_compression.write_tables(tmp_path / "runs")
    text = doc.read_text()
    assert f"old {first} table" in block and f"old {second} table" not in block
    assert block.index(f"### {first}") < block.index(f"### {second}")
    assert old_rows[0] in text and old_rows[1] not in text
    assert f"| {second} | lc_latency | 91.00 (92.00) | 0.500 | 0.550 |" in text
    assert (tmp_path / "runs" / "cnn_compression.md").read_text() == block + "\n"
