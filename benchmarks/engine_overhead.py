"""Step time of the keras_rank training engine against keras Model.fit.

Same model (the paper MLP, 1.4 M parameters), same batch (128), same data
(the embedded Fashion-MNIST train split), same optimizer, timed side by side
in one process, alternating the two loops so that machine noise hits both.
Each timed epoch follows a warm-up epoch, so tracing is not counted.

    python benchmarks/engine_overhead.py [--steps 200] [--rounds 5]

Target: engine / fit <= 1.10.
"""

import argparse
import statistics
import time

import keras
from setting_args import add_setting_argument, find_setting

from keras_rank import data as data_lib
from keras_rank import models
from keras_rank.training import TrainConfig, Trainer


def _model():
    keras.utils.set_random_seed(0)
    return models.build_model("mlp")


def _fit_loop(images, labels, batch_size, jit_compile):
    model = _model()
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile=jit_compile,
    )

    def run():
        model.fit(images, labels, batch_size=batch_size, epochs=1, verbose=0)

    return run


def _engine_loop(images, labels, batch_size, jit_compile):
    trainer = Trainer(
        _model(), keras.optimizers.Adam(1e-3), verbose=0, jit_compile=jit_compile
    )
    train = data_lib.ArraySource(images, labels)

    def run():
        trainer.fit(train, epochs=trainer.epochs_done + 1, batch_size=batch_size)

    return run


def _time(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="steps per epoch")
    parser.add_argument("--rounds", type=int, default=5, help="timed epochs each")
    add_setting_argument(parser, find_setting("batch_size", TrainConfig), default=128)
    args = parser.parse_args()

    splits = data_lib.load_splits(validation_fraction=0.1)
    count = args.steps * args.batch_size
    images, labels = next(splits.train.batches(count).as_numpy_iterator())
    print(
        f"paper MLP, batch {args.batch_size}, {args.steps} steps per timed epoch, "
        f"{args.rounds} rounds, median seconds per step"
    )
    for jit_compile in (False, True):
        loops = {
            "fit": _fit_loop(images, labels, args.batch_size, jit_compile),
            "engine": _engine_loop(images, labels, args.batch_size, jit_compile),
        }
        for run in loops.values():
            run()  # warm-up: traces the step
        times = {name: [] for name in loops}
        for _ in range(args.rounds):
            for name, run in loops.items():
                times[name].append(_time(run) / args.steps)
        fit = statistics.median(times["fit"])
        engine = statistics.median(times["engine"])
        print(
            f"jit_compile={jit_compile!s:5}  fit {fit * 1e3:7.2f} ms/step  "
            f"engine {engine * 1e3:7.2f} ms/step  ratio engine/fit {engine / fit:.3f}"
        )


if __name__ == "__main__":
    main()
