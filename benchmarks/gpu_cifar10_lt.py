"""CIFAR-10-LT (and low-dimensional CIFAR-10) on a GPU, without TensorFlow.

Made for a machine with JAX (CUDA), numpy, scipy, pillow and Keras 3 on the
JAX backend, and no TensorFlow. Nothing here imports TensorFlow (checked by
`--check-no-tensorflow`). The selection rules come from the numpy-only
modules of `keras_dlpa.data` (`splits.stratified_split`,
`long_tail.long_tailed_indices`); images are decoded with PIL.

Long-tailed mode (default), the paper's CIFAR-10-LT recipe:

- data: the CIFAR-10 JPEG training split (`--data`: tarball or folder
  `train/<class>/*.jpg`), decoded once with PIL and cached as `.npy`; a
  seeded stratified 10% validation split (balanced, 500 per class); the
  remaining 45,000 images subsampled to the exponential profile with
  imbalance 0.01 (n_max 4,500: 11,165 images, 87 steps per epoch);
- model: ResNet-32, long-tailed variant (option-A shortcuts, width 16,
  d = 64, BatchNorm on the features, coupled L2 2e-4), per-channel
  normalisation inside the model;
- training: batch 128, SGD momentum 0.9, lr 0.1 with 5 linear warm-up
  epochs and x0.1 at epochs 160 and 180 (milestones scale with
  `--epochs`), 200 epochs, random crop (pad 4) + horizontal flip, mixup
  alpha 1.0 on every batch; `IPMLoss(class_scale=True)` for the prototype
  methods, soft cross-entropy for softmax. `dl2pa` adds `ReassignCallback`
  (one reassignment per epoch). `etf` = simplex ETF, frozen assignment.

`--low-dim`: balanced CIFAR-10 (90/10 split), ResNet-32 balanced variant
with a `Dense(64 -> d)` projection, d = `--dim` (default 3), plain
`IPMLoss`, lr 0.01 with x0.1 at 40% and 80% of the epochs, wd 1e-4, crop
+ flip, no mixup; methods `dl2pa,static` by default (where the dynamic
assignment matters: d < c - 1).

Augmentation and mixup run on the host in numpy (a `keras.utils.PyDataset`
with worker threads: gather-based crop + flip of uint8 images, then mixup
of the augmented batch, as the reference does), overlapped with the
asynchronous JAX train step on the GPU. Batches are full (the remainder of
each shuffled epoch is dropped) so the step compiles once.

Methods run concurrently, one process each (`--sequential` to run them one
after the other); each process lets XLA allocate GPU memory on demand and
prints one line per epoch to its log in `--log-dir`, beside a progress
file (history so far). `--deadline UNIX_TIME` stops each method after the
last epoch expected to end before it (the result says `completed:
false`), so a run in a fixed device budget always reports.
Per method the JSON gives last and best (by validation top-1) accuracy
with many/medium/few-shot groups (`keras_dlpa.evaluation`), training
images/s (median over epochs after the first, without evaluation) and
wall times.

GPU box (see BENCHMARKS.md for the full recipe):

    python3 benchmarks/gpu_cifar10_lt.py --data .data/cifar10-jpeg-train.tar.gz
    python3 benchmarks/gpu_cifar10_lt.py --low-dim --data .data/...tar.gz

CPU smoke run:

    KERAS_BACKEND=jax python benchmarks/gpu_cifar10_lt.py --epochs 1 \\
        --max-train 300 --max-val 200 --check-no-tensorflow
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(REPO))

from _common import CIFAR10_JPEG  # noqa: E402

# A copy carried to the GPU box (`.data/`), else the shared one.
DEFAULT_DATA = (REPO / ".data" / CIFAR10_JPEG.name, CIFAR10_JPEG)
NUM_CLASSES = 10
BATCH = 128


# ---------------------------------------------------------------- data


def _class_of(name: str) -> str | None:
    parts = [p for p in name.replace("\\", "/").split("/") if p]
    if len(parts) < 2 or parts[-1].startswith("."):
        return None
    if not parts[-1].lower().endswith((".jpg", ".jpeg", ".png")):
        return None
    return parts[-2]


def _decode(blob: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(blob)) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8)


def _read_items(path: Path):
    """Yields `(class_name, sort_key, bytes)` from a tarball or a folder."""
    if path.is_dir():
        root = path / "train" if (path / "train").is_dir() else path
        for file in sorted(root.rglob("*")):
            cls = _class_of(str(file.relative_to(root)))
            if file.is_file() and cls is not None:
                yield cls, str(file), file.read_bytes()
        return
    with tarfile.open(path, "r:*") as archive:
        for member in archive:
            cls = _class_of(member.name) if member.isfile() else None
            if cls is not None:
                yield cls, member.name, archive.extractfile(member).read()


def load_cifar10_jpeg(path: Path, cache_dir: Path):
    """Decodes the JPEG training split; returns `(images, labels, names)`.

    `images` uint8 `(N, 32, 32, 3)`, `labels` int64 (class folders in
    alphabetical order), cached as `.npy` files keyed by the source's name,
    size and modification time.
    """
    stat = path.stat()
    key = f"{path.name}-{stat.st_size}-{int(stat.st_mtime)}"
    base = cache_dir / key
    files = [Path(f"{base}.{part}") for part in ("images.npy", "labels.npy")]
    names_file = Path(f"{base}.classes.json")
    if all(f.is_file() for f in files) and names_file.is_file():
        return (
            np.load(files[0]),
            np.load(files[1]),
            json.loads(names_file.read_text()),
        )
    items = sorted(_read_items(path), key=lambda item: (item[0], item[1]))
    if not items:
        raise ValueError(f"No images found under --data {path}")
    names = sorted({cls for cls, _, _ in items})
    if len(names) != NUM_CLASSES:
        raise ValueError(
            f"Expected {NUM_CLASSES} class folders in {path}, found "
            f"{len(names)}: {names}"
        )
    index = {name: k for k, name in enumerate(names)}
    images = np.stack([_decode(blob) for _, _, blob in items])
    labels = np.array([index[cls] for cls, _, _ in items], np.int64)
    cache_dir.mkdir(parents=True, exist_ok=True)
    for file, array in zip(files, (images, labels)):
        # A per-process temporary name: two drivers may decode at once.
        tmp = file.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, array)
        os.replace(tmp, file)
    names_file.write_text(json.dumps(names))
    return images, labels, names


def _subsample(indices, limit, seed):
    if not limit or limit >= indices.size:
        return indices
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(indices, size=limit, replace=False))


def make_splits(images, labels, args):
    """Train / validation arrays of the chosen mode."""
    from keras_dlpa.data.long_tail import long_tailed_indices
    from keras_dlpa.data.splits import stratified_split

    train_idx, val_idx = stratified_split(
        labels, args.val_fraction, seed=args.seed, num_classes=NUM_CLASSES
    )
    if not args.low_dim:
        lt = long_tailed_indices(
            labels[train_idx],
            args.imbalance,
            seed=args.seed,
            num_classes=NUM_CLASSES,
        )
        train_idx = train_idx[lt]
    train_idx = _subsample(train_idx, args.max_train, args.seed)
    val_idx = _subsample(val_idx, args.max_val, args.seed + 1)
    return {
        "train_x": images[train_idx],
        "train_y": labels[train_idx],
        "val_x": images[val_idx].astype("float32"),
        "val_y": labels[val_idx],
        "train_counts": np.bincount(labels[train_idx], minlength=NUM_CLASSES),
    }


def _augmented_batches_class():
    import keras

    class AugmentedBatches(keras.utils.PyDataset):
        """Shuffled full batches: crop (pad 4) + flip, then optional mixup.

        Yields float32 images in 0-255 and one-hot (or mixup soft) labels
        `(B, c)`. Randomness is a pure function of `(seed, epoch, batch)`,
        so worker threads give the same batches as a single thread.
        """

        def __init__(self, x, y, batch_size, mixup_alpha, seed, **kwargs):
            super().__init__(**kwargs)
            self.padded = np.pad(x, ((0, 0), (4, 4), (4, 4), (0, 0)))
            self.eye = np.eye(NUM_CLASSES, dtype="float32")
            self.y = y
            self.batch_size = batch_size
            self.mixup_alpha = mixup_alpha
            self.seed = seed
            self.epoch = 0
            self._order()

        def _order(self):
            rng = np.random.default_rng([self.seed, self.epoch, 1 << 20])
            self.order = rng.permutation(self.y.size)

        def __len__(self):
            return max(1, self.y.size // self.batch_size)

        def on_epoch_end(self):
            self.epoch += 1
            self._order()

        def __getitem__(self, index):
            b = self.batch_size
            idx = self.order[index * b : (index + 1) * b]
            rng = np.random.default_rng([self.seed, self.epoch, index])
            n = idx.size
            dy, dx = rng.integers(0, 9, (2, n))
            flip = rng.random(n) < 0.5
            rows = dy[:, None] + np.arange(32)
            cols = dx[:, None] + np.arange(32)
            cols = np.where(flip[:, None], cols[:, ::-1], cols)
            x = self.padded[
                idx[:, None, None], rows[:, :, None], cols[:, None, :]
            ].astype("float32")
            y = self.eye[self.y[idx]]
            if self.mixup_alpha > 0:
                lam = np.float32(rng.beta(self.mixup_alpha, self.mixup_alpha))
                partner = rng.permutation(n)
                x = lam * x + (1 - lam) * x[partner]
                y = lam * y + (1 - lam) * y[partner]
            return x, y

    return AugmentedBatches


# ---------------------------------------------------------------- training


def _recipe(args):
    epochs = args.epochs
    if args.low_dim:
        return {
            "lr": 0.01,
            "warmup": 0,
            "milestones": (round(0.4 * epochs), round(0.8 * epochs)),
            "weight_decay": 1e-4,
            "mixup": 0.0,
            "class_scale": False,
        }
    return {
        "lr": 0.1,
        "warmup": min(5, epochs // 10),
        "milestones": (round(0.8 * epochs), round(0.9 * epochs)),
        "weight_decay": 2e-4,
        "mixup": 1.0,
        "class_scale": True,
    }


def tensorflow_imported() -> bool:
    return sys.modules.get("tensorflow") is not None


def _set_seed(seed):
    """`keras.utils.set_random_seed` without loading TensorFlow.

    Keras also seeds TensorFlow when it is importable; hiding it for the
    call keeps this script TensorFlow-free on machines that have it.
    """
    import keras

    hidden = "tensorflow" not in sys.modules
    if hidden:
        sys.modules["tensorflow"] = None
    try:
        keras.utils.set_random_seed(seed)
    finally:
        if hidden:
            del sys.modules["tensorflow"]


def _build(method, args, recipe, steps_per_epoch):
    import keras

    from keras_dlpa.classifier import build_classifier
    from keras_dlpa.classifier import classifier_loss
    from keras_dlpa.classifier import classifier_metrics
    from keras_dlpa.classifier import method_prototypes
    from keras_dlpa.models import CIFAR10_MEAN
    from keras_dlpa.models import CIFAR10_STD
    from keras_dlpa.models import cifar_resnet
    from keras_dlpa.schedules import WarmupMultiStep

    _set_seed(args.seed)
    common = {
        "width": 16,
        "weight_decay": recipe["weight_decay"],
        "mean": CIFAR10_MEAN,
        "std": CIFAR10_STD,
    }
    if args.low_dim:
        backbone = cifar_resnet(args.depth, "balanced", dim=args.dim, **common)
    else:
        backbone = cifar_resnet(args.depth, "long_tailed", **common)
    dim = int(backbone.outputs[0].shape[-1])
    prototypes = method_prototypes(method, NUM_CLASSES, dim, seed=args.seed)
    model = build_classifier(
        backbone,
        NUM_CLASSES,
        method,
        prototypes=prototypes,
        weight_decay=recipe["weight_decay"],
        seed=args.seed,
    )
    schedule = WarmupMultiStep(
        recipe["lr"],
        steps_per_epoch,
        warmup_epochs=recipe["warmup"],
        milestones=recipe["milestones"],
    )
    model.compile(
        optimizer=keras.optimizers.SGD(schedule, momentum=0.9),
        loss=classifier_loss(method, recipe["class_scale"], soft_labels=True),
        metrics=classifier_metrics(NUM_CLASSES, soft_labels=True),
    )
    return model


def _progress_callbacks(method, args, path):
    """Returns `(clock, reporter)` callbacks of one method's training.

    Put `clock` first (the training time it measures excludes evaluation)
    and `reporter` last (it reads the validation metrics the evaluation
    callback logged). The reporter keeps `seconds` per epoch, prints a
    progress line, writes the history so far to `path` (if not `None`) and
    stops training when the next epoch would end after `args.deadline`.
    """
    import keras

    class Reporter(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds = []
            self.history = {}
            self.start = 0.0

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            for key, value in logs.items():
                self.history.setdefault(key, []).append(float(value))
            print(
                f"[{method}] epoch {epoch + 1}/{args.epochs} "
                f"loss {logs.get('loss', math.nan):.4f} "
                f"val_top1 {logs.get('val_top1', math.nan):.4f} "
                f"train {self.seconds[-1]:.1f} s",
                flush=True,
            )
            if path is not None:
                path.write_text(
                    json.dumps(
                        {"epoch_seconds": self.seconds, "history": self.history}
                    )
                )
            if args.deadline and epoch + 1 < args.epochs:
                if time.time() + 1.5 * self.seconds[-1] > args.deadline:
                    print(f"[{method}] deadline: stopping", flush=True)
                    self.model.stop_training = True

    reporter = Reporter()

    def start(epoch, logs):
        reporter.start = time.perf_counter()

    def stop(epoch, logs):
        reporter.seconds.append(time.perf_counter() - reporter.start)

    clock = keras.callbacks.LambdaCallback(
        on_epoch_begin=start, on_epoch_end=stop
    )
    return clock, reporter


def _metrics_at(history, epoch):
    out = {"epoch": int(epoch)}
    for key in ("top1", "top5", "balanced", "many", "medium", "few"):
        values = history.get(f"val_{key}")
        value = None if values is None else float(values[epoch])
        out[key] = None if value is None or math.isnan(value) else value
    return out


def train_method(method, args):
    """Trains one method; returns its result dict."""
    start = time.perf_counter()
    from keras_dlpa.classifier import method_callbacks
    from keras_dlpa.evaluation import EvaluationCallback

    images, labels, _ = load_cifar10_jpeg(args.data, args.cache_dir)
    splits = make_splits(images, labels, args)
    recipe = _recipe(args)
    batches = _augmented_batches_class()(
        splits["train_x"],
        splits["train_y"],
        BATCH,
        recipe["mixup"],
        args.seed,
        workers=args.workers,
        max_queue_size=16,
    )
    model = _build(method, args, recipe, len(batches))
    progress_file = None
    if args.log_dir is not None:
        progress_file = Path(args.log_dir) / f"{method}.progress.json"
    clock, reporter = _progress_callbacks(method, args, progress_file)
    callbacks = [clock]
    callbacks += method_callbacks(method)
    callbacks.append(
        EvaluationCallback(
            splits["val_x"],
            splits["val_y"],
            splits["train_counts"],
            batch_size=1000,
        )
    )
    callbacks.append(reporter)
    history = model.fit(
        batches, epochs=args.epochs, callbacks=callbacks, verbose=args.verbose
    ).history
    top1 = history["val_top1"]
    best = int(np.nanargmax(top1))
    images_per_epoch = len(batches) * BATCH
    steady = reporter.seconds[1:] or reporter.seconds
    result = {
        "method": method,
        "epochs": args.epochs,
        "epochs_run": len(top1),
        "completed": len(top1) == args.epochs,
        "train_images": int(splits["train_y"].size),
        "val_images": int(splits["val_y"].size),
        "train_counts": splits["train_counts"].tolist(),
        "steps_per_epoch": len(batches),
        "last": _metrics_at(history, len(top1) - 1),
        "best": _metrics_at(history, best),
        "images_per_s": images_per_epoch / statistics.median(steady),
        "first_epoch_s": reporter.seconds[0],
        "train_s": float(sum(reporter.seconds)),
        "wall_s": time.perf_counter() - start,
        "val_top1_history": [float(v) for v in top1],
        "train_loss_history": [float(v) for v in history["loss"]],
        "tensorflow_imported": tensorflow_imported(),
    }
    if "assignment_changed" in history:
        result["assignment_changed"] = [
            float(v) for v in history["assignment_changed"]
        ]
    return result


# ---------------------------------------------------------------- driver


def _worker_command(method, out, log_dir, argv):
    skip = {"--methods", "--out", "--worker", "--worker-out", "--log-dir"}
    rest, drop = [], False
    for arg in argv:
        if drop:
            drop = False
            continue
        name = arg.split("=", 1)[0]
        if name in skip:
            drop = "=" not in arg
            continue
        rest.append(arg)
    return [sys.executable, str(Path(__file__).resolve()), *rest] + [
        "--worker",
        method,
        "--worker-out",
        str(out),
        "--log-dir",
        str(log_dir),
    ]


def run_methods(methods, args, argv):
    """Runs every method (concurrently unless `--sequential`).

    Returns `(results, failures)`: result dicts by method, and the tail of
    the log of each method whose process failed (the others still report).
    Worker logs and per-epoch progress files go to `--log-dir`.
    """
    if args.sequential or len(methods) == 1:
        return {m: train_method(m, args) for m in methods}, {}
    env = dict(os.environ)
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    log_dir = Path(args.log_dir or tempfile.mkdtemp(prefix="gpu_cifar10_"))
    log_dir.mkdir(parents=True, exist_ok=True)
    procs = {}
    for method in methods:
        out = log_dir / f"{method}.json"
        log = open(log_dir / f"{method}.log", "w")  # noqa: SIM115
        command = _worker_command(method, out, log_dir, argv)
        procs[method] = (
            subprocess.Popen(
                command, env=env, stdout=log, stderr=subprocess.STDOUT
            ),
            out,
            log,
        )
    print(f"{len(methods)} methods running; logs in {log_dir}", flush=True)
    results, failures = {}, {}
    for method, (proc, out, log) in procs.items():
        code = proc.wait()
        log.close()
        if code != 0 or not out.is_file():
            text = (log_dir / f"{method}.log").read_text()[-4000:]
            failures[method] = f"exit code {code}:\n{text}"
            print(f"method {method} failed ({code}):\n{text}", flush=True)
            continue
        results[method] = json.loads(out.read_text())
    return results, failures


def _check_methods(methods, low_dim):
    from keras_dlpa.classifier import METHODS

    for method in methods:
        if method not in METHODS:
            raise SystemExit(f"unknown method {method!r}; use one of {METHODS}")
        if low_dim and method == "etf":
            raise SystemExit("--low-dim: 'etf' needs d >= 9; use dl2pa,static")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument(
        "--cache-dir", type=Path, default=REPO / ".data" / "cache"
    )
    parser.add_argument("--methods", default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--low-dim", action="store_true")
    parser.add_argument("--dim", type=int, default=3)
    parser.add_argument("--depth", type=int, default=32)
    parser.add_argument("--imbalance", type=float, default=0.01)
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--max-train", type=int, default=None)
    parser.add_argument("--max-val", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--sequential", action="store_true")
    parser.add_argument("--verbose", type=int, default=0)
    parser.add_argument("--check-no-tensorflow", action="store_true")
    parser.add_argument(
        "--deadline",
        type=float,
        default=None,
        help="Unix time: each method stops after the last epoch that ends "
        "before it (the result says `completed: false`)",
    )
    parser.add_argument(
        "--log-dir",
        default=None,
        help="worker logs and per-epoch progress files (default: a temp dir)",
    )
    parser.add_argument("--out", default=None)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.epochs is None:
        args.epochs = 50 if args.low_dim else 200
    if args.methods is None:
        args.methods = "dl2pa,static" if args.low_dim else "dl2pa,etf,softmax"
    if args.data is None:
        found = [p for p in DEFAULT_DATA if p.exists()]
        if not found:
            parser.error(
                f"no --data given and none of {[str(p) for p in DEFAULT_DATA]}"
                " exists"
            )
        args.data = found[0]
    return args


def main(argv=None):
    os.environ.setdefault("KERAS_BACKEND", "jax")
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.worker:
        result = train_method(args.worker, args)
        Path(args.worker_out).write_text(json.dumps(result))
        return 0
    start = time.perf_counter()
    methods = [m for m in args.methods.split(",") if m]
    _check_methods(methods, args.low_dim)
    # Decode (and cache) the data and the prototypes once, before workers.
    images, labels, names = load_cifar10_jpeg(args.data, args.cache_dir)
    splits = make_splits(images, labels, args)
    from keras_dlpa.classifier import method_prototypes

    dim = args.dim if args.low_dim else 64
    for method in methods:
        method_prototypes(method, NUM_CLASSES, dim, seed=args.seed)
    results, failures = run_methods(methods, args, argv)

    from _common import print_table
    from _common import write_results

    rows = []
    for method, r in results.items():
        rows.append(
            {
                "method": method,
                "last_top1": r["last"]["top1"],
                "best_top1": r["best"]["top1"],
                "best_epoch": r["best"]["epoch"],
                "epochs_run": r["epochs_run"],
                "many": r["last"]["many"],
                "medium": r["last"]["medium"],
                "few": r["last"]["few"],
                "images_per_s": r["images_per_s"],
                "wall_s": r["wall_s"],
            }
        )
    if rows:
        print_table(rows)
    imported = tensorflow_imported() or any(
        r["tensorflow_imported"] for r in results.values()
    )
    name = "gpu_cifar10_lowdim" if args.low_dim else "gpu_cifar10_lt"
    config = {
        k: (str(v) if isinstance(v, Path) else v)
        for k, v in vars(args).items()
        if k not in ("worker", "worker_out")
    }
    write_results(
        name,
        {
            "mode": "low_dim" if args.low_dim else "long_tailed",
            "config": config,
            "recipe": _recipe(args),
            "class_names": names,
            "train_counts": splits["train_counts"].tolist(),
            "concurrent": not args.sequential and len(methods) > 1,
            "methods": results,
            "failures": failures,
            "total_wall_s": time.perf_counter() - start,
            "tensorflow_imported": imported,
            "command": "python benchmarks/gpu_cifar10_lt.py " + " ".join(argv),
        },
        args.out,
    )
    if args.check_no_tensorflow and imported:
        print("ERROR: tensorflow was imported", file=sys.stderr)
        return 3
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
