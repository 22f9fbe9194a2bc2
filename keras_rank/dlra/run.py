"""`train_dlra`: one RaRe + DLRA run, from configs into a work directory.

On top of `run_method`'s outputs the work directory gets
`model_compact.keras` (the trained model rebuilt from plain Dense/Conv2D
layers of the compact sizes: its deployable form), `curves.png`,
`compression.png`, `layer_dims.png`, and a `dlra` section in results.json.

DLRA's own size (`params`, `dlra.params_after`) counts the factorized W', as
the paper does; `deployable` counts model_compact.keras, which can hold more
(`WHY_SIZES_DIFFER`).
"""

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from keras_rank import plots
from keras_rank.dlra.callback import DLRA
from keras_rank.dlra.config import DLRAConfig
from keras_rank.layers import factorize
from keras_rank.layers.deployable import deployable_size
from keras_rank.training import MethodBase, Run, TrainConfig, run_method
from keras_rank.training.evaluation import Deployable

WHY_SIZES_DIFFER = (
    "a plain Dense/Conv2D layer has a weight for every input feature it reads "
    "and every output feature it writes: column groups fused in W' (inputs "
    "summed by Q) and fused rows whose activations are not shared (copied by P) "
    "take their full width there"
)
_SIZE_KEYS = ("params", "flops_mac1", "flops_mac2")


def summary_table(results: dict[str, Any]) -> str:
    """Returns the end-of-run summary: accuracy, sizes and per-layer dims.

    Sizes are given twice, labelled: as DLRA counts them (the factorized W',
    the paper's count) and as the plain exported model holds them
    (`results["deployable"]`, what ships), with the reason when they differ.
    """
    dlra = results["dlra"]
    factorized_before = {key: dlra[f"{key}_before"] for key in _SIZE_KEYS}
    factorized_after = {key: dlra[f"{key}_after"] for key in _SIZE_KEYS}
    lines = [f"{'test accuracy':<44}{results['test_accuracy']:.4f}"]
    lines += _size_rows(
        "parameters (factorized W', paper's count)",
        "factorized model",
        factorized_before,
        factorized_after,
    )
    lines += _size_rows(
        "deployable (plain exported model)",
        "plain exported model",
        dlra["deployable_before"],
        results["deployable"],
    )
    lines.append(
        "model_compact.keras (plain): outputs within "
        f"{dlra['compact_model']['max_abs_diff']:.2g} of the factorized model's"
    )
    if results["deployable"]["params"] != dlra["params_after"]:
        lines.append(f"deployable != W': {WHY_SIZES_DIFFER}")
    lines += ["", f"{'layer':<16}{'input':>8}{'output':>8}{'feat.':>8}"]
    for layer in dlra["layers"]:
        lines.append(
            f"{layer['layer']:<16}{layer['input']:>8}{layer['output']:>8}"
            f"{layer['features']:>8}"
        )
    lines.extend(_left_as_is_lines(dlra["left_as_is"]))
    return "\n".join(lines)


def _size_rows(
    params_label: str, flops_of: str, before: dict[str, int], after: dict[str, int]
) -> list[str]:
    """Three summary rows: parameters (with % removed) and both FLOP counts."""
    removed = 100 * (1 - after["params"] / before["params"])
    labels = (
        params_label,
        f"FLOPs (1/MAC), {flops_of}",
        f"FLOPs (2/MAC), {flops_of}",
    )
    rows = [
        f"{label:<44}{before[key]:,} -> {after[key]:,}"
        for label, key in zip(labels, _SIZE_KEYS, strict=True)
    ]
    rows[0] += f"  ({removed:.2f} % removed)"
    return rows


def _left_as_is_lines(left: list[dict[str, str]]) -> list[str]:
    if not left:
        return []
    return ["", "left as they are (not factorized):"] + [
        f"  {entry['layer']} ({entry['class']}): {entry['reason']}" for entry in left
    ]


