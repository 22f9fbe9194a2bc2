r"""Your own CNN, compressed by LC to a FLOPs budget, then shipped as int8 LiteRT.

    python examples/lc_cnn_to_int8.py --workdir=runs/example_lc
    python examples/lc_cnn_to_int8.py --model_path=my_cnn.keras \
        --data=path/to/images --flops=0.5 --epochs=5 --workdir=runs/mine

Steps, each one library call:

1. train the CNN (or your .keras model) as the reference;
2. pick LC's lambda so that its first C step brings the compressed layers
   to --flops of their FLOPs (`lambda_meeting_cost`; LC ends a little
   below it, as its later steps make the weights more compressible);
3. run LC (L steps, C steps, fine-tuning of the low-rank net);
4. export the dense and the LC net to LiteRT float32 and int8, and print
   their accuracy, size and latency side by side.

For a budget met by search rather than by one calibrated lambda, see
``python -m tuning.search --method=lc --budget=flops:0.5`` (docs/tuning.md).
"""

import argparse
import pathlib

import keras

import keras_rank
from keras_rank.lc.calibration import lambda_meeting_cost


def small_cnn(input_shape=(28, 28, 1), classes=10) -> keras.Model:
    """A user's CNN: a strided stem, depthwise and pointwise convs, a residual."""
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False)(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    y = keras.layers.DepthwiseConv2D(3, padding="same")(x)
    y = keras.layers.Conv2D(32, 1, activation="relu")(y)
    y = keras.layers.Conv2D(16, 3, padding="same")(y)
    x = keras.layers.ReLU()(keras.layers.Add()([x, y]))
    x = keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(classes)(x), name="small_cnn")


def main() -> None:
    """Trains, compresses and exports, as the module docstring says."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, type=pathlib.Path)
    parser.add_argument("--model_path", help="your .keras model (default: small_cnn)")
    parser.add_argument("--data", help="IDX folder, image folder or tfds:NAME")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--flops", type=float, default=0.5, help="FLOPs budget")
    args = parser.parse_args()

    data = {"data": args.data} if args.data else {}
    source = {"model_path": args.model_path} if args.model_path else {}
    config = keras_rank.TrainConfig(epochs=args.epochs, **data, **source)
    model = None  # None: the .keras file of --model_path
    if not args.model_path:
        splits = config.load_splits()
        model = small_cnn(splits.input_shape, splits.num_classes)

    keras_rank.train_and_evaluate(config, args.workdir / "dense", model=model)
    dense_file = args.workdir / "dense" / "model.keras"
    dense = keras.saving.load_model(dense_file)

    lc_config = keras_rank.LCConfig(criterion="flops", mu0=0.05, baselines=False)
    lam = lambda_meeting_cost(
        dense, "flops", lc_config.conv_scheme, lc_config.mu0, args.flops
    )
    lc_config = keras_rank.LCConfig(
        criterion="flops", mu0=0.05, baselines=False, lambdas=(float(f"{lam:.3g}"),)
    )
    results = keras_rank.train_lc(
        config, lc_config, args.workdir / "lc", reference=str(dense_file)
    )
    lowrank_file = args.workdir / "lc" / f"lambda_{lc_config.lambdas[0]:g}"
    lowrank = keras.saving.load_model(lowrank_file / "model_lowrank.keras")
    print(f"LC: ranks {results['runs'][0]['ranks']}")

    keras_rank.export_models(
        {"dense": dense, "lc": lowrank},
        args.workdir / "export",
        keras_rank.ExportConfig(formats=("float32", "int8"), **data),
        baseline="dense",
    )


if __name__ == "__main__":
    main()
