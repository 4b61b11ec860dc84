"""Experiment runner (TensorFlow backend): data -> model -> fit -> run dir.

`run_experiment(ExperimentConfig(...))` is what every recipe calls. It

1. loads the data (TFDS, an image folder or archive, an image list file, or
   a numpy `.npz`), carves a seeded, stratified, balanced validation split
   from the training data, then applies the long-tailed profile to the rest;
2. builds the backbone and the head of `config.method` (see
   `keras_dlpa.classifier`) inside the distribution strategy's scope, with
   the channel statistics of the training images in the model's first
   layer, and compiles SGD (momentum 0.9) with a warm-up + decay schedule;
3. trains with callbacks in this order: `ReassignCallback` (dl2pa only),
   `EvaluationCallback` on the validation split, the run logger
   (`metrics.csv`, `metrics.json`, `best.keras` by `val_top1`) and
   `keras.callbacks.BackupAndRestore` (`checkpoints/`, every epoch);
4. writes `model.keras`, `final_state.npz`, `evaluation.json` (last and
   best epoch on the validation split, and on the test split when there is
   one; model selection never looks at the test split), prints the metrics
   table and draws the plots (`keras_dlpa.report.make_report`).

Exact resume: the checkpoint holds the weights, the optimizer state (with
its iteration counter, which drives the learning-rate schedule), the
assignment and the class statistics (model variables) and the epoch. The
training batches of epoch `e` are a pure function of `(seed, e)`
(stateless random permutation and augmentation, see
`keras_dlpa.data.epoch_keyed_pipeline`), so a run resumed with
`resume=True` sees the same batches as an uninterrupted run, and with
`deterministic=True` ends with the same weights.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import os
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from keras_dlpa.classifier import PROTOTYPE_METHODS
from keras_dlpa.classifier import build_classifier
from keras_dlpa.classifier import check_method
from keras_dlpa.classifier import classifier_loss
from keras_dlpa.classifier import classifier_metrics
from keras_dlpa.classifier import method_callbacks
from keras_dlpa.classifier import method_prototypes
from keras_dlpa.classifier import project_features
from keras_dlpa.data import ImageData
from keras_dlpa.data import channel_stats
from keras_dlpa.data import epoch_keyed_pipeline
from keras_dlpa.data import eval_pipeline
from keras_dlpa.data import load_image_folder
from keras_dlpa.data import load_tfds
from keras_dlpa.data import make_long_tailed
from keras_dlpa.data import split_train_val
from keras_dlpa.evaluation import EvaluationCallback
from keras_dlpa.evaluation import classification_metrics
from keras_dlpa.evaluation import format_metrics_table
from keras_dlpa.models import BACKBONE_PRESETS
from keras_dlpa.models import backbone_from_preset
from keras_dlpa.reassign_callback import find_prototype_layer
from keras_dlpa.schedules import WarmupCosine
from keras_dlpa.schedules import WarmupMultiStep

logger = logging.getLogger(__name__)

SOURCES = ("tfds", "image_dir", "image_list", "numpy")
METRIC_KEYS = (
    "epoch",
    "loss",
    "accuracy",
    "top5",
    "val_top1",
    "val_top5",
    "val_many",
    "val_medium",
    "val_few",
    "val_balanced",
    "learning_rate",
)
DL2PA_KEYS = ("assignment_changed", "assignment_cost")
_CHECKPOINT_METADATA = "training_metadata.json"
_CHECKPOINT_WEIGHTS = "latest.weights.h5"


@dataclasses.dataclass
class ExperimentConfig:
    """Everything a run needs; written (resolved) to `RUN_DIR/config.json`.

    Data:
        dataset: name recorded in the run (the TFDS name for `"tfds"`).
        source: `"tfds"`, `"image_dir"` (class folders or a `.tar.gz` of
            them, `image_dir`), `"image_list"` (`path label` lines relative
            to `image_root`: `train_list`, optional `val_list`, `test_list`)
            or `"numpy"` (`.npz` with `images`, `labels`, optional
            `class_names`, `test_images`, `test_labels`).
        test_split: TFDS split used as the test split (`None`: none).
        train_per_class: keep at most this many images per class of the
            (balanced) training split before anything else, seeded (quick
            runs).
        val_fraction: fraction of each class held out for validation,
            carved from the training data BEFORE the long-tailed profile.
        imbalance: `n_min / n_max` in `(0, 1]` of the long-tailed profile
            applied to the training part; `None` keeps it as it is.
        image_size: side of the square images of the `"image_list"` source
            (shorter side resized, then centre crop).
    Model:
        method: `"dl2pa"`, `"static"`, `"etf"` or `"softmax"`.
        backbone: a key of `keras_dlpa.models.BACKBONE_PRESETS`.
        depth, width: CIFAR ResNet overrides (`None`: the preset's).
        dim: feature size `d`. `None`: the backbone's own. For a long-tailed
            CIFAR backbone (no projection, `d = 4 * width`) another `d` adds
            `Dense(d, no bias)` + BatchNorm after the features.
        prototype_seed: seed of the prototypes (cached on disk).
        class_scale: `IPMLoss(class_scale=...)` (long-tailed recipes).
    Optimisation:
        epochs, batch_size (global), learning_rate (peak), warmup_epochs,
        lr_decay (`"step"` with `milestones` and `gamma`, or `"cosine"`),
        momentum (SGD, no Nesterov), weight_decay (coupled L2, as PyTorch),
        mixup_alpha (0 disables mixup), crop_padding, flip.
    DL2PA:
        reassign_per_epoch (`tau'`), reassign_momentum (`alpha`).
    Run:
        out: the run directory. resume: continue from `out/checkpoints`.
        seed: global seed (weights, split, data order). strategy:
        `keras_dlpa.distribute.resolve_strategy` name. verbose: `fit`
        verbosity (1 progress bar, 2 one line per epoch). deterministic:
        TF op determinism (bit-exact resume). jit_compile: passed to
        `compile`. report: draw the plots at the end.
    """

    dataset: str = "cifar100"
    source: str = "tfds"
    data_dir: str | None = None
    manual_dir: str | None = None
    download: bool = True
    test_split: str | None = "test"
    image_dir: str | None = None
    image_root: str | None = None
    train_list: str | None = None
    val_list: str | None = None
    test_list: str | None = None
    numpy_path: str | None = None
    image_size: int = 224
    train_per_class: int | None = None
    val_fraction: float = 0.1
    imbalance: float | None = 0.01
    method: str = "dl2pa"
    backbone: str = "resnet32_lt_cifar100"
    depth: int | None = None
    width: int | None = None
    dim: int | None = None
    prototype_seed: int = 0
    class_scale: bool = True
    epochs: int = 200
    batch_size: int = 128
    learning_rate: float = 0.1
    warmup_epochs: int = 5
    lr_decay: str = "step"
    milestones: tuple = (160, 180)
    gamma: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 2e-4
    mixup_alpha: float = 1.0
    crop_padding: int = 4
    flip: bool = True
    reassign_per_epoch: int = 1
    reassign_momentum: float = 0.9
    eval_batch_size: int = 256
    out: str = "runs/experiment"
    resume: bool = False
    seed: int = 0
    strategy: str = "auto"
    verbose: int = 2
    deterministic: bool = False
    jit_compile: bool = False
    report: bool = True

    def __post_init__(self):
        check_method(self.method)
        if self.source not in SOURCES:
            raise ValueError(
                f"`source` must be one of {SOURCES}. Received: "
                f"source={self.source!r}"
            )
        if self.imbalance is not None and not 0.0 < self.imbalance <= 1.0:
            raise ValueError(
                "`imbalance` must be in (0, 1] (n_min / n_max; 0.01 is "
                "CIFAR-LT 'ratio 100', 1.0 balanced) or None. Received: "
                f"imbalance={self.imbalance}"
            )
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(
                "`val_fraction` must be in (0, 1). Received: "
                f"val_fraction={self.val_fraction}"
            )
        if self.backbone not in BACKBONE_PRESETS:
            raise ValueError(
                f"Unknown `backbone` {self.backbone!r}; expected one of "
                f"{sorted(BACKBONE_PRESETS)}."
            )
        if self.lr_decay not in ("step", "cosine"):
            raise ValueError(
                "`lr_decay` must be 'step' or 'cosine'. Received: "
                f"lr_decay={self.lr_decay!r}"
            )
        for name in ("epochs", "batch_size", "eval_batch_size"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise ValueError(
                    f"`{name}` must be a positive integer. Received: "
                    f"{name}={value!r}"
                )
        if self.mixup_alpha < 0:
            raise ValueError(
                f"`mixup_alpha` must be >= 0. Received: {self.mixup_alpha}"
            )
        self.milestones = tuple(int(m) for m in self.milestones)


# ---------------------------------------------------------------- data


def _read_image(path: Path, size: int) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("RGB")
        w, h = image.size
        scale = size / min(w, h)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        image = image.resize((nw, nh), Image.BILINEAR)
        left, top = (nw - size) // 2, (nh - size) // 2
        image = image.crop((left, top, left + size, top + size))
        return np.asarray(image, dtype=np.uint8)


def load_image_list(
    list_file, root, size: int = 224, class_names=None
) -> ImageData:
    """Loads the images of an image list file (`path label` per line).

    The ImageNet-LT format (`ImageNet_LT_train.txt`): paths are relative to
    `root`, labels are integers. Every image is resized (shorter side to
    `size`, bilinear) and centre-cropped to `size x size`, and held in
    memory as uint8 (the full ImageNet-LT train list at 224 px needs about
    17 GB).

    Args:
        list_file: the list file.
        root: directory the paths are relative to.
        size: output side length.
        class_names: names in label order; default `"0"`, `"1"`, ...

    Returns:
        An `ImageData`.
    """
    root = Path(root)
    paths, labels = [], []
    with open(list_file, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            parts = line.rsplit(maxsplit=1)
            if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
                raise ValueError(
                    f"{list_file}, line {number}: expected 'path label' with "
                    f"an integer label. Received: {line!r}"
                )
            paths.append(root / parts[0])
            labels.append(int(parts[1]))
    if not paths:
        raise ValueError(f"Image list {list_file} has no entries.")
    images = np.stack([_read_image(p, size) for p in paths])
    labels = np.asarray(labels, np.int64)
    if class_names is None:
        class_names = [str(k) for k in range(int(labels.max()) + 1)]
    return ImageData(images, labels, list(class_names))


def _folder_list(directory: Path) -> list[tuple[str, int]]:
    classes = sorted(p.name for p in directory.iterdir() if p.is_dir())
    entries = []
    for label, name in enumerate(classes):
        for file in sorted((directory / name).iterdir()):
            if file.suffix.lower() in (".jpg", ".jpeg", ".png"):
                entries.append((f"{name}/{file.name}", label))
    return entries, classes


def _load_list_or_folder(path, root, size) -> ImageData:
    path = Path(path)
    if path.is_dir():
        entries, classes = _folder_list(path)
        images = np.stack([_read_image(path / p, size) for p, _ in entries])
        labels = np.array([label for _, label in entries], np.int64)
        return ImageData(images, labels, classes)
    return load_image_list(
        path, root if root is not None else path.parent, size
    )


def _cap_per_class(data: ImageData, limit: int, seed: int) -> ImageData:
    rng = np.random.RandomState(seed)
    kept = []
    for k in range(data.num_classes):
        idx = np.flatnonzero(data.labels == k)
        kept.append(np.sort(rng.permutation(idx)[:limit]))
    return data.subset(np.sort(np.concatenate(kept)))


def load_data(
    config: ExperimentConfig,
) -> tuple[ImageData, ImageData | None, ImageData | None]:
    """Returns `(train_full, val_or_None, test_or_None)` of the source."""
    source = config.source
    val = test = None
    if source == "tfds":
        kwargs = dict(
            data_dir=config.data_dir,
            manual_dir=config.manual_dir,
            download=config.download,
        )
        train = load_tfds(config.dataset, "train", **kwargs)
        if config.test_split:
            test = load_tfds(config.dataset, config.test_split, **kwargs)
    elif source == "image_dir":
        if not config.image_dir:
            raise ValueError("source='image_dir' needs `image_dir`.")
        train = load_image_folder(config.image_dir)
    elif source == "image_list":
        if not config.train_list:
            raise ValueError(
                "source='image_list' needs `train_list` (an image list file "
                "or a class-folder directory)."
            )
        size = config.image_size
        train = _load_list_or_folder(config.train_list, config.image_root, size)
        if config.val_list:
            val = _load_list_or_folder(config.val_list, config.image_root, size)
        if config.test_list:
            test = _load_list_or_folder(
                config.test_list, config.image_root, size
            )
    else:
        if not config.numpy_path:
            raise ValueError("source='numpy' needs `numpy_path` (.npz).")
        with np.load(config.numpy_path) as arrays:
            names = (
                arrays["class_names"].tolist()
                if ("class_names" in arrays)
                else None
            )
            train = _from_numpy(arrays["images"], arrays["labels"], names)
            if "test_images" in arrays:
                test = _from_numpy(
                    arrays["test_images"],
                    arrays["test_labels"],
                    train.class_names,
                )
    return train, val, test


def _from_numpy(images, labels, names):
    from keras_dlpa.data import from_arrays

    return from_arrays(images, labels, class_names=names)


def make_splits(
    data: ImageData, config: ExperimentConfig, val: ImageData | None = None
) -> tuple[ImageData, ImageData]:
    """Validation split first, then the long-tailed profile on the rest.

    The validation split is stratified (`val_fraction` of each class,
    seeded) unless `val` is given. The long-tailed profile keeps
    `int(n_max * imbalance ** (k / (c - 1)))` images of class `k` with
    `n_max` the SMALLEST remaining class (equal to the others for the
    balanced CIFAR splits), so every class can fill its quota.
    """
    if config.train_per_class:
        data = _cap_per_class(data, int(config.train_per_class), config.seed)
    if val is None:
        data, val = split_train_val(data, config.val_fraction, config.seed)
    if config.imbalance is not None:
        counts = data.class_counts()
        data = make_long_tailed(
            data, config.imbalance, config.seed, n_max=int(counts.min())
        )
    return data, val


# ---------------------------------------------------------------- model


def build_model(
    config: ExperimentConfig,
    num_classes: int,
    mean,
    std,
    image_shape,
) -> keras.Model:
    """Backbone (`config.backbone` preset) + the head of `config.method`."""
    preset = BACKBONE_PRESETS[config.backbone]
    overrides = {
        "mean": tuple(float(v) for v in mean),
        "std": tuple(float(v) for v in std),
        "input_shape": tuple(int(s) for s in image_shape),
        "weight_decay": config.weight_decay,
    }
    project_to = None
    if preset["builder"] == "cifar_resnet":
        if config.depth is not None:
            overrides["depth"] = config.depth
        if config.width is not None:
            overrides["width"] = config.width
        width = overrides.get("width", preset["config"]["width"])
        variant = preset["config"]["variant"]
        if variant == "long_tailed":
            if config.dim is not None and config.dim != 4 * width:
                project_to = config.dim
        else:
            overrides["dim"] = config.dim or preset["config"].get("dim")
    elif config.dim is not None:
        overrides["dim"] = config.dim
    backbone = backbone_from_preset(config.backbone, **overrides)
    if project_to is not None:
        features = project_features(
            backbone.outputs[0], project_to, config.weight_decay
        )
        backbone = keras.Model(backbone.input, features, name=backbone.name)
    dim = int(backbone.outputs[0].shape[-1])
    prototypes = method_prototypes(
        config.method, num_classes, dim, seed=config.prototype_seed
    )
    return build_classifier(
        backbone,
        num_classes,
        config.method,
        prototypes=prototypes,
        weight_decay=config.weight_decay,
        seed=config.prototype_seed,
    )


def make_schedule(config: ExperimentConfig, steps_per_epoch: int):
    """The learning-rate schedule of `config` (driven by iterations)."""
    if config.lr_decay == "cosine":
        return WarmupCosine(
            config.learning_rate,
            steps_per_epoch,
            config.epochs,
            warmup_epochs=config.warmup_epochs,
        )
    return WarmupMultiStep(
        config.learning_rate,
        steps_per_epoch,
        warmup_epochs=config.warmup_epochs,
        milestones=config.milestones,
        gamma=config.gamma,
    )


# ---------------------------------------------------------------- logging


def _json_value(value):
    if isinstance(value, (np.floating, np.integer)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _write_json(path: Path, value) -> None:
    _atomic_write(path, json.dumps(value, indent=2) + "\n")


class RunLogger(keras.callbacks.Callback):
    """Appends one row per epoch to `metrics.json`/`metrics.csv`.

    Tracks the best epoch by `monitor` (higher is better) and saves the model
    to `best.keras` when it improves. On resume it keeps the rows of the
    epochs before `initial_epoch` (rows of a re-run epoch are replaced), so
    the files continue without duplicate or missing epochs. Place it after
    `ReassignCallback` and `EvaluationCallback` (it logs their keys) and
    before the checkpoint callback.

    Args:
        run_dir: the run directory.
        initial_epoch: first epoch of this `fit` call.
        monitor: log key selecting the best epoch.
        schedule: the optimizer's learning-rate schedule; `learning_rate`
            is logged as its value at the epoch's last step.
    """

    def __init__(
        self,
        run_dir,
        initial_epoch: int = 0,
        monitor: str = "val_top1",
        schedule=None,
    ):
        super().__init__()
        self.schedule = schedule
        self.run_dir = Path(run_dir)
        self.initial_epoch = int(initial_epoch)
        self.monitor = monitor
        self.rows = read_metrics(self.run_dir, before=self.initial_epoch)
        self.best_epoch, self.best_value = None, -math.inf
        for row in self.rows:
            value = row.get(monitor)
            if value is not None and value > self.best_value:
                self.best_epoch, self.best_value = row["epoch"], value

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        optimizer = self.model.optimizer
        iterations = int(keras.ops.convert_to_numpy(optimizer.iterations))
        if self.schedule is not None:
            lr = self.schedule(max(iterations - 1, 0))
        else:
            lr = optimizer.learning_rate
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(lr))
        row = {"epoch": int(epoch)}
        keys = [k for k in METRIC_KEYS if k != "epoch"]
        keys += [k for k in DL2PA_KEYS if k in logs]
        keys += sorted(k for k in logs if k not in keys)
        for key in keys:
            row[key] = _json_value(logs.get(key))
        row["epoch_time_s"] = round(time.perf_counter() - self._start, 3)
        self.rows = [r for r in self.rows if r["epoch"] < epoch] + [row]
        value = row.get(self.monitor)
        if value is not None and value > self.best_value:
            self.best_epoch, self.best_value = int(epoch), value
            self.model.save(self.run_dir / "best.keras")
        self._write()

    def _write(self):
        _write_json(self.run_dir / "metrics.json", self.rows)
        columns = []
        for row in self.rows:
            columns += [k for k in row if k not in columns]
        tmp = self.run_dir / "metrics.csv.tmp"
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            for row in self.rows:
                writer.writerow(
                    {k: "" if row.get(k) is None else row[k] for k in columns}
                )
        os.replace(tmp, self.run_dir / "metrics.csv")


def read_metrics(run_dir, before: int | None = None) -> list[dict]:
    """Rows of `run_dir/metrics.json` (with `epoch < before` if given)."""
    path = Path(run_dir) / "metrics.json"
    if not path.is_file():
        return []
    rows = json.loads(path.read_text(encoding="utf-8"))
    if before is not None:
        rows = [r for r in rows if r["epoch"] < before]
    return rows


def checkpoint_epoch(run_dir) -> int:
    """Epochs completed according to `run_dir/checkpoints` (0 if none)."""
    path = Path(run_dir) / "checkpoints" / _CHECKPOINT_METADATA
    if not path.is_file():
        return 0
    return int(json.loads(path.read_text(encoding="utf-8"))["epoch"])


# ---------------------------------------------------------------- run


def _evaluate(model, data: ImageData, train_counts, batch_size) -> dict:
    dataset = eval_pipeline(data, batch_size=batch_size)
    logits = model.predict(dataset, verbose=0)
    metrics = classification_metrics(data.labels, logits, train_counts)
    metrics.pop("num_examples", None)
    return metrics


def _state_arrays(model) -> dict:
    layer = find_prototype_layer(model)
    to_np = keras.ops.convert_to_numpy
    return {
        "prototypes": to_np(layer.prototypes).astype("float32"),
        "assignment": to_np(layer.assignment).astype("int64"),
        "representatives": to_np(layer.representatives).astype("float32"),
        "observed": to_np(layer.observed).astype("float32"),
    }


def _prepare_run_dir(config: ExperimentConfig) -> tuple[Path, int]:
    run_dir = Path(config.out)
    done = checkpoint_epoch(run_dir)
    if not config.resume and (done > 0 or (run_dir / "metrics.json").is_file()):
        raise FileExistsError(
            f"Run directory {run_dir} already holds a run ({done} "
            "checkpointed epochs). Pass resume=True (--resume) to continue "
            "it, or choose another `out` (--out)."
        )
    if config.resume and done == 0:
        logger.warning("No checkpoint in %s; starting from epoch 0.", run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir, done


def run_experiment(config: ExperimentConfig, callbacks=None) -> dict:
    """Runs one experiment and returns its `evaluation.json` dict.

    Args:
        config: the `ExperimentConfig`.
        callbacks: extra Keras callbacks, appended after checkpointing.

    Returns:
        The evaluation dict (see the run directory schema).
    """
    from keras_dlpa.distribute import per_replica_batch_size
    from keras_dlpa.distribute import resolve_strategy
    from keras_dlpa.distribute import shard_by_data

    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            "keras_dlpa.experiment needs the TensorFlow backend (tf.data, "
            "tf.distribute). Set KERAS_BACKEND=tensorflow. Received backend: "
            f"{keras.backend.backend()!r}"
        )
    # Multi-worker collectives must be set up before TensorFlow runs an op.
    strategy = resolve_strategy(config.strategy)
    per_replica_batch_size(config.batch_size, strategy)
    started = time.perf_counter()
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    run_dir, initial_epoch = _prepare_run_dir(config)
    initial_epoch = min(initial_epoch, config.epochs)

    train_full, val, test = load_data(config)
    train, val = make_splits(train_full, config, val)
    train_counts = train.class_counts()
    mean, std = channel_stats(train.images)
    steps = len(train) // config.batch_size
    num_classes = train.num_classes

    with strategy.scope():
        model = build_model(config, num_classes, mean, std, train.image_shape)
        soft = bool(config.mixup_alpha)
        schedule = make_schedule(config, max(steps, 1))
        optimizer = keras.optimizers.SGD(
            learning_rate=schedule,
            momentum=config.momentum,
            nesterov=False,
        )
        model.compile(
            optimizer=optimizer,
            loss=classifier_loss(config.method, config.class_scale, soft),
            metrics=classifier_metrics(num_classes, soft),
            jit_compile=config.jit_compile,
        )
    dim = int(model.layers[-1].input.shape[-1])
    resolved = dataclasses.asdict(config)
    resolved.update(
        {
            "num_classes": num_classes,
            "dim": dim,
            "class_names": list(train.class_names),
            "train_size": len(train),
            "val_size": len(val),
            "test_size": None if test is None else len(test),
            "train_counts": train_counts.tolist(),
            "steps_per_epoch": steps,
            "channel_mean": [float(v) for v in mean],
            "channel_std": [float(v) for v in std],
            "num_replicas": int(strategy.num_replicas_in_sync),
            "keras_version": keras.__version__,
            "tensorflow_version": tf.__version__,
        }
    )
    resolved["milestones"] = list(config.milestones)
    _write_json(run_dir / "config.json", resolved)

    evaluation_cb = EvaluationCallback(
        eval_pipeline(val, batch_size=config.eval_batch_size),
        train_counts=train_counts,
        prefix="val_",
    )
    run_logger = RunLogger(run_dir, initial_epoch, schedule=schedule)
    checkpoint = keras.callbacks.BackupAndRestore(
        str(run_dir / "checkpoints"), delete_checkpoint=False
    )
    all_callbacks = (
        method_callbacks(
            config.method,
            updates_per_epoch=config.reassign_per_epoch,
            momentum=config.reassign_momentum,
        )
        + [evaluation_cb, run_logger, checkpoint]
        + list(callbacks or [])
    )
    if initial_epoch < config.epochs:
        train_ds, steps = epoch_keyed_pipeline(
            train,
            config.batch_size,
            config.seed,
            initial_epoch,
            config.epochs,
            crop_padding=config.crop_padding,
            flip=config.flip,
            mixup_alpha=config.mixup_alpha,
        )
        if config.strategy == "multiworker":
            train_ds = shard_by_data(train_ds)
        model.fit(
            train_ds,
            epochs=config.epochs,
            steps_per_epoch=steps,
            callbacks=all_callbacks,
            shuffle=False,
            verbose=config.verbose,
        )
    else:
        # Training finished earlier: restore its last checkpoint.
        model.optimizer.build(model.trainable_variables)
        model.load_weights(run_dir / "checkpoints" / _CHECKPOINT_WEIGHTS)

    model.save(run_dir / "model.keras")
    if config.method in PROTOTYPE_METHODS:
        np.savez(run_dir / "final_state.npz", **_state_arrays(model))

    rows = read_metrics(run_dir)
    last_epoch = rows[-1]["epoch"] if rows else config.epochs - 1
    best_row = max(
        (r for r in rows if r.get("val_top1") is not None),
        key=lambda r: r["val_top1"],
        default=None,
    )
    best_path = run_dir / "best.keras"
    best_model = (
        keras.saving.load_model(best_path) if best_path.is_file() else model
    )
    best_epoch = best_row["epoch"] if best_row else last_epoch
    bs = config.eval_batch_size
    evaluation = {
        "selection": "val_top1",
        "train_counts": train_counts.tolist(),
        "class_names": list(train.class_names),
        "last": {
            **_evaluate(model, val, train_counts, bs),
            "epoch": last_epoch,
        },
        "best": {
            **_evaluate(best_model, val, train_counts, bs),
            "epoch": best_epoch,
        },
    }
    if test is not None:
        evaluation["test"] = {
            "last": {
                **_evaluate(model, test, train_counts, bs),
                "epoch": last_epoch,
            },
            "best": {
                **_evaluate(best_model, test, train_counts, bs),
                "epoch": best_epoch,
            },
        }
    evaluation["wall_time_s"] = round(time.perf_counter() - started, 1)
    _write_json(run_dir / "evaluation.json", evaluation)
    logger.info(
        "Evaluation of %s:\n%s", run_dir, format_metrics_table(evaluation)
    )
    if config.report:
        from keras_dlpa.report import make_report

        make_report(run_dir)
    return evaluation
