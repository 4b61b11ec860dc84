"""Where a recipe run's time goes, and the device executor against grain.

Usage (JAX backend; the CIFAR-100 archive of ../shared/data by default):
    KERAS_BACKEND=jax python benchmarks/bench_fit_budget.py \
        [--image-dir ARCHIVE] [--epochs 4] [--pairs 2] [--out FILE]

1. **Budget** of one `cifar100_lt` run with the Table 4 model (ResNet-32
   of width 32, d = 128, batch 128) on a `--train-per-class` subset:
   process start-up (imports, in a fresh interpreter), data, model and
   compile before `fit`, the first epoch's compilation (its training time
   minus the median of the others), and per epoch: training, the
   callbacks (reassignment, validation, metrics files, checkpoint: its
   weights file, the best model's `.keras`, the copy to `best.keras`),
   then what follows `fit` (final save and evaluation).
2. **Executors**: the `--quick` recipe (ResNet-8 of width 8) with the
   grain and the device executor, alternating `--pairs` times in one
   process; images/s of training (median epoch after the first, from
   `evaluation.json`) and the ratio device / grain of each pair.
3. **Precision** (`--parts precision`): the same with `--precision
   float32` and `bfloat16` (the default executor).

Callbacks are timed by wrapping their methods in this process (the
library is not changed for it). Writes JSON (with the load average).
"""

from __future__ import annotations

import argparse
import collections
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import keras  # noqa: E402
from _common import print_table  # noqa: E402
from _common import write_results  # noqa: E402

from keras_dlpa.cli.train import build_parser  # noqa: E402
from keras_dlpa.cli.train import config_from_args  # noqa: E402
from keras_dlpa.evaluation import EvaluationCallback  # noqa: E402
from keras_dlpa.reassign_callback import ReassignCallback  # noqa: E402
from keras_dlpa.training import checkpoint as checkpoint_module  # noqa: E402
from keras_dlpa.training.checkpoint import RunCheckpoint  # noqa: E402
from keras_dlpa.training.run_logger import RunLogger  # noqa: E402
from keras_dlpa.training.runner import run_experiment  # noqa: E402

ARCHIVE = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "cifar100-png-train.tar.gz"
)
RECIPE = "cifar100_lt"


class Timers:
    """Seconds spent in wrapped functions, one list per name and epoch."""

    def __init__(self):
        self.seconds = collections.defaultdict(float)
        self.per_epoch = {}

    def wrap(self, owner, attribute: str, name: str):
        original = getattr(owner, attribute)

        @functools.wraps(original)
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - start

        setattr(owner, attribute, timed)
        self.per_epoch[name] = []
        return original

    def close_epoch(self):
        for name, values in self.per_epoch.items():
            values.append(self.seconds.pop(name, 0.0))


def _config(flags: list[str]):
    args = build_parser(RECIPE).parse_args(flags)
    return config_from_args(RECIPE, args)


