"""`train_dlra`: one RaRe + DLRA run, from configs into a work directory.

On top of `train_and_evaluate`'s outputs the work directory gets
`model_compact.keras` (the trained model rebuilt from plain Dense/Conv2D
layers of the compact sizes), `curves.png`, `compression.png`,
`layer_dims.png`, and a `dlra` section in results.json.
"""

import dataclasses
import os
import pathlib
from typing import Any

import keras
import numpy as np

from keras_rank import costs, factorize, plots
from keras_rank.dlra.callback import DLRA, DLRAConfig
from keras_rank.training import TrainConfig, train_and_evaluate


def summary_table(results: dict[str, Any]) -> str:
    """Returns the end-of-run summary: accuracy, sizes and per-layer dims."""
    dlra = results["dlra"]
    compact = dlra["compact_model"]

    def change(key: str) -> str:
        return f"{dlra[key + '_before']:,} -> {dlra[key + '_after']:,}"

    lines = [
        f"test accuracy               {results['test_accuracy']:.4f}",
        f"parameters (factorized W')  {change('params')}"
        f"  ({100 * dlra['compression']:.2f} % removed)",
        f"FLOPs (1/MAC)               {change('flops_mac1')}",
        f"FLOPs (2/MAC)               {change('flops_mac2')}",
        f"compact plain model         {compact['params']:,} parameters, "
        f"{compact['flops_mac2']:,} FLOPs (2/MAC), outputs within "
        f"{compact['max_abs_diff']:.2g} of the factorized model's",
        "",
        f"{'layer':<16}{'input':>8}{'output':>8}{'feat.':>8}",
    ]
    for layer in dlra["layers"]:
        lines.append(
            f"{layer['layer']:<16}{layer['input']:>8}{layer['output']:>8}"
            f"{layer['features']:>8}"
        )
    lines.extend(_left_as_is_lines(dlra["left_as_is"]))
    return "\n".join(lines)


def _left_as_is_lines(left: list[dict[str, str]]) -> list[str]:
    if not left:
        return []
    return ["", "left as they are (not factorized):"] + [
        f"  {entry['layer']} ({entry['class']}): {entry['reason']}" for entry in left
    ]


def compact_model_report(model: keras.Model, compact: keras.Model) -> dict[str, Any]:
    """Returns the compact plain model's sizes and its distance to `model`.

    The distance is the largest absolute difference of the two models'
    outputs on 32 seeded uniform inputs in [0, 1) (inference mode).
    """
    shape = (32, *model.inputs[0].shape[1:])
    inputs = np.random.default_rng(0).random(shape, dtype=np.float32)
    outputs = keras.ops.convert_to_numpy(model(inputs, training=False))
    plain = keras.ops.convert_to_numpy(compact(inputs, training=False))
    cost = costs.model_cost(compact)
    return {
        "params": cost.params,
        "flops_mac1": cost.flops_mac1,
        "flops_mac2": cost.flops_mac2,
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

    def prepare_model(base: keras.Model) -> keras.Model:
        left_as_is[:] = factorize.layers_left_as_is(base)
        if config.verbose and left_as_is:
            print("\n".join(_left_as_is_lines(left_as_is)[1:]))
        return factorize.factorize_model(
            base, frobenius_norm=dlra_config.frobenius_norm
        )

    def report(trainer) -> dict[str, Any]:
        # Runs on every worker; only the chief writes files.
        if trainer.is_chief:
            plots.plot_curves(trainer.history, path / "curves.png")
        if not factorized:
            return {}
        entries = method.report(trainer)
        compact = factorize.to_plain_model(trainer.model)
        entries["dlra"]["compact_model"] = compact_model_report(trainer.model, compact)
        entries["dlra"]["left_as_is"] = left_as_is
        if trainer.is_chief:
            compact.save(path / "model_compact.keras")
            plots.plot_compression(trainer.history, path / "compression.png")
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
