"""`ExperimentConfig`: everything one training run needs."""

from __future__ import annotations

import dataclasses
import math
import textwrap

from keras_dlpa.data.executor import EXECUTORS
from keras_dlpa.data.stream_plan import AUTO_AUGMENTS
from keras_dlpa.data.stream_plan import check_augment_settings
from keras_dlpa.methods import METHODS
from keras_dlpa.methods import get_method
from keras_dlpa.models import BACKBONE_PRESETS
from keras_dlpa.training.distribution import STRATEGIES

SOURCES = ("tfds", "image_dir", "image_list", "numpy")
PRECISIONS = ("float32", "bfloat16")

# Field groups (`metadata["group"]`): the sections of `--help`.
DATA, MODEL, OPTIMISATION, RUN = "data", "model", "optimisation", "run"
GROUPS = (DATA, MODEL, OPTIMISATION, RUN)
# `metadata["when"]`: the recipes that get a field's flag (None: all).
STREAMING = "streaming"  # recipes with streamed input
IMAGE_LIST = "image_list"  # recipes reading list files
TFDS_IN_MEMORY = "tfds_in_memory"  # in-memory TFDS recipes


def int_list(text: str) -> tuple:
    """`"160,180"` -> `(160, 180)` (the `--milestones` flag)."""
    return tuple(int(v) for v in text.split(",") if v.strip())


