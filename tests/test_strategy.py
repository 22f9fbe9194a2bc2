import types

import pytest
import tensorflow as tf

from keras_rank.errors import ConfigError
from keras_rank.training.strategy import is_chief, make_strategy, split_cpu


def _worker(task_type, task_id, with_chief):
    cluster = {"worker": ["localhost:1", "localhost:2"]}
    if with_chief:
        cluster["chief"] = ["localhost:3"]
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec(cluster), task_type=task_type, task_id=task_id
    )
    return types.SimpleNamespace(cluster_resolver=resolver)


@pytest.mark.parametrize(
    "task_type, task_id, with_chief, expected",
    [
        ("worker", 0, False, True),
        ("worker", 1, False, False),
        ("worker", 0, True, False),
        ("chief", 0, True, True),
    ],
)
def test_only_one_worker_of_a_cluster_is_chief(
    task_type, task_id, with_chief, expected
):
    assert is_chief(_worker(task_type, task_id, with_chief)) is expected


def test_single_process_strategies_are_chief():
    assert is_chief(make_strategy("default"))
    assert is_chief(make_strategy("mirrored"))


def test_mirrored_strategy_is_created_once_per_process():
    assert make_strategy("mirrored") is make_strategy("mirrored")
    assert make_strategy("mirrored").num_replicas_in_sync == 2


def test_unknown_strategy_names_allowed_values():
    with pytest.raises(
        ConfigError, match="'tpu'.*default, mirrored, multi_worker_mirrored"
    ):
        make_strategy("tpu")


def test_splitting_cpu_after_initialisation_names_the_argument():
    with pytest.raises(ConfigError, match="cpu_devices=3.*already initialised"):
        split_cpu(3)
