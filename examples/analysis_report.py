r"""Where the redundancy of a trained model is: the analysis report of keras_rank.

    python examples/analysis_report.py --workdir=runs/example_analysis
    python examples/analysis_report.py --model_path=my_model.keras \
        --data=path/to/images --workdir=runs/my_analysis

Without --model_path, trains the zoo's LeNet5 for --epochs first. Then one
call, `keras_rank.analyze`, writes report.md and report.html: pruning curves
of the first prunable layer by each criterion, the singular-value spectra
of every layer against Marchenko-Pastur, and the cosine graph of the
layer's units (docs/analysis.md).
"""

import argparse
import pathlib

import keras_rank


def main() -> None:
    """Trains a model if none is given, then writes its analysis report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, type=pathlib.Path)
    parser.add_argument("--model_path", help="a trained .keras model")
    parser.add_argument("--data", help="IDX folder, image folder or tfds:NAME")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()

    data = {"data": args.data} if args.data else {}
    model_path = args.model_path
    if model_path is None:
        config = keras_rank.TrainConfig(model="lenet5", epochs=args.epochs, **data)
        keras_rank.train_and_evaluate(config, args.workdir / "lenet5")
        model_path = str(args.workdir / "lenet5" / "model.keras")
    results = keras_rank.analyze(
        keras_rank.AnalysisConfig(model_path=model_path, **data),
        args.workdir / "analysis",
    )
    print(f"analysed layer {results['graph']['layer']}: {args.workdir / 'analysis'}")


if __name__ == "__main__":
    main()
