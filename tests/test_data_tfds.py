"""Tests of keras_rank.data.tfds_source on tiny TFDS datasets prepared offline.

The datasets are real TFDS datasets (TFRecord files and metadata) written by
the builders below into a temporary folder, so TFDS' own split slicing, file
shuffling and split metadata are exercised without network.
`tfds.testing.mock_data` cannot do that: it yields the same examples for any
split or slice and knows no split sizes.
"""

import json
import re

import keras
import numpy as np
import pytest
from synthetic import read_batches

from keras_rank import data
from keras_rank.core.errors import ConfigError, DataError
from keras_rank.training import TrainConfig, train_and_evaluate

tfds = pytest.importorskip("tensorflow_datasets")

NAME = "keras_rank_tiny_images"
CLASS_NAMES = ["zero", "one", "two", "three"]


def image_of(index: int, shape=(4, 3, 1)) -> np.ndarray:
    """A uint8 image whose pixel [0, 0, 0] is `index`."""
    image = np.random.default_rng(index).integers(0, 256, shape, np.uint8)
    image[0, 0, 0] = index
    return image


def label_of(index: int) -> int:
    return index % 4


def ids(images: np.ndarray) -> np.ndarray:
    return np.rint(images[:, 0, 0, 0] * 255).astype(int)


