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

from keras_rank import factorize, models, plots
from keras_rank.dlra.callback import DLRA, DLRAConfig
from keras_rank.training import TrainConfig, train_and_evaluate


def summary_table(results: dict[str, Any]) -> str:
    """Returns the end-of-run summary: accuracy, sizes and per-layer dims."""
    dlra = results["dlra"]

    def change(key: str) -> str:
        return f"{dlra[key + '_before']:,} -> {dlra[key + '_after']:,}"

    lines = [
        f"test accuracy      {results['test_accuracy']:.4f}",
        f"parameters         {change('params')}"
        f"  ({100 * dlra['compression']:.2f} % removed)",
        f"FLOPs (1/MAC)      {change('flops_mac1')}",
        f"FLOPs (2/MAC)      {change('flops_mac2')}",
        "",
        f"{'layer':<10}{'input':>8}{'output':>8}{'feat.':>8}",
    ]
    for layer in dlra["layers"]:
        lines.append(
            f"{layer['layer']:<10}{layer['input']:>8}{layer['output']:>8}"
            f"{layer['features']:>8}"
        )
    return "\n".join(lines)


def train_dlra(
    config: TrainConfig, dlra_config: DLRAConfig, workdir: str | os.PathLike
) -> dict[str, Any]:
    """Trains `config.model` with RaRe + DLRA; resumes from `workdir`.

    With every part switched off (no FN, no fusion, no loss) the zoo model is
    trained as it is: the baseline of Table 1.

    Returns:
        The results written to results.json.
    """
    method = DLRA(dlra_config, seed=config.seed)

    def model_fn(cfg: TrainConfig, input_shape, num_classes) -> keras.Model:
        model = models.build_model(cfg.model, input_shape, num_classes)
        if not dlra_config.factorizes:
            return model
        return factorize.factorize_model(
            model, frobenius_norm=dlra_config.frobenius_norm
        )

    factorized = dlra_config.factorizes
    path = pathlib.Path(workdir)

    def report(trainer) -> dict[str, Any]:
        # Runs on every worker; only the chief writes files.
        entries = method.report(trainer) if factorized else {}
        if trainer.is_chief:
            plots.plot_curves(trainer.history, path / "curves.png")
        if factorized and trainer.is_chief:
            compact = factorize.to_plain_model(trainer.model)
            compact.save(path / "model_compact.keras")
            plots.plot_compression(trainer.history, path / "compression.png")
            plots.plot_layer_dims(entries["dlra"]["layers"], path / "layer_dims.png")
        return entries

    results = train_and_evaluate(
        config,
        workdir,
        model_fn=model_fn,
        loss_terms=method.loss_terms if factorized else (),
        gradient_transforms=method.gradient_transforms,
        callbacks=[method] if factorized else (),
        report=report,
        method_config={"dlra": dataclasses.asdict(dlra_config)},
    )
    if factorized and config.verbose:
        print(summary_table(results))
    return results
