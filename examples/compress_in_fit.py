r"""Prox or DLRA inside your own model.compile / model.fit, then a LiteRT file.

    python examples/compress_in_fit.py --method=prox --workdir=runs/example_fit
    python examples/compress_in_fit.py --method=dlra --model_path=my_model.keras \
        --data=path/to/images --epochs=5 --workdir=runs/my_fit

Your model (or the zoo's LeNet300) is compiled and fitted by you, on your
data (or the embedded Fashion-MNIST) as `tf.data` datasets, with the
method's Keras callback beside Keras's own (EarlyStopping, CSVLogger):

- prox (`keras_rank.ProxFitCallback`): nuclear-norm proximal steps after
  the optimizer's; after `fit`, every layer split at --energy percent of its
  singular-value energy into two plain layers;
- dlra (`keras_rank.DLRAFitCallback`): the model factorized before `fit`,
  RaRe in its loss and parallel vectors fused while it trains; after `fit`,
  the plain model of the compact sizes.

Then the compressed model is written as a float32 LiteRT file, and its
parameters and test accuracy are printed beside the fitted model's.
"""

import argparse
import pathlib

import keras
import numpy as np

import keras_rank
from keras_rank.models import build_model
from keras_rank.prox.decompose import decompose
from keras_rank.training.task_loss import resolve_task_loss


def _accuracy(model: keras.Model, dataset) -> float:
    hits = total = 0
    for images, labels in dataset:
        predicted = np.argmax(model.predict_on_batch(images), axis=-1)
        hits += int(np.sum(predicted == labels.numpy()))
        total += len(predicted)
    return hits / total


def main() -> None:
    """Fits with the method's callback, compresses, exports, prints."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, type=pathlib.Path)
    parser.add_argument("--method", choices=("prox", "dlra"), default="prox")
    parser.add_argument("--model_path", help="your .keras model (default LeNet300)")
    parser.add_argument("--data", help="IDX folder, image folder or tfds:NAME")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--tau", type=float, default=300.0, help="prox's tau")
    parser.add_argument("--energy", type=float, default=90.0, help="prox's split")
    args = parser.parse_args()

    data = {"data": args.data} if args.data else {}
    splits = keras_rank.DataConfig(**data).load_splits()
    train = splits.train.batches(64, shuffle_seed=0)
    validation = splits.validation.batches(256)
    test = splits.test.batches(256)
    keras.utils.set_random_seed(0)
    if args.model_path:
        model = keras.saving.load_model(args.model_path)
    else:
        model = build_model("lenet300", splits.input_shape, splits.num_classes)

    if args.method == "prox":
        method = keras_rank.ProxFitCallback(keras_rank.ProxConfig(tau=(args.tau,)))
    else:
        method = keras_rank.DLRAFitCallback(keras_rank.DLRAConfig())
        model = method.prepare_model(model)
    # Logits or probabilities, as the model's output layer says.
    from_logits = resolve_task_loss(model).from_logits
    model.compile(
        keras.optimizers.Adam(1e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
        metrics=["accuracy"],
    )
    args.workdir.mkdir(parents=True, exist_ok=True)
    model.fit(
        train,
        validation_data=validation,
        epochs=args.epochs,
        verbose=2,
        callbacks=[
            method,
            keras.callbacks.EarlyStopping("val_accuracy", patience=2),
            keras.callbacks.CSVLogger(str(args.workdir / "history.csv")),
        ],
    )

    if args.method == "prox":
        low_rank, _ = decompose(model, args.energy)
        compact = keras_rank.deployable_model(low_rank)
    else:
        compact = method.compact_model()
    path = keras_rank.export_litert(compact, args.workdir / "model.tflite", "float32")
    print(
        f"fitted: {model.count_params():,} params, test accuracy "
        f"{_accuracy(model, test):.4f}\n"
        f"{args.method}: {compact.count_params():,} params, test accuracy "
        f"{_accuracy(compact, test):.4f}, {path} "
        f"({path.stat().st_size / 1024:.1f} KB)"
    )


if __name__ == "__main__":
    main()
