"""Training streamed from disk against training from memory: step time and RSS.

(a) Step time: the same model, batch and examples (the first steps x batch
    Fashion-MNIST training images), trained by the engine from memory
    (`ArraySource`, uint8), from a folder of PNG files (`ImageFolderSource`:
    each file read and decoded while training) and from a TFRecord file of raw
    uint8 images (`DatasetSource`, records parsed 256 at a time), loops
    alternating so that machine noise hits all.
    Each loop gets a warm-up epoch first (tracing, file cache).
(b) Peak RSS (`ru_maxrss`) of a run on 600,000 synthetic 28x28 examples (10x
    Fashion-MNIST's training set), each path in its own process: in memory
    (`ArraySource`) against streamed from a TFRecord file written once
    (`DatasetSource`, shuffle buffer of 10,000), plus the same model trained on
    a tiny in-memory set (the process's baseline).

    python benchmarks/streaming.py [--steps 150] [--rounds 9] [--model mlp]

Target: streamed / in-memory step time <= 1.05. Other processes on the
machine slow whole epochs down; the best round is the least disturbed one,
and process CPU time per step is the least sensitive measure.
"""

import argparse
import pathlib
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf
from setting_args import add_setting_argument, find_setting

from keras_rank import data as data_lib
from keras_rank import models
from keras_rank.training import Callback, TrainConfig, Trainer

_SHAPE = (28, 28, 1)


def _trainer(model_name: str, callbacks=()) -> Trainer:
    keras.utils.set_random_seed(0)
    model = models.build_model(model_name, _SHAPE, 10)
    return Trainer(model, keras.optimizers.Adam(1e-3), callbacks=callbacks, verbose=0)


# ----------------------------------------------------------------- data on disk


def _write_tfrecord(path: pathlib.Path, batches) -> pathlib.Path:
    """Writes (image, label) batches as tf.train.Examples of raw uint8 bytes."""
    with tf.io.TFRecordWriter(str(path)) as writer:
        for images, labels in batches:
            for image, label in zip(images, labels, strict=True):
                feature = {
                    "image": tf.train.Feature(
                        bytes_list=tf.train.BytesList(value=[image.tobytes()])
                    ),
                    "label": tf.train.Feature(
                        int64_list=tf.train.Int64List(value=[int(label)])
                    ),
                }
                example = tf.train.Example(features=tf.train.Features(feature=feature))
                writer.write(example.SerializeToString())
    return path


def _tfrecord_source(path: pathlib.Path, count: int) -> data_lib.DatasetSource:
    """Examples of a TFRecord file, parsed 256 records per call, then unbatched."""
    spec = {
        "image": tf.io.FixedLenFeature([], tf.string),
        "label": tf.io.FixedLenFeature([], tf.int64),
    }

    def parse(records):
        examples = tf.io.parse_example(records, spec)
        images = tf.io.decode_raw(examples["image"], tf.uint8)
        return tf.reshape(images, (-1, *_SHAPE)), examples["label"]

    dataset = tf.data.TFRecordDataset(str(path)).batch(256).map(parse).unbatch()
    return data_lib.DatasetSource(dataset, num_examples=count)


def _write_png_folder(root: pathlib.Path, images, labels) -> pathlib.Path:
    """Writes root/train/<label>/<index>.png and one test image per class."""
    for split in ("train", "test"):
        for label in range(10):
            (root / split / str(label)).mkdir(parents=True, exist_ok=True)
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        path = root / "train" / str(label) / f"{index:07d}.png"
        path.write_bytes(tf.io.encode_png(image).numpy())
    for label in range(10):
        image = images[np.flatnonzero(labels == label)[0]]
        (root / "test" / str(label) / "0.png").write_bytes(
            tf.io.encode_png(image).numpy()
        )
    return root


# ----------------------------------------------------------------- (a) step time


def step_times(args, folder: pathlib.Path) -> None:
    """Prints the median ms/step of each loop and the streamed / memory ratios."""
    count = args.steps * args.batch_size
    (images, labels), _ = data_lib.load_idx_folder(data_lib.DEFAULT_DATA_DIR)
    images, labels = images[:count], labels[:count]
    start = time.perf_counter()
    pngs = _write_png_folder(folder / "png", images, labels)
    record = _write_tfrecord(folder / "train.tfrecord", [(images, labels)])
    print(
        f"wrote {count} PNG files and a TFRecord in {time.perf_counter() - start:.0f} s"
    )
    sources = {
        "memory (ArraySource)": data_lib.ArraySource(images, labels),
        "PNG folder (ImageFolderSource)": data_lib.load_splits(
            pngs, validation_fraction=0
        ).train,
        "TFRecord (DatasetSource)": _tfrecord_source(record, count),
    }
    trainers = {name: _trainer(args.model) for name in sources}

    def epoch(name):
        trainer = trainers[name]
        wall, cpu = time.perf_counter(), time.process_time()
        trainer.fit(
            sources[name], epochs=trainer.epochs_done + 1, batch_size=args.batch_size
        )
        return (
            (time.perf_counter() - wall) / args.steps,
            (time.process_time() - cpu) / args.steps,
        )

    for name in sources:
        epoch(name)  # warm-up: traces the step, fills the file cache
    times = {name: [] for name in sources}
    for _ in range(args.rounds):
        for name in sources:
            times[name].append(epoch(name))
    best = {name: min(w for w, _ in v) for name, v in times.items()}
    walls = {name: statistics.median(w for w, _ in v) for name, v in times.items()}
    cpus = {name: statistics.median(c for _, c in v) for name, v in times.items()}
    memory = "memory (ArraySource)"
    print(
        f"(a) {args.model}, batch {args.batch_size}, {args.steps} steps per epoch, "
        f"{args.rounds} rounds. ms/step (ratio to memory): best and median wall "
        "time, median process CPU time (all threads)"
    )
    for name, values in times.items():
        print(
            f"    {name:31} best {best[name] * 1e3:6.2f} "
            f"({best[name] / best[memory]:.3f})  median {walls[name] * 1e3:6.2f} "
            f"({walls[name] / walls[memory]:.3f})  CPU {cpus[name] * 1e3:6.2f} "
            f"({cpus[name] / cpus[memory]:.3f})"
        )
        print(
            f"        wall per round: {', '.join(f'{w * 1e3:.1f}' for w, _ in values)}"
        )


