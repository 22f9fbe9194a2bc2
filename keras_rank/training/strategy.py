"""Choosing a tf.distribute strategy by name, and feeding it global batches."""

import functools

import tensorflow as tf

from keras_rank.core.errors import ConfigError


def split_cpu(count: int) -> None:
    """Splits the first CPU into `count` logical devices.

    Lets MirroredStrategy run several replicas on a machine without GPUs (for
    tests and for trying a distributed set-up on a laptop). Must run before
    TensorFlow initialises its devices.

    Raises:
        ConfigError: TensorFlow's devices are already initialised with another
            split.
    """
    cpu = tf.config.list_physical_devices("CPU")[0]
    wanted = [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is not None and len(current) == count:
        return
    try:
        tf.config.set_logical_device_configuration(cpu, wanted)
    except RuntimeError as error:
        raise ConfigError(
            f"cpu_devices={count}: TensorFlow's devices are already initialised "
            f"({len(tf.config.list_logical_devices('CPU'))} logical CPU). "
            "Set cpu_devices before any TensorFlow op runs."
        ) from error


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Returns whether this process writes checkpoints, logs and results.

    Only one worker of a multi-worker cluster writes (the chief, or worker 0
    when the cluster has no chief); every worker reads the same work
    directory, which must be on a shared file system.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def make_strategy(name: str, cpu_devices: int = 0) -> tf.distribute.Strategy:
    """Returns the strategy called `name`.

    Args:
        name: "default" (one device), "mirrored" (all local GPUs, or the
            logical CPUs when there is no GPU) or "multi_worker_mirrored"
            (workers described by the TF_CONFIG environment variable).
        cpu_devices: When > 1 and there is no GPU, split the CPU into this many
            logical devices first, and mirror over them.

    Raises:
        ConfigError: Unknown name, impossible device split, or
            "multi_worker_mirrored" asked for after TensorFlow ops ran.
    """
    if cpu_devices > 1 and not tf.config.list_physical_devices("GPU"):
        split_cpu(cpu_devices)
    if name == "default":
        return tf.distribute.get_strategy()
    if name in ("mirrored", "multi_worker_mirrored"):
        return _cached_strategy(name)
    raise ConfigError(
        f"Unknown strategy '{name}'. "
        "Expected one of: default, mirrored, multi_worker_mirrored."
    )


@functools.cache
def _cached_strategy(name: str) -> tf.distribute.Strategy:
    # One instance per process: a second MirroredStrategy over the same devices
    # reuses collective instance keys of the first and its all-reduces clash.
    if name == "multi_worker_mirrored":
        try:
            return tf.distribute.MultiWorkerMirroredStrategy()
        except RuntimeError as error:
            raise ConfigError(
                "strategy=multi_worker_mirrored must be created before any "
                "TensorFlow op runs in the process: call make_strategy (or "
                "train_and_evaluate) first."
            ) from error
    if tf.config.list_physical_devices("GPU"):
        return tf.distribute.MirroredStrategy()
    cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(cpus)


def distribute_batches(
    strategy: tf.distribute.Strategy, dataset: tf.data.Dataset
) -> tf.distribute.DistributedDataset:
    """Distributes a dataset of global batches over the replicas of `strategy`.

    Global batch k is the batch k of `dataset`, split over the replicas in
    order, so that training with any strategy sees the batches a single
    device would see: every worker of a cluster reads the whole dataset and
    keeps the slices of its own replicas (`replica_batches`). A partial
    batch is split the same way, so some replicas may get an empty batch;
    every example is seen by exactly one replica.

    (`experimental_distribute_dataset` would auto-shard instead: by input
    files when the pipeline reads files, so that workers see other batches
    than one device; else by data, which keeps each global batch's examples
    but hands the pieces to the replicas of a multi-replica worker out of
    order.)

    Args:
        strategy: The strategy the train or eval step runs under.
        dataset: Batches of the global batch size: tuples of tensors whose
            first dimension is the batch.

    Returns:
        A distributed dataset to iterate and pass to `strategy.run`.
    """
    return strategy.distribute_datasets_from_function(
        lambda context: replica_batches(dataset, context)
    )


def replica_batches(
    dataset: tf.data.Dataset, context: tf.distribute.InputContext
) -> tf.data.Dataset:
    """Returns the per-replica batches of one worker, replica after replica.

    Each global batch of n examples is cut into `num_replicas_in_sync`
    consecutive slices of ceil(n / replicas) examples (the last ones shorter
    or empty); the worker `input_pipeline_id` yields the slices of its local
    replicas in order, which `distribute_datasets_from_function` hands to
    them in turn.

    Args:
        dataset: Global batches (tuples of tensors).
        context: The worker's input context.
    """
    replicas = context.num_replicas_in_sync
    local = replicas // context.num_input_pipelines
    first = context.input_pipeline_id * local

    def slices(*batch):
        pieces = [
            tf.data.Dataset.from_tensors(_replica_slice(batch, first + j, replicas))
            for j in range(local)
        ]
        return functools.reduce(tf.data.Dataset.concatenate, pieces)

    return dataset.flat_map(slices)


def _replica_slice(batch: tuple, replica: int, replicas: int) -> tuple:
    """Returns slice `replica` of `replicas` consecutive slices of a batch."""
    size = tf.shape(batch[0])[0]
    per_replica = -(-size // replicas)
    start = tf.minimum(replica * per_replica, size)
    stop = tf.minimum(start + per_replica, size)
    return tuple(tensor[start:stop] for tensor in batch)
