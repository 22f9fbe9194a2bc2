"""LiteRT latency of a layer, full and in low-rank form: the `latency` criterion.

A phone runs the exported plain model, where a rank-r layer is two
convolutions (or two matrix products) in a row. Whether that pair is faster
than the full layer depends on more than its MACs: each op has a fixed cost,
and small layers are dominated by it. So the `latency` criterion charges
each layer what LiteRT measures:

* the full layer alone in a model, and its low-rank form (the
  :meth:`~keras_rank.layers._low_rank.LowRankLayer.to_plain` pair the export
  writes) at a few ranks, each converted to a float32 LiteRT file with
  ``model.export(format="litert")`` and timed on one thread at batch 1,
  interleaved (`keras_rank.core.tflite_file.measure_latency`); a form's time
  is the 10th percentile of its invocations, the least disturbed by other
  processes;
* the low-rank timings fitted by least squares with ``t(r) = offset + alpha
  r`` (offset and alpha >= 0), the cost model LC's C step and prox's
  decomposition take.

Each timing is cached by the layer's shape (type, the settings that change
its work, input shape, form and rank) in a JSON file, so a shape is measured
once per work directory, also when several layers share it.
"""

import dataclasses
import json
import os
import pathlib
import tempfile
from typing import Any

import keras
import numpy as np

from keras_rank.core.costs import build_input_shape
from keras_rank.core.errors import ConfigError
from keras_rank.core.layer_matrices import conv_matrix_shape
from keras_rank.core.tflite_file import measure_latency
from keras_rank.layers.low_rank_conv import LowRankConv2D, conv2d_rank_costs
from keras_rank.layers.low_rank_dense import LowRankDense, dense_rank_costs
from keras_rank.layers.plain import low_rank_to_plain_model

CACHE_FILE = "layer_latency.json"
"""The cache's name in a work directory."""

MEASURED_RANKS = 6
"""Ranks of the low-rank form timed per layer shape, spread geometrically."""

_WORK_SETTINGS = (
    "units",
    "filters",
    "kernel_size",
    "strides",
    "padding",
    "dilation_rate",
    "use_bias",
    "activation",
)


@dataclasses.dataclass(frozen=True)
class LatencyCosts:
    """One layer's LiteRT latency, full and per unit of rank, in microseconds.

    Attributes:
        dense_us: Latency of the full layer (10th percentile).
        offset_us: Fitted fixed latency of its low-rank form (two ops).
        per_rank_us: Fitted latency per unit of rank of that form, > 0.
        measured_us: The timed ranks and their latencies.
    """

    dense_us: float
    offset_us: float
    per_rank_us: float
    measured_us: dict[int, float]

    def low_rank_us(self, rank: int) -> float:
        """The fitted latency of the low-rank form at `rank`."""
        return self.offset_us + self.per_rank_us * rank


def measured_ranks(max_rank: int, break_even: float) -> list[int]:
    """Ranks to time: up to `MEASURED_RANKS`, geometric from 1 to the last useful.

    A rank is useful while the low-rank form has fewer MACs than the full
    layer (``rank < break_even``); LiteRT runs none of the others faster.

    Args:
        max_rank: The matrix's full rank, >= 1.
        break_even: MACs of the full layer over MACs per unit of rank.
    """
    top = max(1, min(max_rank, int(np.ceil(break_even)) - 1))
    grid = np.geomspace(1, top, num=min(MEASURED_RANKS, top))
    return sorted({int(round(rank)) for rank in grid})


def fit_affine(times: dict[int, float]) -> tuple[float, float]:
    """Least-squares ``t(r) = offset + alpha r`` with ``offset >= 0, alpha > 0``.

    A negative offset is refitted through the origin; a non-positive slope
    (timings flat within their noise) becomes 1e-6 of the mean time, the
    offset the mean.

    Args:
        times: Latency by rank, at least one rank.

    Returns:
        ``(offset, alpha)``.
    """
    ranks = np.array(sorted(times), np.float64)
    values = np.array([times[int(rank)] for rank in ranks], np.float64)
    if len(ranks) > 1:
        alpha, offset = np.polyfit(ranks, values, 1)
    else:
        alpha, offset = 0.0, float(values[0])
    if offset < 0:
        alpha, offset = float(ranks @ values / (ranks @ ranks)), 0.0
    if alpha <= 0:
        mean = float(values.mean())
        alpha, offset = 1e-6 * mean, mean
    return float(offset), float(alpha)


def _shape_key(layer: keras.layers.Layer, scheme: int | None) -> dict[str, Any]:
    config = layer.get_config()
    return {
        "type": type(layer).__name__,
        "input_shape": list(build_input_shape(layer)[1:]),
        "scheme": scheme,
        **{name: config[name] for name in _WORK_SETTINGS if name in config},
    }


def _form_key(shape_key: dict[str, Any], rank: int | None) -> str:
    return json.dumps({**shape_key, "rank": rank}, sort_keys=True)


def _one_layer_model(
    layer: keras.layers.Layer, input_shape: tuple[int, ...]
) -> keras.Model:
    inputs = keras.Input(input_shape[1:])
    return keras.Model(inputs, layer(inputs))