# --------------------------------------------------------------------- (b) RSS


def _synthetic(count: int, chunk: int = 50_000):
    """Yields (images, labels) chunks of `count` synthetic examples, seeded."""
    rng = np.random.default_rng(0)
    for start in range(0, count, chunk):
        size = min(chunk, count - start)
        yield (
            rng.integers(0, 256, (size, *_SHAPE), dtype=np.uint8),
            rng.integers(0, 10, size).astype(np.int64),
        )


class _Enough(Exception):
    pass


class _StopAfter(Callback):
    def __init__(self, steps):
        self.steps = steps

    def on_step_end(self, trainer, step, logs):
        if step >= self.steps:
            raise _Enough


def rss_child(args) -> None:
    """Trains `args.rss_steps` steps on one path; prints peak and final RSS, MiB."""
    if args.rss_child == "tfrecord":
        source = _tfrecord_source(pathlib.Path(args.rss_file), args.rss_examples)
    else:
        count = (
            args.rss_examples if args.rss_child == "memory" else 10 * args.batch_size
        )
        images = np.empty((count, *_SHAPE), np.uint8)
        labels = np.empty(count, np.int64)
        start = 0
        for chunk_images, chunk_labels in _synthetic(count):
            images[start : start + len(chunk_labels)] = chunk_images
            labels[start : start + len(chunk_labels)] = chunk_labels
            start += len(chunk_labels)
        source = data_lib.ArraySource(images, labels)
    trainer = _trainer(args.model, callbacks=[_StopAfter(args.rss_steps)])
    try:
        trainer.fit(source, epochs=args.rss_steps, batch_size=args.batch_size)
    except _Enough:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    status = pathlib.Path("/proc/self/status").read_text().split("VmRSS:")[1]
    print(peak, int(status.split()[0]) / 1024)


def peak_rss(args, folder: pathlib.Path) -> None:
    """Prints the peak RSS of each path, each measured in a process of its own."""
    start = time.perf_counter()
    record = _write_tfrecord(folder / "large.tfrecord", _synthetic(args.rss_examples))
    print(
        f"wrote {args.rss_examples} examples ({record.stat().st_size / 2**20:.0f} MiB "
        f"TFRecord) in {time.perf_counter() - start:.0f} s"
    )
    common = [
        f"--model={args.model}",
        f"--batch_size={args.batch_size}",
        f"--rss_examples={args.rss_examples}",
        f"--rss_steps={args.rss_steps}",
        f"--rss_file={record}",
    ]
    rss = {}
    for path in ("baseline", "memory", "tfrecord"):
        output = subprocess.run(
            [sys.executable, __file__, f"--rss_child={path}", *common],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        rss[path] = [float(value) for value in output.split()[-2:]]
    data_mib = args.rss_examples * int(np.prod(_SHAPE)) / 2**20
    print(
        f"(b) {args.model}, batch {args.batch_size}, {args.rss_steps} steps, "
        f"{args.rss_examples} examples ({data_mib:.0f} MiB as uint8); peak RSS "
        "(ru_maxrss) and RSS after the last step, MiB"
    )
    base_peak, base_end = rss["baseline"]
    for path, label in (
        ("baseline", "tiny in-memory set (baseline)"),
        ("memory", "in memory (ArraySource)"),
        ("tfrecord", "streamed TFRecord (DatasetSource)"),
    ):
        peak, end = rss[path]
        print(
            f"    {label:34} peak {peak:6.0f} (+{peak - base_peak:4.0f})  "
            f"after {end:6.0f} (+{end - base_end:4.0f} over the baseline)"
        )
    ratio = rss["tfrecord"][0] / rss["memory"][0]
    print(f"    peak RSS streamed / in memory: {ratio:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150, help="steps per epoch (a)")
    parser.add_argument("--rounds", type=int, default=9, help="timed epochs each (a)")
    for name, default in (("model", "mlp"), ("batch_size", 128)):
        add_setting_argument(parser, find_setting(name, TrainConfig), default=default)
    parser.add_argument("--rss_examples", type=int, default=600_000)
    parser.add_argument("--rss_steps", type=int, default=300)
    parser.add_argument("--parts", default="ab", help="a, b or ab")
    parser.add_argument("--rss_child", choices=("baseline", "memory", "tfrecord"))
    parser.add_argument("--rss_file")
    args = parser.parse_args()
    if args.rss_child:
        rss_child(args)
        return
    with tempfile.TemporaryDirectory() as folder:
        if "a" in args.parts:
            step_times(args, pathlib.Path(folder))
        if "b" in args.parts:
            peak_rss(args, pathlib.Path(folder))


if __name__ == "__main__":
    main()
