"""Datasets for image classification, read as `tf.data` pipelines.

`load_splits(spec)` opens an IDX folder, an image folder (train/ and test/
with one sub-folder per class) or `tfds:NAME` as train, validation and test
`ExampleSource`s; `ExampleSource.batches` reads one as batches of float32
images in [0, 1] and int32 labels, in an order fixed by a seed. Only IDX data
is held in memory (as uint8); image folders and TFDS are streamed.

Modules: `sources` (the interface, `ArraySource`, `DatasetSource`,
`as_source`), `idx`, `image_folder`, `tfds_source`, `splits`.
"""

from keras_rank.data.config import DataConfig
from keras_rank.data.idx import load_idx_folder, read_idx
from keras_rank.data.image_folder import (
    IMAGE_FORMATS,
    ImageFolderSource,
    load_image_folder,
)
from keras_rank.data.sources import (
    DEFAULT_SHUFFLE_BUFFER,
    ArraySource,
    DatasetSource,
    ExampleSource,
    as_source,
)
from keras_rank.data.splits import (
    DEFAULT_DATA_DIR,
    TFDS_PREFIX,
    DataSplits,
    load_splits,
    stratified_validation_indices,
)
from keras_rank.data.tfds_source import TfdsSource, load_tfds

__all__ = [
    "DEFAULT_DATA_DIR",
    "DataConfig",
    "DEFAULT_SHUFFLE_BUFFER",
    "IMAGE_FORMATS",
    "TFDS_PREFIX",
    "ArraySource",
    "DataSplits",
    "DatasetSource",
    "ExampleSource",
    "ImageFolderSource",
    "TfdsSource",
    "as_source",
    "load_idx_folder",
    "load_image_folder",
    "load_splits",
    "load_tfds",
    "read_idx",
    "stratified_validation_indices",
]
