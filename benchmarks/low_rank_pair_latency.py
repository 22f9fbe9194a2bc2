r"""LiteRT latency of one low-rank pair against its full layer, rank by rank.

    python benchmarks/low_rank_pair_latency.py

A low-rank layer is exported as two plain layers in a row. Its MACs fall in
proportion to the rank; this measures whether its time does. For the 3x3
convolutions of the zoo's ResNet-20 on 28x28 inputs (one per stage) and a
MobileNetV2-style 1x1 convolution, in both conv schemes (scheme 2 only
where it differs), each rank's pair and the full layer are exported alone
and timed interleaved on one thread at batch 1
(`keras_rank.layers.latency.measure_forms`, the latency criterion's own
measurement: the 10th percentile of 10 rounds x 100 invocations).

Writes the table to <root>/low_rank_pair_latency.md and between the
``pair-latency`` markers of docs/results.md. Cells are "latency ratio
(FLOPs ratio)", both against the full layer.
"""

import argparse
import pathlib
import sys

import keras

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from tuning_search import replace_block  # noqa: E402

from keras_rank.core.layer_matrices import conv_matrix_shape  # noqa: E402
from keras_rank.layers.latency import measure_forms  # noqa: E402
from keras_rank.layers.low_rank_conv import conv2d_rank_costs  # noqa: E402

RESULTS_DOC = REPO / "docs" / "results.md"
BLOCK = "pair-latency"
RANKS = (1, 2, 4, 6, 8, 12, 16, 24, 32, 48)
# (input shape, filters, kernel size)
SHAPES = (
    ((28, 28, 16), 16, 3),
    ((14, 14, 32), 32, 3),
    ((7, 7, 64), 64, 3),
    ((14, 14, 96), 32, 1),
)


def _conv(input_shape: tuple[int, ...], filters: int, kernel: int):
    layer = keras.layers.Conv2D(filters, kernel, padding="same")
    layer(keras.Input(input_shape))
    return layer


def row(input_shape: tuple[int, ...], filters: int, kernel: int, scheme: int) -> str:
    """Times one layer shape in one scheme; returns its table row."""
    layer = _conv(input_shape, filters, kernel)
    costs = conv2d_rank_costs(layer, scheme)
    full_rank = min(conv_matrix_shape(tuple(layer.kernel.shape), scheme))
    ranks = [rank for rank in RANKS if rank <= full_rank]
    times = measure_forms(layer, scheme, ranks, invocations=100, rounds=10)
    cells = [
        f"{times[rank] / times[None]:.2f} "
        f"({rank * costs.macs_per_rank / costs.dense_macs:.2f})"
        if rank in ranks
        else ""
        for rank in RANKS
    ]
    name = "x".join(map(str, input_shape)) + f" -> {filters}, {kernel}x{kernel}"
    return f"| {name} | {scheme} | {times[None]:.1f} | " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--root", type=pathlib.Path, default=REPO / "runs" / "pair_latency"
    )
    args = parser.parse_args()
    lines = [
        "| conv (input -> filters, kernel) | scheme | full layer µs | "
        + " | ".join(f"rank {rank}" for rank in RANKS)
        + " |",
        "| --- " * (3 + len(RANKS)) + "|",
    ]
    for input_shape, filters, kernel in SHAPES:
        for scheme in (1, 2) if kernel > 1 else (1,):
            lines.append(row(input_shape, filters, kernel, scheme))
            print(lines[-1], flush=True)
    table = "\n".join(lines)
    args.root.mkdir(parents=True, exist_ok=True)
    (args.root / "low_rank_pair_latency.md").write_text(table + "\n")
    RESULTS_DOC.write_text(replace_block(RESULTS_DOC.read_text(), BLOCK, table))


if __name__ == "__main__":
    main()
