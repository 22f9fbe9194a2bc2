"""Training examples that calibrate int8 quantization."""

from collections.abc import Callable, Iterator

import numpy as np

from keras_rank.data.sources import ExampleSource


def representative_examples(source: ExampleSource, count: int, seed: int) -> np.ndarray:
    """Returns `count` examples of `source` (fewer if it has fewer), as float32.

    Args:
        source: The training split (never the test split).
        count: Number of examples, >= 1.
        seed: Seed of the draw.

    Returns:
        The images, float32 in the model's input range, shape
        ``(count, *example_shape)``.
    """
    images, _ = next(iter(source.batches(count, shuffle_seed=seed)))
    return images.numpy()


def representative_dataset(
    examples: np.ndarray,
) -> Callable[[], Iterator[list[np.ndarray]]]:
    """Returns the converter's `representative_dataset`: one example a call."""

    def generate() -> Iterator[list[np.ndarray]]:
        for index in range(len(examples)):
            yield [examples[index : index + 1]]

    return generate