def compact_model_report(model: keras.Model, deployable: Deployable) -> dict[str, Any]:
    """Returns the compact plain model's sizes and its distance to `model`.

    The sizes are the deployable ones (``results["deployable"]``), repeated
    here for readers of this entry. The distance is the largest absolute
    difference of the two models' outputs on 32 seeded uniform inputs in
    [0, 1) (inference mode).
    """
    shape = (32, *model.inputs[0].shape[1:])
    inputs = np.random.default_rng(0).random(shape, dtype=np.float32)
    outputs = keras.ops.convert_to_numpy(model(inputs, training=False))
    plain = keras.ops.convert_to_numpy(deployable.model(inputs, training=False))
    return {
        **{key: deployable.size[key] for key in _SIZE_KEYS},
        "max_abs_diff": float(np.max(np.abs(outputs - plain))),
    }


class DLRAMethod(MethodBase):
    """RaRe + DLRA as a `keras_rank.training.Method`.

    Its Dense and Conv2D layers are factorized; every other layer with
    weights is kept as it is and listed in the output and in results.json.
    With every part switched off (no FN, no fusion, no loss) the model is
    trained as it is: the baseline of Table 1.

    Args:
        config: The hyperparameters.
        seed: Seed of the gradient noise (the run's seed).
        verbose: Print the layers left as they are.
    """

    name = "dlra"

    def __init__(self, config: DLRAConfig, seed: int = 0, verbose: int = 1):
        self.config = config
        self.verbose = verbose
        self.callback = DLRA(config, seed=seed)
        self.left_as_is: list[dict[str, str]] = []
        self.deployable_before: dict[str, int] = {}

    def settings(self) -> dict[str, Any]:
        """Returns ``{"dlra": <the config>}``."""
        return {"dlra": dataclasses.asdict(self.config)}

    def prepare_model(self, model: keras.Model) -> keras.Model:
        """Returns the factorized copy of `model` (itself when nothing is on)."""
        if not self.config.factorizes:
            return model
        # Runs on every start, resumed or not: the base model is rebuilt.
        self.left_as_is[:] = factorize.layers_left_as_is(model)
        self.deployable_before.update(deployable_size(model))
        if self.verbose and self.left_as_is:
            print("\n".join(_left_as_is_lines(self.left_as_is)[1:]))
        return factorize.factorize_model(
            model, frobenius_norm=self.config.frobenius_norm
        )

    def loss_terms(self) -> list:
        """Returns RaRe's and the factor L2's terms (those switched on)."""
        return self.callback.loss_terms if self.config.factorizes else []

    def gradient_transforms(self) -> list:
        """Returns the annealed gradient noise, when switched on."""
        return self.callback.gradient_transforms

    def callbacks(self) -> list:
        """Returns the fusion callback (none for the plain baseline)."""
        return [self.callback] if self.config.factorizes else []

    def report(self, run: Run) -> dict[str, Any]:
        """Returns the ``dlra`` entry; writes the compact model and plots."""
        path = run.workdir
        if run.is_chief:
            plots.plot_curves(run.trainer.history, path / "curves.png")
        if not self.config.factorizes:
            return {}
        entries = self.callback.report(run.trainer)
        entries["dlra"]["compact_model"] = compact_model_report(
            run.trainer.model, run.deployable
        )
        entries["dlra"]["left_as_is"] = self.left_as_is
        entries["dlra"]["deployable_before"] = self.deployable_before
        if run.is_chief:
            run.deployable.model.save(path / "model_compact.keras")
            plots.plot_compression(
                run.trainer.history,
                path / "compression.png",
                deployable_compression=1
                - run.deployable.size["params"] / self.deployable_before["params"],
            )
            plots.plot_layer_dims(entries["dlra"]["layers"], path / "layer_dims.png")
        return entries


def train_dlra(
    config: TrainConfig,
    dlra_config: DLRAConfig,
    workdir: str | os.PathLike,
    *,
    model: keras.Model | None = None,
    callbacks: Sequence[Any] = (),
) -> dict[str, Any]:
    """Trains a model with RaRe + DLRA (`DLRAMethod`); resumes from `workdir`.

    The model is `model`, or the one `config` names (zoo or `.keras` file);
    `callbacks` are the user's, as in `keras_rank.training.run_method`.

    Returns:
        The results written to results.json.
    """
    method = DLRAMethod(dlra_config, seed=config.seed, verbose=config.verbose)
    results = run_method(method, config, workdir, model=model, callbacks=callbacks)
    if dlra_config.factorizes and config.verbose:
        print(summary_table(results))
    return results