def startup_seconds(repeats: int = 3) -> float:
    """Median seconds of a fresh interpreter importing the runner."""
    code = "import keras_dlpa.training.runner, keras_dlpa.cli.train"
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def budget(
    image_dir, epochs: int, per_class: int, every: int, work: Path
) -> dict:
    timers = Timers()
    originals = [
        (RunCheckpoint, "on_epoch_end", "checkpoint"),
        (EvaluationCallback, "on_epoch_end", "validation"),
        (RunLogger, "on_epoch_end", "metrics_files"),
        (ReassignCallback, "on_epoch_end", "reassignment"),
        (keras.Model, "save", "model_save"),
        (keras.Model, "save_weights", "weights_save"),
        (checkpoint_module, "atomic_copy", "best_copy"),
        (checkpoint_module, "_sha256", "sha256"),
    ]
    saved = [(o, a, timers.wrap(o, a, n)) for o, a, n in originals]

    class EpochMarks(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            marks["fit_start"] = time.perf_counter()
            timers.seconds.clear()

        def on_epoch_begin(self, epoch, logs=None):
            timers.close_epoch() if epoch else timers.seconds.clear()

        def on_train_end(self, logs=None):
            timers.close_epoch()
            marks["fit_end"] = time.perf_counter()

    marks = {}
    config = _config(
        [
            "--image-dir", str(image_dir), "--executor", "grain",
            "--train-per-class", str(per_class), "--epochs", str(epochs),
            "--milestones", str(epochs - 1), "--warmup-epochs", "1",
            "--out", str(work / f"budget-{every}"), "--verbose", "0",
            "--no-report", "--checkpoint-every", str(every),
        ]
    )  # fmt: skip
    start = time.perf_counter()
    try:
        run_experiment(config, callbacks=[EpochMarks()])
    finally:
        for owner, attribute, original in saved:
            setattr(owner, attribute, original)
    end = time.perf_counter()
    run_dir = work / f"budget-{every}"
    rows = json.loads((run_dir / "metrics.json").read_text())
    train = [r["train_time_s"] for r in rows]
    steady = statistics.median(train[1:])
    # Mean seconds per epoch inside `fit` (the best model is saved only in
    # epochs that improved `val_top1`), and how many epochs spent any.
    per_epoch = {
        name: {
            "mean_s": round(statistics.mean(values), 3),
            "median_s": round(statistics.median(values), 3),
            "epochs_with_any": sum(v > 0 for v in values),
        }
        for name, values in timers.per_epoch.items()
    }
    return {
        "config": {
            "train_per_class": per_class,
            "epochs": epochs,
            "backbone": config.model.backbone,
            "dim": config.model.dim,
            "batch_size": config.optimisation.batch_size,
            "checkpoint_every": every,
            "train_images": json.loads((run_dir / "config.json").read_text())[
                "train_size"
            ],
        },
        "before_fit_s": round(marks["fit_start"] - start, 2),
        "first_epoch_compile_s": round(train[0] - steady, 2),
        "train_s_per_epoch": round(steady, 3),
        "callbacks_s_per_epoch": per_epoch,
        "after_fit_s": round(end - marks["fit_end"], 2),
        "wall_s": round(end - start, 2),
        "epoch_train_s": [round(t, 3) for t in train],
    }


def compare(image_dir, pairs, epochs, work, flag, values) -> dict:
    """The `--quick` recipe with `flag` at each of two `values`,
    alternating `pairs` times; images/s and the ratio second / first."""
    runs = []
    for pair in range(pairs):
        for value in values:
            out = work / f"{flag.strip('-')}-{value}-{pair}"
            config = _config(
                [
                    "--image-dir", str(image_dir), "--quick",
                    "--epochs", str(epochs), flag, value,
                    "--out", str(out), "--verbose", "0", "--no-report",
                ]
            )  # fmt: skip
            evaluation = run_experiment(config)
            runs.append(
                {
                    "pair": pair,
                    flag.strip("-"): value,
                    "train_images_per_s": evaluation["train_images_per_s"],
                    "wall_s": evaluation["wall_time_s"],
                    "last_top1": evaluation["last"]["top1"],
                }
            )
    ratios = []
    for pair in range(pairs):
        rate = [r["train_images_per_s"] for r in runs if r["pair"] == pair]
        ratios.append(round(rate[1] / rate[0], 3))
    return {
        "runs": runs,
        f"ratio_{values[1]}_over_{values[0]}": ratios,
        "median_ratio": statistics.median(ratios),
        "same_top1": len({r["last_top1"] for r in runs}) == 1,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-dir", default=str(ARCHIVE))
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--train-per-class", type=int, default=40)
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--executor-epochs", type=int, default=4)
    parser.add_argument(
        "--parts",
        default="budget,executors",
        help="budget, executors (device / grain), precision (bfloat16 / "
        "float32)",
    )
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if keras.backend.backend() != "jax":
        sys.exit("Run with KERAS_BACKEND=jax (the device executor is JAX's).")
    parts = args.parts.split(",")
    results = {"command": "KERAS_BACKEND=jax python " + " ".join(sys.argv)}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        quick = (args.image_dir, args.pairs, args.executor_epochs, work)
        if "budget" in parts:
            results["startup_import_s"] = round(startup_seconds(), 2)
            # Checkpoints every epoch (the default), then only after the
            # last epoch (--checkpoint-every EPOCHS).
            results["budget"] = [
                budget(
                    args.image_dir,
                    args.epochs,
                    args.train_per_class,
                    every,
                    work,
                )
                for every in (1, args.epochs)
            ]
        if "executors" in parts:
            results["executors"] = compare(
                *quick, "--executor", ("grain", "device")
            )
        if "precision" in parts:
            results["precision"] = compare(
                *quick, "--precision", ("float32", "bfloat16")
            )
    for part in ("executors", "precision"):
        if part in results:
            print_table(results[part]["runs"])
    for row in results.get("budget", []):
        print(json.dumps(row, indent=1))
    write_results("fit_budget", results, args.out)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
