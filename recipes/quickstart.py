"""Quickstart: DL2PA on real long-tailed data, offline, in about 2 minutes.

Trains a small CIFAR ResNet (depth 8, width 8, projected to d = 4 < c - 1,
where a simplex ETF does not exist and the assignment matters) with the
DL2PA head (estimated prototypes, IPM loss, per-epoch reassignment) on a
small CIFAR-10-LT subset of the CIFAR-10 JPEG training split
(`../shared/data/cifar10-jpeg-train.tar.gz`): 600 images per class, a
balanced validation split of 10 % per class carved out first, then the
long-tailed profile with imbalance 0.1 on the rest (540 ... 54 images per
class), 10 epochs. Then prints the metrics table, draws the plots into
`RUN_DIR/plots/` and exports the model to ONNX with a parity check against
Keras (`keras_dlpa.export`, needs the `onnx` extra).

    python recipes/quickstart.py
    python recipes/quickstart.py --method softmax --out runs/quick-softmax

This is a smoke run that shows the whole pipeline, not a result; see
`recipes/cifar10_lt.py` for the paper's setting.
"""

import argparse
import logging
import shutil
import sys
import time
from pathlib import Path

DEFAULT_ARCHIVE = (
    Path(__file__).resolve().parents[1]
    / ".."
    / "shared"
    / "data"
    / "cifar10-jpeg-train.tar.gz"
)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-dir", default=str(DEFAULT_ARCHIVE))
    parser.add_argument(
        "--method",
        default="dl2pa",
        choices=("dl2pa", "static", "etf", "softmax"),
    )
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--dim", type=int, default=4)
    parser.add_argument("--train-per-class", type=int, default=600)
    parser.add_argument("--out", default="runs/quickstart")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-export", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from keras_dlpa.evaluation import format_metrics_table
    from keras_dlpa.training import DataConfig
    from keras_dlpa.training import ExperimentConfig
    from keras_dlpa.training import ModelConfig
    from keras_dlpa.training import OptimisationConfig
    from keras_dlpa.training import RunConfig
    from keras_dlpa.training import run_experiment

    start = time.perf_counter()
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)  # a quickstart always starts fresh
    config = ExperimentConfig(
        data=DataConfig(
            dataset="cifar10_jpeg",
            source="image_dir",
            image_dir=args.image_dir,
            test_split=None,
            train_per_class=args.train_per_class,
            val_fraction=0.1,
            imbalance=0.1,
        ),
        model=ModelConfig(
            method=args.method,
            backbone="resnet32_lt_cifar10",
            depth=8,
            width=8,
            dim=args.dim,
        ),
        optimisation=OptimisationConfig(
            epochs=args.epochs,
            batch_size=64,
            learning_rate=0.1,
            warmup_epochs=1,
            milestones=(args.epochs - 1,),
            weight_decay=2e-4,
            mixup_alpha=0.0,
        ),
        run=RunConfig(out=str(out), seed=args.seed, verbose=2),
    )
    evaluation = run_experiment(config)
    print(format_metrics_table(evaluation))
    print(f"Plots: {sorted(p.name for p in (out / 'plots').glob('*.png'))}")
    if args.method == "softmax":
        print("The ONNX export serves prototype classifiers; skipped.")
    elif not args.no_export:
        try:
            from keras_dlpa.export import export_classifier
        except ImportError as error:
            print(f"Skipping the ONNX export ({error}).")
        else:
            result = export_classifier(out, out / "export", formats="onnx")
            onnx = result.paths["onnx"]
            print(f"ONNX model: {onnx} (parity with Keras checked)")
    print(f"Quickstart wall time: {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