def _field(default, group: str, help: str, flag: str | None = None, **cli):
    """A field with its metadata: the one description of the field, from
    which the command line's flags and the class docstring are built.

    Args:
        default: the field's default.
        group: one of `GROUPS`.
        help: what the field does, in one or more sentences, without the
            default (the command line adds the recipe's).
        flag: the flag (`None`: none). A bool field's flag sets it to
            the opposite of its default (`--resume`, `--no-report`), and
            its help says what the flag does.
        **cli: `type` (the parser of the text; default the type of
            `default`, else `str`), `choices`, `when` (see `STREAMING`,
            `IMAGE_LIST`, `TFDS_IN_MEMORY`) and `aliases`: more flags of
            the field, `(flag, when, help)`, that the main flag
            overrides.
    """
    if group not in GROUPS:
        raise ValueError(f"`group` must be one of {GROUPS}: {group!r}")
    metadata = {"group": group, "help": help, "flag": flag, **cli}
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass
class ExperimentConfig:
    """Everything a run needs; written (resolved) to `RUN_DIR/config.json`.

    Each field is described once, in its metadata (`_field`): the flags of
    `keras-dlpa train` and the sections below are generated from it.
    """

    # Data.
    dataset: str = _field(
        "cifar100",
        DATA,
        "name recorded in the run; with source tfds, the TFDS builder "
        "(e.g. svhn_cropped, stl10)",
        flag="--dataset",
        when=TFDS_IN_MEMORY,
    )
    source: str = _field(
        "tfds",
        DATA,
        "tfds; image_dir (class folders or a .tar.gz of them: image_dir); "
        "image_list ('path label' lines relative to image_root: "
        "train_list, optional val_list and test_list); or numpy (.npz "
        "with images, labels and optional class_names, test_images, "
        "test_labels: numpy_path). Set by --image-dir, --npz, --tfds",
    )
    data_dir: str | None = _field(
        None, DATA, "TFDS data_dir", flag="--data-dir"
    )
    manual_dir: str | None = _field(
        None, DATA, "TFDS manual_dir (archives)", flag="--manual-dir"
    )
    download: bool = _field(
        True, DATA, "TFDS: never download", flag="--no-download"
    )
    test_split: str | None = _field(
        "test", DATA, "TFDS split used as the test split (None: none)"
    )
    image_dir: str | None = _field(
        None,
        DATA,
        "class-folder directory or .tar.gz (instead of TFDS)",
        flag="--image-dir",
    )
    image_root: str | None = _field(
        None,
        DATA,
        "image root of the list files",
        flag="--root",
        when=IMAGE_LIST,
    )
    train_list: str | None = _field(
        None,
        DATA,
        "list file or class folder",
        flag="--train-list",
        when=IMAGE_LIST,
    )
    val_list: str | None = _field(
        None,
        DATA,
        "validation list file",
        flag="--val-list",
        when=IMAGE_LIST,
        aliases=(
            (
                "--val-dir",
                STREAMING,
                "validation class folder (instead of a split of the train)",
            ),
        ),
    )
    test_list: str | None = _field(
        None,
        DATA,
        "test list file",
        flag="--test-list",
        when=IMAGE_LIST,
        aliases=(("--test-dir", STREAMING, "test class folder"),),
    )
    numpy_path: str | None = _field(
        None,
        DATA,
        ".npz of images and labels (instead of TFDS); a prepared one "
        "(benchmarks/gpu/prepare_data.py) holds the run's splits",
        flag="--npz",
    )
    image_size: int = _field(
        224,
        DATA,
        "side of the square streamed training and evaluation images "
        "(random-resized crop for training; for evaluation the shorter "
        "side is resized to image_size / 0.875, then centre-cropped)",
        flag="--image-size",
        when=STREAMING,
    )
    streaming: bool = _field(
        False,
        DATA,
        "keep only paths and labels in memory and decode each batch in "
        "worker processes (keras_dlpa.data.streaming), with the ImageNet "
        "augmentation of StreamAugmentation. Sources image_dir, "
        "image_list (always streamed) and tfds (ArrayRecord "
        "tfds.data_source). Set by the recipe",
    )
    class_subset: str | None = _field(
        None,
        DATA,
        "keep the first N classes in label order (200: ImageNet-200) or "
        "the classes named in a file (one per line)",
        flag="--classes",
        when=STREAMING,
    )
    auto_augment: str = _field(
        "none",
        DATA,
        "trivial (TrivialAugment wide) or none (streaming only)",
        flag="--auto-augment",
        when=STREAMING,
        choices=AUTO_AUGMENTS,
    )
    random_erasing: float = _field(
        0.0,
        DATA,
        "random-erasing probability (streaming only)",
        flag="--random-erasing",
        when=STREAMING,
    )
    cutmix_alpha: float = _field(
        0.0,
        DATA,
        "cutmix Beta(alpha, alpha); 0 = off. With mixup too, each batch "
        "picks one (streaming only)",
        flag="--cutmix",
        when=STREAMING,
    )
    data_workers: int | None = _field(
        None,
        DATA,
        "decode processes of the streaming executor (default: one per "
        "core, at most 8; 0: in the training process)",
        flag="--workers",
        when=STREAMING,
        type=int,
    )
    skip_bad_images: bool = _field(
        False,
        DATA,
        "leave out unreadable or unsupported files of an image folder or "
        "list (listed in a warning and in the data's skipped_files; "
        "streamed sources are decoded once up front) instead of stopping "
        "with an error naming them. TFDS sources ignore it",
        flag="--skip-bad-images",
    )
    train_per_class: int | None = _field(
        None,
        DATA,
        "keep at most this many images per class of the (balanced) "
        "training split before anything else, seeded (quick runs)",
        flag="--train-per-class",
        type=int,
    )
    val_fraction: float = _field(
        0.1,
        DATA,
        "fraction of each class held out for validation, carved from the "
        "training data before the long-tailed profile",
        flag="--val-fraction",
    )
    imbalance: float | None = _field(
        0.01,
        DATA,
        "n_min / n_max in (0, 1] of the long-tailed profile applied to "
        "the training part (None: keep it as it is)",
        flag="--imbalance",
        type=float,
    )
    allow_data_drop: bool = _field(
        False,
        DATA,
        "train even when the long-tailed profile, headed by the "
        "smallest class, drops most of the images a profile headed by "
        "the largest class would keep (splits_with_report)",
        flag="--allow-data-drop",
    )
    # Model.
    method: str = _field(
        "dl2pa",
        MODEL,
        "dl2pa, static, etf, softmax, or the ablations of paper Table 8: "
        "psc_star (softmax + 1e-2 x uniformity of its class weights) and "
        "ours_star (DL2PA on the class weights of the softmax classifier "
        "in softmax_run)",
        flag="--method",
        choices=METHODS,
    )
    softmax_run: str | None = _field(
        None,
        MODEL,
        "ours_star only (required there): a finished softmax run "
        "directory (its model.keras) or a .keras file whose Dense layer "
        "'logits' has the class weights that are the prototypes",
        flag="--softmax-run",
    )
    backbone: str = _field(
        "resnet32_lt_cifar100",
        MODEL,
        "backbone preset (a key of keras_dlpa.models.BACKBONE_PRESETS)",
        flag="--backbone",
        choices=sorted(BACKBONE_PRESETS),
    )
    weights: str | None = _field(
        None,
        MODEL,
        "initial weights of a pretrained preset (or resnet50_imagenet): "
        "imagenet (downloaded by Keras), none, or a file (default: the "
        "preset's)",
        flag="--weights",
    )
    freeze_epochs: int = _field(
        0,
        MODEL,
        "epochs of frozen-trunk warm-up (trunk learning rate 0) for "
        "presets with a pretrained trunk",
        flag="--freeze-epochs",
        when=STREAMING,
    )
    trunk_lr_scale: float | None = _field(
        None,
        MODEL,
        "the trunk's learning rate as a fraction of the head's after the "
        "warm-up (discriminative learning rates; default: one optimizer "
        "for everything, unless freeze_epochs)",
        flag="--trunk-lr-scale",
        when=STREAMING,
        type=float,
    )
    depth: int | None = _field(
        None,
        MODEL,
        "CIFAR ResNet depth 6n+2 (default: the preset's)",
        flag="--depth",
        type=int,
    )
    width: int | None = _field(
        None,
        MODEL,
        "CIFAR ResNet first width (default: the preset's)",
        flag="--width",
        type=int,
    )
    dim: int | None = _field(
        None,
        MODEL,
        "feature size d (default: the backbone's own). For a long-tailed "
        "CIFAR backbone (no projection, d = 4 x width) another d adds "
        "Dense(d, no bias) + BatchNorm after the features",
        flag="--dim",
        type=int,
    )
    prototype_seed: int = _field(
        0, MODEL, "seed of the prototypes (cached on disk)"
    )
    class_scale: bool = _field(
        True, MODEL, "IPMLoss(class_scale=...) (long-tailed recipes)"
    )
    loss_scale: float = _field(
        1.0,
        MODEL,
        "IPMLoss(scale=...), a constant factor on the IPM loss (prototype "
        "methods only). 1.0: the batch mean of 1/2 (cos - 1)^2; 2 x batch "
        "size: the batch sum of (1 - cos)^2 of the reference code's "
        "balanced recipes (the same SGD update as learning rate x s with "
        "weight decay / s)",
        flag="--loss-scale",
    )
    # Optimisation.
    epochs: int = _field(200, OPTIMISATION, "epochs", flag="--epochs")
    batch_size: int = _field(
        128, OPTIMISATION, "global batch size", flag="--batch-size"
    )
    learning_rate: float = _field(
        0.1, OPTIMISATION, "peak learning rate", flag="--lr"
    )
    warmup_epochs: int = _field(
        5, OPTIMISATION, "linear warm-up epochs", flag="--warmup-epochs"
    )
    lr_decay: str = _field(
        "step", OPTIMISATION, "step (milestones, gamma) or cosine"
    )
    milestones: tuple = _field(
        (160, 180),
        OPTIMISATION,
        "epochs of the step decay (comma-separated)",
        flag="--milestones",
        type=int_list,
    )
    gamma: float = _field(0.1, OPTIMISATION, "step decay factor")
    momentum: float = _field(0.9, OPTIMISATION, "SGD momentum (no Nesterov)")
    weight_decay: float = _field(
        2e-4,
        OPTIMISATION,
        "coupled L2 (as PyTorch)",
        flag="--weight-decay",
    )
    mixup_alpha: float = _field(
        1.0, OPTIMISATION, "mixup alpha; 0 = off", flag="--mixup"
    )
    crop_padding: int = _field(4, OPTIMISATION, "random-crop padding")
    flip: bool = _field(True, OPTIMISATION, "random horizontal flip")
    reassign_per_epoch: int = _field(
        1, OPTIMISATION, "DL2PA assignments per epoch (tau')"
    )
    reassign_momentum: float = _field(
        0.9, OPTIMISATION, "DL2PA class-statistics momentum (alpha)"
    )
    eval_batch_size: int = _field(256, OPTIMISATION, "evaluation batch")
    # Run.
    out: str = _field(
        "runs/experiment",
        RUN,
        "run dir (default runs/<recipe>-...)",
        flag="--out",
    )
    resume: bool = _field(
        False, RUN, "continue from out/checkpoints", flag="--resume"
    )
    seed: int = _field(
        0,
        RUN,
        "global seed (weights, split, data order)",
        flag="--seed",
    )
    strategy: str = _field(
        "auto",
        RUN,
        "distribution, a name of keras_dlpa.training.distribution."
        "resolve_distribution: tf.distribute on TensorFlow, "
        "keras.distribution.DataParallel on JAX; multiworker: one process "
        "per host, each building only its rows of every global batch "
        "(docs/distributed.md)",
        flag="--strategy",
        choices=STRATEGIES,
    )
    verbose: int = _field(
        2,
        RUN,
        "fit verbosity; 1: progress bar per batch, 2: one line per epoch",
        flag="--verbose",
        choices=(0, 1, 2),
    )
    deterministic: bool = _field(
        False,
        RUN,
        "TF op determinism (bit-exact resume; JAX on CPU is deterministic)",
        flag="--deterministic",
    )
    jit_compile: bool | str = _field(
        "auto",
        RUN,
        "True, False or auto: auto compiles the train step with XLA on "
        "JAX (jax.jit; without it Keras runs the JAX step eagerly, op by "
        "op) and as a tf.function without XLA on TensorFlow; True / False "
        "force it (compile(jit_compile=...))",
    )
    report: bool = _field(
        True, RUN, "skip the plots drawn at the end", flag="--no-report"
    )
    checkpoint_every: int = _field(
        1,
        RUN,
        "epochs between crash-safe checkpoints (and after the last); a "
        "run killed in between resumes from the last one and ends the "
        "same (RunCheckpoint)",
        flag="--checkpoint-every",
    )
    precision: str = _field(
        "float32",
        RUN,
        "bfloat16: Keras mixed_bfloat16 policy (the prototype head, the "
        "loss and the class statistics stay float32)",
        flag="--precision",
        choices=PRECISIONS,
    )
    executor: str = _field(
        "auto",
        RUN,
        "input executor (auto: device on a JAX GPU/TPU for in-memory "
        "data, else tf.data on TensorFlow, grain elsewhere; device: the "
        "images live on the accelerator, JAX only, "
        "keras_dlpa.data.device_executor)",
        flag="--executor",
        choices=EXECUTORS,
    )
    deadline: float | None = _field(
        None,
        RUN,
        "Unix time: training stops after the last epoch expected to end "
        "before it (DeadlineCallback), saves, and evaluation.json says "
        "completed: false; resume later with --resume",
        flag="--deadline",
        type=float,
    )
    sync_batch_norm: bool = _field(
        False,
        RUN,
        "synchronised BatchNorm across replicas (tf.distribute)",
        flag="--sync-bn",
    )
    init_weights: str | None = _field(
        None,
        RUN,
        ".weights.h5 of the same model to start from instead of the "
        "random initialisation (model weights only; ignored when resuming "
        "from a checkpoint), e.g. to compare backends from the same start",
        flag="--init-weights",
    )

    def __post_init__(self):
        method = get_method(self.method)
        if method.from_softmax and not self.softmax_run:
            raise ValueError(
                f"method={self.method!r} needs `softmax_run` (--softmax-run):"
                " the run directory of a finished softmax run, or its "
                "`.keras` file. Received: softmax_run=None"
            )
        if self.softmax_run and not method.from_softmax:
            raise ValueError(
                "`softmax_run` is used by method='ours_star' only. "
                f"Received: softmax_run={self.softmax_run!r} with "
                f"method={self.method!r}"
            )
        if not (math.isfinite(self.loss_scale) and self.loss_scale > 0):
            raise ValueError(
                "`loss_scale` must be a finite number > 0. Received: "
                f"loss_scale={self.loss_scale!r}"
            )
        if self.loss_scale != 1.0 and not method.uses_prototypes:
            raise ValueError(
                "`loss_scale` multiplies the IPM loss of the prototype "
                f"methods; method={self.method!r} uses cross-entropy. "
                f"Received: loss_scale={self.loss_scale!r}"
            )
        if self.jit_compile not in (True, False, "auto"):
            raise ValueError(
                '`jit_compile` must be True, False or "auto". Received: '
                f"jit_compile={self.jit_compile!r}"
            )
        for name, allowed in (
            ("source", SOURCES),
            ("precision", PRECISIONS),
            ("executor", EXECUTORS),
        ):
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(
                    f"`{name}` must be one of {allowed}. Received: "
                    f"{name}={value!r}"
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
        for name in ("dim", "width", "depth", "train_per_class"):
            value = getattr(self, name)
            if value is not None and (int(value) != value or value < 1):
                raise ValueError(
                    f"`{name}` must be a positive integer or None. "
                    f"Received: {name}={value!r}"
                )
        # (name, lowest, highest, whether `lowest` itself is allowed)
        for name, low, high, closed in (
            ("learning_rate", 0.0, math.inf, False),
            ("gamma", 0.0, math.inf, False),
            ("weight_decay", 0.0, math.inf, True),
            ("momentum", 0.0, 1.0, True),
            ("reassign_momentum", 0.0, 1.0, True),
        ):
            value = float(getattr(self, name))
            above = value >= low if closed else value > low
            if not (math.isfinite(value) and above and value <= high):
                interval = f"{'[' if closed else '('}{low:g}, {high:g}]"
                raise ValueError(
                    f"`{name}` must be a finite number in {interval}. "
                    f"Received: {name}={value!r}"
                )
        for name in ("warmup_epochs", "reassign_per_epoch", "checkpoint_every"):
            value = getattr(self, name)
            least = 0 if name == "warmup_epochs" else 1
            if int(value) != value or value < least:
                raise ValueError(
                    f"`{name}` must be an integer >= {least}. Received: "
                    f"{name}={value!r}"
                )
        check_augment_settings(
            self.auto_augment,
            self.random_erasing,
            self.mixup_alpha,
            self.cutmix_alpha,
        )
        if self.source == "image_list":
            self.streaming = True
        if self.source == "numpy" and self.streaming:
            raise ValueError(
                "source='numpy' is in memory; `streaming` needs an image "
                "folder, a list file or a TFDS builder."
            )
        if self.freeze_epochs < 0 or self.freeze_epochs > self.epochs:
            raise ValueError(
                "`freeze_epochs` must be in [0, epochs]. Received: "
                f"freeze_epochs={self.freeze_epochs}, epochs={self.epochs}"
            )
        if self.trunk_lr_scale is not None and not self.trunk_lr_scale > 0:
            raise ValueError(
                "`trunk_lr_scale` must be > 0 or None. Received: "
                f"trunk_lr_scale={self.trunk_lr_scale}"
            )
        self.milestones = tuple(int(m) for m in self.milestones)


def _describe(cls) -> str:
    """`cls.__doc__` and a section per group: each field's name, default,
    flag and help, from its metadata."""
    lines = [cls.__doc__.rstrip(), ""]
    for group in GROUPS:
        lines.append(f"    {group.capitalize()}:")
        for field in dataclasses.fields(cls):
            meta = field.metadata
            if meta["group"] != group:
                continue
            if meta["flag"] and isinstance(field.default, bool):
                flag = f"; `{meta['flag']}` sets {not field.default}"
            elif meta["flag"]:
                flag = f"; `{meta['flag']}`"
            else:
                flag = ""
            text = f"{field.name} (default `{field.default!r}`{flag}): "
            lines += textwrap.wrap(
                text + meta["help"] + ".",
                width=79,
                initial_indent=" " * 8,
                subsequent_indent=" " * 12,
            )
    return "\n".join(lines) + "\n"


ExperimentConfig.__doc__ = _describe(ExperimentConfig)
