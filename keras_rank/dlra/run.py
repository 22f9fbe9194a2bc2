"""`train_dlra`: one RaRe + DLRA run, from configs into a work directory.

On top of `train_and_evaluate`'s outputs the work directory gets
`model_compact.keras` (the trained model rebuilt from plain Dense/Conv2D
layers of the compact sizes: its deployable form), `curves.png`,
`compression.png`, `layer_dims.png`, and a `dlra` section in results.json.

DLRA's own size (`params`, `dlra.params_after`) counts the factorized W', as
the paper does; `deployable` counts model_compact.keras, which can hold more
(`WHY_SIZES_DIFFER`).
"""

import dataclasses
import os
import pathlib
from typing import Any

import keras
import numpy as np

from keras_rank import factorize, plots
from keras_rank.deployable import deployable_size
from keras_rank.dlra.callback import DLRA, DLRAConfig
from keras_rank.training import TrainConfig, train_and_evaluate
from keras_rank.training.run import Deployable

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


def train_dlra(
    config: TrainConfig,
    dlra_config: DLRAConfig,
    workdir: str | os.PathLike,
    *,
    model: keras.Model | None = None,
) -> dict[str, Any]:
    """Trains a model with RaRe + DLRA; resumes from `workdir`.

    The model is `model`, or the one `config` names (zoo or `.keras` file).
    Its Dense and Conv2D layers are factorized; every other layer with
    weights is kept as it is and listed in the output and in results.json.
    With every part switched off (no FN, no fusion, no loss) the model is
    trained as it is: the baseline of Table 1.

    Returns:
        The results written to results.json.
    """
    method = DLRA(dlra_config, seed=config.seed)
    factorized = dlra_config.factorizes
    path = pathlib.Path(workdir)
    left_as_is: list[dict[str, str]] = []
    deployable_before: dict[str, int] = {}

    def prepare_model(base: keras.Model) -> keras.Model:
        # Runs on every start, resumed or not: the base model is rebuilt.
        left_as_is[:] = factorize.layers_left_as_is(base)
        deployable_before.update(deployable_size(base))
        if config.verbose and left_as_is:
            print("\n".join(_left_as_is_lines(left_as_is)[1:]))
        return factorize.factorize_model(
            base, frobenius_norm=dlra_config.frobenius_norm
        )

    def report(trainer, deployable: Deployable) -> dict[str, Any]:
        # Runs on every worker; only the chief writes files.
        if trainer.is_chief:
            plots.plot_curves(trainer.history, path / "curves.png")
        if not factorized:
            return {}
        entries = method.report(trainer)
        entries["dlra"]["compact_model"] = compact_model_report(
            trainer.model, deployable
        )
        entries["dlra"]["left_as_is"] = left_as_is
        entries["dlra"]["deployable_before"] = deployable_before
        if trainer.is_chief:
            deployable.model.save(path / "model_compact.keras")
            plots.plot_compression(
                trainer.history,
                path / "compression.png",
                deployable_compression=1
                - deployable.size["params"] / deployable_before["params"],
            )
            plots.plot_layer_dims(entries["dlra"]["layers"], path / "layer_dims.png")
        return entries

    results = train_and_evaluate(
        config,
        workdir,
        model=model,
        prepare_model=prepare_model if factorized else None,
        loss_terms=method.loss_terms if factorized else (),
        gradient_transforms=method.gradient_transforms,
        callbacks=[method] if factorized else (),
        report=report,
        method_config={"dlra": dataclasses.asdict(dlra_config)},
    )
    if factorized and config.verbose:
        print(summary_table(results))
    return results
