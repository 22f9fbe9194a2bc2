import json
import types

import numpy as np
import pytest
import tensorflow as tf

from keras_rank import data as data_lib
from keras_rank.core.errors import ConfigError
from keras_rank.training.strategy import (
    distribute_batches,
    is_chief,
    make_strategy,
    replica_batches,
    split_cpu,
)


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


def _per_replica_labels(strategy, dataset) -> list[list[list[int]]]:
    """For each step, the labels each replica gets (in replica order)."""
    return [
        [t.numpy().tolist() for t in strategy.experimental_local_results(labels)]
        for _, labels in distribute_batches(strategy, dataset)
    ]


def _batches(count: int, batch_size: int, **kwargs) -> tf.data.Dataset:
    images = np.arange(count, dtype=np.float32)[:, None] / count
    return data_lib.ArraySource(images, np.arange(count)).batches(
        batch_size, **kwargs
    )


def test_distribute_batches_splits_each_global_batch_over_replicas_in_order():
    mirrored = make_strategy("mirrored")
    assert _per_replica_labels(mirrored, _batches(13, 6)) == [
        [[0, 1, 2], [3, 4, 5]],
        [[6, 7, 8], [9, 10, 11]],
        [[12], []],  # a partial batch: the second replica gets no example
    ]
    assert _per_replica_labels(mirrored, _batches(5, 5)) == [[[0, 1, 2], [3, 4]]]
    default = make_strategy("default")
    assert _per_replica_labels(default, _batches(5, 2)) == [[[0, 1]], [[2, 3]], [[4]]]


@pytest.mark.parametrize("count, batch_size", [(23, 10), (10, 10), (2, 10), (7, 3)])
def test_workers_of_a_cluster_hold_consecutive_slices_of_every_batch(count, batch_size):
    # 2 workers with 2 replicas each: worker w feeds replicas 2w and 2w + 1.
    workers = [
        list(
            replica_batches(
                _batches(count, batch_size),
                tf.distribute.InputContext(
                    num_input_pipelines=2, input_pipeline_id=w, num_replicas_in_sync=4
                ),
            ).as_numpy_iterator()
        )
        for w in range(2)
    ]
    steps = -(-count // batch_size)
    assert [len(slices) for slices in workers] == [2 * steps, 2 * steps]
    for step in range(steps):
        replicas = [
            workers[w][2 * step + j][1].tolist() for w in (0, 1) for j in (0, 1)
        ]
        first = step * batch_size
        size = min(batch_size, count - first)
        assert sum(replicas, []) == list(range(first, first + size))
        assert [len(r) for r in replicas] == sorted(
            (len(r) for r in replicas), reverse=True
        )
        assert len(replicas[0]) == -(-size // 4)


def test_multi_worker_strategy_after_tensorflow_ops_names_the_argument(monkeypatch):
    cluster = {"worker": ["127.0.0.1:1"]}
    tf_config = {"cluster": cluster, "task": {"type": "worker", "index": 0}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(tf_config))
    tf.constant(1.0).numpy()  # TensorFlow's context is initialised
    with pytest.raises(
        ConfigError, match="strategy=multi_worker_mirrored must be created before"
    ):
        make_strategy("multi_worker_mirrored")
