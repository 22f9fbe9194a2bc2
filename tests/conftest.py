"""Test set-up: two logical CPU devices (for MirroredStrategy) and tiny data."""

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from synthetic import make_idx_folder  # noqa: E402

# Must run before any TensorFlow op initialises the devices.
_CPU = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    _CPU, [tf.config.LogicalDeviceConfiguration()] * 2
)


@pytest.fixture(scope="session")
def tiny_idx(tmp_path_factory) -> pathlib.Path:
    """A folder of IDX files: 600 train and 200 test 28x28 images, 10 classes."""
    return make_idx_folder(tmp_path_factory.mktemp("tiny_idx"))