class KerasRankTinyImages(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """60 'train' and 20 'holdout' 4x3 grayscale images; no 'test' split."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(4, 3, 1)),
                    "label": tfds.features.ClassLabel(names=CLASS_NAMES),
                }
            ),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        return {
            "train": self._generate_examples(range(60)),
            "holdout": self._generate_examples(range(60, 80)),
        }

    def _generate_examples(self, indices):
        for index in indices:
            yield index, {"image": image_of(index), "label": label_of(index)}


class KerasRankAnySize(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Images of different sizes, as many TFDS datasets have."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(None, None, 3)),
                    "label": tfds.features.ClassLabel(num_classes=2),
                }
            ),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(), "test": self._generate_examples()}

    def _generate_examples(self):
        for index in range(2):
            yield index, {"image": image_of(index, (3 + index, 2, 3)), "label": 0}


class KerasRankChannelless(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Images stored as (height, width) tensors, without a channel axis."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Tensor(shape=(4, 3), dtype=np.uint8),
                    "label": tfds.features.ClassLabel(num_classes=4),
                }
            ),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(), "test": self._generate_examples()}

    def _generate_examples(self):
        for index in range(6):
            yield index, {"image": image_of(index)[..., 0], "label": label_of(index)}


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tfds")
    for builder in (KerasRankTinyImages, KerasRankAnySize, KerasRankChannelless):
        builder(data_dir=folder).download_and_prepare()
    return folder


def load(tfds_dir, fraction=0.25, **kwargs):
    return data.load_splits(
        f"tfds:{NAME}",
        validation_fraction=fraction,
        test_split="holdout",
        tfds_data_dir=tfds_dir,
        **kwargs,
    )


def read(source, seed=None, batch_size=8, drop_remainder=False):
    return read_batches(
        source.batches(batch_size, shuffle_seed=seed, drop_remainder=drop_remainder)
    )


def test_splits_metadata(tfds_dir):
    splits = load(tfds_dir)
    assert isinstance(splits.train, data.TfdsSource)
    assert splits.source == f"tfds:{NAME}"
    assert (
        splits.train.num_examples,
        splits.validation.num_examples,
        splits.test.num_examples,
    ) == (45, 15, 20)
    assert splits.input_shape == (4, 3, 1)
    assert splits.num_classes == 4
    assert splits.class_names == tuple(CLASS_NAMES)


def test_values_and_labels_equal_the_originals(tfds_dir):
    splits = load(tfds_dir)
    for source, expected in [
        (splits.train, None),
        (splits.validation, None),
        (splits.test, set(range(60, 80))),
    ]:
        for seed in (None, 5):
            x, y, _ = read(source, seed)
            assert x.dtype == np.float32 and y.dtype == np.int32
            expected_x = np.stack([image_of(i) for i in ids(x)])
            np.testing.assert_array_equal(x, expected_x.astype(np.float32) / 255)
            np.testing.assert_array_equal(y, [label_of(i) for i in ids(x)])
            if expected is not None:
                assert set(ids(x)) == expected


def test_validation_is_the_head_of_the_train_split_by_tfds_slicing(tfds_dir):
    stored = ids(read(load(tfds_dir, fraction=0).train)[0])
    assert sorted(stored) == list(range(60))
    splits = load(tfds_dir, fraction=0.25)
    np.testing.assert_array_equal(ids(read(splits.validation)[0]), stored[:15])
    np.testing.assert_array_equal(ids(read(splits.train)[0]), stored[15:])
    # The split seed plays no part: TFDS slices are fixed.
    other = load(tfds_dir, fraction=0.25, split_seed=9)
    np.testing.assert_array_equal(ids(read(other.validation)[0]), stored[:15])


def test_every_example_once_per_epoch_and_order_fixed_by_the_seed(tfds_dir):
    train = load(tfds_dir, fraction=0).train
    stored = ids(read(train)[0]).tolist()
    first = ids(read(train, seed=1)[0]).tolist()
    assert sorted(first) == list(range(60)) and first != stored
    assert ids(read(train, seed=1)[0]).tolist() == first
    dataset = train.batches(8, shuffle_seed=1)
    assert ids(read_batches(dataset)[0]).tolist() == first  # Iterated twice.
    assert ids(read_batches(dataset)[0]).tolist() == first
    assert ids(read(train, seed=2)[0]).tolist() != first
    assert read(train, seed=1, batch_size=16, drop_remainder=True)[2] == [16] * 3


def test_missing_split_names_the_argument(tfds_dir):
    message = (
        f"data 'tfds:{NAME}': no split 'test'. Expected test_split in "
        "('train', 'holdout'). Received: test_split='test'"
    )
    with pytest.raises(DataError, match=f"^{re.escape(message)}$"):
        data.load_splits(f"tfds:{NAME}", tfds_data_dir=tfds_dir)
    with pytest.raises(DataError, match="no split 'training'"):
        load(tfds_dir, train_split="training")


def test_fraction_leaving_nothing(tfds_dir):
    with pytest.raises(ConfigError, match="validation_fraction=0.001 leaves 0 of 60"):
        load(tfds_dir, fraction=0.001)


def test_images_of_unknown_size(tfds_dir):
    with pytest.raises(DataError, match=r"images of shape \(None, None, 3\)"):
        data.load_splits("tfds:keras_rank_any_size", tfds_data_dir=tfds_dir)


def test_images_without_channel_axis_get_one(tfds_dir):
    splits = data.load_splits(
        "tfds:keras_rank_channelless", validation_fraction=0, tfds_data_dir=tfds_dir
    )
    assert splits.input_shape == (4, 3, 1)
    x, y, _ = read(splits.train, seed=3, batch_size=4)
    assert x.shape == (6, 4, 3, 1)
    expected = np.stack([image_of(i) for i in ids(x)]).astype(np.float32) / 255
    np.testing.assert_array_equal(x, expected)
    np.testing.assert_array_equal(y, [label_of(i) for i in ids(x)])


def test_unknown_name(tmp_path):
    name = "no_such_dataset_for_keras_rank"
    with pytest.raises(DataError, match=f"tfds:{name}.*not found") as info:
        data.load_splits(f"tfds:{name}", tfds_data_dir=tmp_path)
    assert "\n" not in str(info.value)


def test_empty_name():
    with pytest.raises(DataError, match="missing dataset name"):
        data.load_splits("tfds:")


def _weights(workdir):
    return keras.saving.load_model(workdir / "model.keras").get_weights()


@pytest.mark.slow
def test_train_and_evaluate_streams_tfds_and_resumes_exactly(tfds_dir, tmp_path):
    # TrainConfig has no TFDS folder: TFDS also searches the folders added here.
    tfds.core.add_data_dir(str(tfds_dir))
    config = TrainConfig(
        model="lenet300",
        data=f"tfds:{NAME}",
        test_split="holdout",
        epochs=3,
        batch_size=8,
        validation_fraction=0.25,
        verbose=0,
    )
    straight = train_and_evaluate(config, tmp_path / "straight")
    first = TrainConfig(**{**config.to_dict(), "epochs": 1})
    train_and_evaluate(first, tmp_path / "resumed")
    resumed = train_and_evaluate(config, tmp_path / "resumed")
    assert straight["data"] == {
        "source": f"tfds:{NAME}",
        "train_examples": 45,
        "validation_examples": 15,
        "test_examples": 20,
    }
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3]
    for a, b in zip(
        _weights(tmp_path / "straight"), _weights(tmp_path / "resumed"), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    saved = json.loads((tmp_path / "resumed" / "results.json").read_text())
    assert saved["test_accuracy"] == resumed["test_accuracy"]
