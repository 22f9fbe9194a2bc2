"""The `summary` block that begins every results.json of every trainer.

One layout for every method, so that a reader (the README's table, plots,
benchmarks, the tuner) never asks which method wrote the file::

    "summary": {
        "method": "dlra",
        "test_accuracy": 0.8925,          # fraction, on the test split
        "best_val_accuracy": 0.8931,      # fraction, None without validation
        "epochs": 30,                     # of training behind the model
        "deployable": {"params": ..., "flops_mac1": ..., "flops_mac2": ...},
        "method_size": {"params": ..., ...},   # only where it differs
        "train_time_s": ..., "wall_time_s": ...,
        "settings": {"train": {...}, "method": {...}}
    }

``deployable`` counts the plain Keras model that is exported; ``method_size``
is the method's own count of the trained model (DLRA's factorized W'), given
only where it differs from the deployable one. Method detail stays under the
method's name, beside the summary.
"""

from typing import Any

SIZE_KEYS = ("params", "flops_mac1", "flops_mac2")


def summary_block(
    *,
    method: str,
    test_accuracy: float,
    best_val_accuracy: float | None,
    epochs: int,
    deployable: dict[str, Any],
    method_size: dict[str, Any] | None,
    train_time_s: float,
    wall_time_s: float,
    settings: dict[str, Any],
) -> dict[str, Any]:
    """Returns one summary block (see the module docstring).

    Args:
        method: The method's name.
        test_accuracy: Test accuracy of the model the run delivers, fraction.
        best_val_accuracy: Best validation accuracy over its epochs; for a
            model made after training (prox's decompositions), its own.
        epochs: Epochs of training behind the model (every phase: for LC
            the reference's, the L steps' and the fine-tuning's).
        deployable: Its plain exported model's ``params`` and FLOPs.
        method_size: The method's own count, or None; left out when equal.
        train_time_s: Training time.
        wall_time_s: Time of the whole run.
        settings: ``{"train": ..., "method": ...}``: the command's settings.
    """
    block = {
        "method": method,
        "test_accuracy": test_accuracy,
        "best_val_accuracy": best_val_accuracy,
        "epochs": epochs,
        "deployable": {key: deployable[key] for key in SIZE_KEYS},
    }
    if method_size is not None and any(
        method_size[key] != deployable[key] for key in SIZE_KEYS
    ):
        block["method_size"] = {key: method_size[key] for key in SIZE_KEYS}
    block.update(
        train_time_s=train_time_s, wall_time_s=wall_time_s, settings=settings
    )
    return block


def run_summary(
    method: str, results: dict[str, Any], method_settings: dict[str, Any] | None
) -> dict[str, Any]:
    """Returns the summary of one training run from its engine results."""
    return summary_block(
        method=method,
        test_accuracy=results["test_accuracy"],
        best_val_accuracy=results["best_val_accuracy"],
        epochs=results["epochs_completed"],
        deployable=results["deployable"],
        method_size=results,
        train_time_s=results["train_time_s"],
        wall_time_s=results["wall_time_s"],
        settings={"train": results["config"], "method": method_settings},
    )
