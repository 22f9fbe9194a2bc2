"""Carrying optimizer state from a model to a rebuilt one of other shapes.

Keras 3 variables cannot change shape, so a layer that shrinks is rebuilt and
its weights copied in. The optimizer must follow: its slot variables (Adam's
momentum and velocity, SGD's momentum, ...) are created per trainable
variable and named `{variable.path with '/' -> '_'}_{slot}`, which is how the
functions here find the slots of each variable without knowing the optimizer.
"""

from collections.abc import Callable, Mapping, Sequence

import keras
import numpy as np

from keras_rank.core.errors import ConfigError

SlotMap = Callable[[np.ndarray], np.ndarray]


def _slot_prefix(variable) -> str:
    return variable.path.replace("/", "_") + "_"


def optimizer_slots(
    optimizer: keras.optimizers.Optimizer, variables: Sequence
) -> dict[str, dict[str, keras.Variable]]:
    """Maps each variable's path to its optimizer slots by slot name.

    Args:
        optimizer: A built optimizer.
        variables: The variables it was built on (usually the model's
            trainable variables).

    Returns:
        `{variable.path: {slot_name: slot_variable}}`; a variable whose
        optimizer keeps no slots (plain SGD) maps to an empty dict.
    """
    prefixes = sorted(
        ((_slot_prefix(v), v.path) for v in variables),
        key=lambda item: len(item[0]),
        reverse=True,
    )
    slots: dict[str, dict[str, keras.Variable]] = {v.path: {} for v in variables}
    for slot in optimizer.variables:
        for prefix, path in prefixes:
            if slot.name.startswith(prefix):
                slots[path][slot.name[len(prefix) :]] = slot
                break
    return slots


def carry_optimizer_state(
    old_optimizer: keras.optimizers.Optimizer,
    old_variables: Sequence,
    new_optimizer: keras.optimizers.Optimizer,
    new_variables: Sequence,
    slot_maps: Mapping[str, SlotMap] | None = None,
) -> None:
    """Copies slot values and the step count into a freshly built optimizer.

    Args:
        old_optimizer: The optimizer that trained `old_variables`.
        old_variables: Trainable variables of the old model.
        new_optimizer: An optimizer of the same class, built on
            `new_variables`.
        new_variables: Trainable variables of the rebuilt model.
        slot_maps: `{new variable path: fn(old slot value) -> new slot value}`
            for variables whose shape changed.

    Raises:
        ConfigError: A variable changed shape and has no entry in `slot_maps`,
            or a mapped slot has the wrong shape.
    """
    slot_maps = slot_maps or {}
    old_by_path = {v.path: v for v in old_variables}
    if old_by_path and not any(v.path in old_by_path for v in new_variables):
        raise ConfigError(
            "No variable of the rebuilt model has a path of the old one (old: "
            f"{sorted(old_by_path)[:3]}, new: {[v.path for v in new_variables][:3]}); "
            "its optimizer slots would be lost. Rebuild it with the same layer "
            "names from a Functional model's config."
        )
    old_slots = optimizer_slots(old_optimizer, old_variables)
    new_slots = optimizer_slots(new_optimizer, new_variables)
    new_optimizer.iterations.assign(old_optimizer.iterations)
    for variable in new_variables:
        old = old_by_path.get(variable.path)
        if old is None:
            continue
        same_shape = tuple(old.shape) == tuple(variable.shape)
        slot_map = slot_maps.get(variable.path)
        if slot_map is None and not same_shape:
            raise ConfigError(
                f"Variable '{variable.path}' changed shape from {tuple(old.shape)} "
                f"to {tuple(variable.shape)} but slot_maps has no entry for it."
            )
        for name, slot in new_slots[variable.path].items():
            value = np.asarray(old_slots[variable.path][name])
            if slot_map is not None:
                value = np.asarray(slot_map(value))
            if value.shape != tuple(slot.shape):
                raise ConfigError(
                    f"slot_maps['{variable.path}'] gave slot '{name}' the shape "
                    f"{value.shape}; the variable has shape {tuple(slot.shape)}."
                )
            slot.assign(value)