def _forms(
    layer: keras.layers.Layer, scheme: int | None, ranks: list[int]
) -> dict[int | None, keras.Model]:
    """The full layer (key None) and its low-rank forms, as plain models."""
    input_shape = build_input_shape(layer)
    full = layer.__class__.from_config({**layer.get_config(), "name": "full"})
    forms = {None: _one_layer_model(full, input_shape)}
    for rank in ranks:
        if scheme is None:
            low_rank = LowRankDense.from_dense(layer, rank, name=f"rank_{rank}")
        else:
            low_rank = LowRankConv2D.from_conv2d(
                layer, rank, scheme, name=f"rank_{rank}"
            )
        forms[rank] = low_rank_to_plain_model(_one_layer_model(low_rank, input_shape))
    return forms


def measure_forms(
    layer: keras.layers.Layer,
    scheme: int | None,
    ranks: list[int],
    *,
    invocations: int = 100,
    rounds: int = 5,
) -> dict[int | None, float]:
    """Times a Dense or Conv2D layer alone and in its low-rank forms, in LiteRT.

    Each form is one plain model holding only that layer (the full layer,
    or the pair of the export at each rank), written with
    ``model.export(format="litert")`` and timed interleaved with the others
    on one thread at batch 1 (`keras_rank.core.tflite_file.measure_latency`).

    Args:
        layer: A built Dense or Conv2D layer with a known input shape.
        scheme: The conv scheme of the low-rank form; None for Dense.
        ranks: The ranks of the low-rank forms.
        invocations: Timed invocations per file and round.
        rounds: Interleaved rounds.

    Returns:
        ``{rank: microseconds}``, the 10th percentile of each form's
        invocations; key None is the full layer.
    """
    forms = _forms(layer, scheme, ranks)
    with tempfile.TemporaryDirectory() as folder:
        paths = {}
        for rank, model in forms.items():
            paths[rank] = pathlib.Path(folder, f"{rank}.tflite")
            model.export(paths[rank], format="litert", verbose=False)
        shape = forms[None].inputs[0].shape[1:]
        example = np.random.default_rng(0).standard_normal((1, *shape))
        timings = measure_latency(
            paths,
            example.astype(np.float32),
            invocations=invocations,
            rounds=rounds,
        )
    return {rank: timing["p10_us"] for rank, timing in timings.items()}


class LatencyTable:
    """Measured LiteRT latencies of layer shapes, cached in a JSON file.

    Args:
        folder: The folder of the cache file `CACHE_FILE` (a work directory;
            both are created on the first measurement).
        invocations: Timed invocations per file and round.
        rounds: Interleaved rounds.
    """

    def __init__(
        self, folder: str | os.PathLike, *, invocations: int = 100, rounds: int = 5
    ):
        self.path = pathlib.Path(folder) / CACHE_FILE
        self.invocations = invocations
        self.rounds = rounds
        self._times: dict[str, float] = (
            json.loads(self.path.read_text()) if self.path.is_file() else {}
        )

    def _write(self) -> None:
        """Merges the timings into the file, atomically (workers may share it)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_file():
            self._times = {**json.loads(self.path.read_text()), **self._times}
        partial = self.path.with_name(f".{CACHE_FILE}.{os.getpid()}")
        partial.write_text(json.dumps(self._times, indent=1, sort_keys=True))
        os.replace(partial, self.path)

    def costs(self, layer: keras.layers.Layer, scheme: int = 1) -> LatencyCosts:
        """Returns the latency costs of a built Dense or Conv2D layer.

        Timings missing from the cache are measured (all forms of the layer
        in one interleaved run) and written to it.

        Args:
            layer: A built Dense or Conv2D layer with a known input shape.
            scheme: The conv scheme of the low-rank form (ignored for Dense).

        Raises:
            ConfigError: If the layer is neither Dense nor Conv2D.
        """
        if isinstance(layer, keras.layers.Conv2D):
            rank_costs = conv2d_rank_costs(layer, scheme)
            max_rank = min(conv_matrix_shape(tuple(layer.kernel.shape), scheme))
        elif isinstance(layer, keras.layers.Dense):
            rank_costs, scheme = dense_rank_costs(layer), None
            max_rank = min(layer.kernel.shape)
        else:
            raise ConfigError(
                "Expected a Dense or Conv2D layer for the latency criterion. "
                f"Received: layer={layer.name!r} ({type(layer).__name__})"
            )
        ranks = measured_ranks(
            int(max_rank), rank_costs.dense_macs / rank_costs.macs_per_rank
        )
        shape_key = _shape_key(layer, scheme)
        keys = {rank: _form_key(shape_key, rank) for rank in [None, *ranks]}
        if any(key not in self._times for key in keys.values()):
            measured = measure_forms(
                layer,
                scheme,
                ranks,
                invocations=self.invocations,
                rounds=self.rounds,
            )
            self._times.update({keys[rank]: time for rank, time in measured.items()})
            self._write()
        low_rank = {rank: self._times[keys[rank]] for rank in ranks}
        offset, alpha = fit_affine(low_rank)
        return LatencyCosts(self._times[keys[None]], offset, alpha, low_rank)
