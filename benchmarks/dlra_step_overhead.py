"""Step time of the DLRA train step over the plain engine step.

Paper MLP, batch 128, the embedded Fashion-MNIST train split. Loops, each
timed side by side (they alternate, so machine noise hits all of them):

* plain: the engine trains the zoo MLP (plain Dense layers);
* factorized+FN: the engine trains it factorized with Frobenius
  normalization, before any fusion (every P, Q index the identity);
* engine, same model: the engine alone (no RaRe, no search, no fusion test)
  on a copy of the first DLRA model after its warm-up epoch, i.e. with the
  fused P, Q of a model DLRA is compressing;
* dlra k=K: the full DLRA step: RaRe in the loss, the fusion test after
  every step, fusions, and the all-pairs search every K steps.

Tracing is excluded by a warm-up epoch; per-epoch rebuilds (and their
retrace) fall between epochs and are excluded from the step times, included
in the epoch times.

Then (--compression_epochs > 0) it trains DLRA for that many epochs once per
k and prints the compression reached, to show that searching every k steps
compresses as much as searching every step.

    python benchmarks/dlra_step_overhead.py [--steps 100] [--rounds 3]

Target: DLRA step / plain engine step <= 1.25 for the chosen k. The line
"dlra k=K" prints its ratio to each of the first three loops: the DLRA
machinery itself is the ratio to "engine, same model".
"""

import argparse
import statistics
import time

import keras
from setting_args import add_setting_argument, find_setting

from keras_rank import data as data_lib
from keras_rank import models
from keras_rank.dlra import DLRA, DLRAConfig
from keras_rank.layers.factorize import factorize_model
from keras_rank.training import Callback, TrainConfig, Trainer


class StepClock(Callback):
    """Records the wall time between consecutive train steps of an epoch."""

    def __init__(self):
        self.durations: list[float] = []
        self._last = None

    def on_epoch_begin(self, trainer, epoch):
        self._last = None

    def on_step_end(self, trainer, step, logs):
        now = time.perf_counter()
        if self._last is not None:
            self.durations.append(now - self._last)
        self._last = now


def _engine(model):
    """The engine alone (no DLRA) on `model`, with a step clock."""
    return Trainer(
        model, keras.optimizers.Adam(1e-3), callbacks=[StepClock()], verbose=0
    )


def _plain_trainer(frobenius_norm=None):
    keras.utils.set_random_seed(0)
    model = models.build_model("mlp")
    if frobenius_norm is not None:
        model = factorize_model(model, frobenius_norm=frobenius_norm)
    return _engine(model)


def _dlra_trainer(search_every: int):
    keras.utils.set_random_seed(0)
    model = factorize_model(models.build_model("mlp"), frobenius_norm=True)
    method = DLRA(DLRAConfig(search_every=search_every))
    return Trainer(
        model,
        keras.optimizers.Adam(1e-3),
        loss_terms=method.loss_terms,
        callbacks=[method, StepClock()],
        verbose=0,
    )


def _engine_on_copy(model):
    """The engine alone on a copy of `model` (same layers, state and weights)."""
    copy = model.__class__.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    return _engine(copy)


def _epoch(trainer, train, batch_size) -> float:
    start = time.perf_counter()
    trainer.fit(train, epochs=trainer.epochs_done + 1, batch_size=batch_size)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    add_setting_argument(parser, find_setting("batch_size", TrainConfig), default=128)
    add_setting_argument(
        parser,
        find_setting("search_every", DLRAConfig),
        default=[1, 10, 50],
        sweep=True,
    )
    parser.add_argument("--compression_epochs", type=int, default=0)
    args = parser.parse_args()

    splits = data_lib.load_splits()
    count = args.steps * args.batch_size
    train = data_lib.ArraySource(*next(splits.train.batches(count).as_numpy_iterator()))
    trainers = {
        "plain": _plain_trainer(),
        "factorized+FN": _plain_trainer(frobenius_norm=True),
    }
    trainers.update({f"dlra k={k}": _dlra_trainer(k) for k in args.search_every})
    for trainer in trainers.values():
        _epoch(trainer, train, args.batch_size)  # warm-up: traces
        trainer.callbacks[-1].durations.clear()
    same = _engine_on_copy(trainers[f"dlra k={args.search_every[0]}"].model)
    _epoch(same, train, args.batch_size)
    same.callbacks[-1].durations.clear()
    trainers = {
        "plain": trainers.pop("plain"),
        "factorized+FN": trainers.pop("factorized+FN"),
        "engine, same model": same,
        **trainers,
    }
    epochs = {name: [] for name in trainers}
    for _ in range(args.rounds):
        for name, trainer in trainers.items():
            epochs[name].append(_epoch(trainer, train, args.batch_size))
    durations = {
        name: trainer.callbacks[-1].durations for name, trainer in trainers.items()
    }
    medians = {name: statistics.median(d) for name, d in durations.items()}
    means = {name: statistics.mean(d) for name, d in durations.items()}
    print(
        f"paper MLP, batch {args.batch_size}, {args.steps} steps x {args.rounds} "
        "rounds. median = typical step; mean = every step incl. searches and "
        "fusions (rebuilds and retracing between epochs excluded); epoch = "
        "median epoch time (everything included)"
    )
    bases = ("plain", "factorized+FN", "engine, same model")
    for name in trainers:
        for label, values in (("median", medians), ("mean", means)):
            ratios = ", ".join(f"/{b} {values[name] / values[b]:.3f}" for b in bases)
            print(f"{name:18} {label:6} {values[name] * 1e3:6.2f} ms ({ratios})")
        print(f"{name:18} epoch  {statistics.median(epochs[name]):6.2f} s")

    if args.compression_epochs:
        print(f"compression after {args.compression_epochs} epochs (full train split)")
        for k in args.search_every:
            trainer = _dlra_trainer(k)
            history = trainer.fit(
                splits.train,
                epochs=args.compression_epochs,
                batch_size=args.batch_size,
            )
            per_epoch = ", ".join(f"{100 * h['compression']:.2f}" for h in history)
            print(f"k={k:<4} compression % per epoch: {per_epoch}")


if __name__ == "__main__":
    main()
