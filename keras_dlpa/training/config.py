"""`ExperimentConfig`: everything one training run needs."""

from __future__ import annotations

import dataclasses
import math

from keras_dlpa.data.executor import EXECUTORS
from keras_dlpa.methods import get_method
from keras_dlpa.models import BACKBONE_PRESETS

SOURCES = ("tfds", "image_dir", "image_list", "numpy")
AUTO_AUGMENTS = ("none", "trivial")
PRECISIONS = ("float32", "bfloat16")


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
        allow_data_drop: train even when the profile, headed by the
            smallest class, drops most of the images a profile headed by
            the largest class would keep (`splits_with_report`).
        image_size: side of the square training and evaluation images of
            streamed sources (random-resized crop for training; shorter
            side resized to `image_size / 0.875`, then centre crop, for
            evaluation).
        streaming: keep only paths and labels in memory and decode each
            batch in worker processes (`keras_dlpa.data.streaming`), with
            the ImageNet augmentation of `StreamAugmentation`. Sources
            `"image_dir"`, `"image_list"` (always streamed) and `"tfds"`
            (ArrayRecord `tfds.data_source`).
        class_subset: keep a subset of the classes (ImageNet-200): an
            integer as text (`"200"`: the first 200 classes in label
            order) or a file with one class name per line.
        auto_augment: `"trivial"` (TrivialAugment wide) or `"none"`
            (streaming only).
        random_erasing: random-erasing probability (streaming only).
        cutmix_alpha: cutmix `Beta(alpha, alpha)`, 0 = off; with
            `mixup_alpha` too, each batch picks one (streaming only).
        data_workers: decode processes of the streaming executor
            (`None`: one per core, at most 8; 0: in the training process).
        skip_bad_images: leave out unreadable or unsupported files of an
            image folder or list (logged, in `skipped_files` of the data;
            streamed sources are decoded once up front) instead of raising
            an error that lists them. TFDS sources ignore it.
    Model:
        method: `"dl2pa"`, `"static"`, `"etf"`, `"softmax"`, or the Table 8
            ablations `"psc_star"` (softmax + `1e-2 x` uniformity of its
            class weights) and `"ours_star"` (DL2PA on the class weights of
            the softmax classifier in `softmax_run`).
        softmax_run: `"ours_star"` only (required there): a finished
            softmax run directory (its `model.keras`) or a `.keras` file
            whose `Dense` layer `"logits"` gives the prototypes.
        backbone: a key of `keras_dlpa.models.BACKBONE_PRESETS`.
        weights: initial weights of a pretrained preset (or
            `resnet50_imagenet`): `"imagenet"` (downloaded by Keras),
            `"none"` or a file path; `None`: the preset's default.
        freeze_epochs: epochs of frozen-trunk warm-up (trunk learning rate
            0) for presets with a pretrained `"trunk"`.
        trunk_lr_scale: the trunk's learning rate as a fraction of the
            head's after the warm-up (discriminative learning rates);
            `None`: one optimizer for everything (unless freeze_epochs).
        depth, width: CIFAR ResNet overrides (`None`: the preset's).
        dim: feature size `d`. `None`: the backbone's own. For a long-tailed
            CIFAR backbone (no projection, `d = 4 * width`) another `d` adds
            `Dense(d, no bias)` + BatchNorm after the features.
        prototype_seed: seed of the prototypes (cached on disk).
        class_scale: `IPMLoss(class_scale=...)` (long-tailed recipes).
        loss_scale: `IPMLoss(scale=...)`, a constant factor on the IPM loss
            (prototype methods only). 1.0: the batch mean of `1/2 (cos -
            1)^2`; `2 * batch_size`: the batch sum of `(1 - cos)^2` of the
            reference code's balanced recipes (the same SGD update as
            `learning_rate * s` with `weight_decay / s`).
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
        `keras_dlpa.training.distribution.resolve_distribution` name
        (tf.distribute on TensorFlow, `keras.distribution.DataParallel` on
        JAX; `"multiworker"`: one process per host, each building only
        its rows of every global batch, see `docs/distributed.md`).
        verbose: `fit` verbosity (1 progress bar, 2 one line per epoch).
        deterministic: TF op determinism (bit-exact resume; JAX on CPU
        is deterministic). checkpoint_every: write the crash-safe
        checkpoint every this many epochs (and after the last one); a run
        killed in between resumes from the last one and ends the same
        (`RunCheckpoint`). jit_compile: `"auto"` (default) compiles the
        train step with XLA on JAX (`jax.jit`; without it Keras runs the
        JAX step eagerly, op by op) and as a `tf.function` without XLA on
        TensorFlow; `True`/`False` force it (`compile(jit_compile=...)`).
        report:
        draw the plots at the end. precision: `"float32"` or
        `"bfloat16"` (Keras `mixed_bfloat16` policy; the prototype head,
        the loss and the class statistics stay float32). executor: the
        plan executor, `"auto"` (`"device"` on a JAX accelerator for
        in-memory data, else tf.data on TensorFlow, grain elsewhere),
        `"tf"`, `"grain"` or `"device"` (JAX: the images live on the
        accelerator, `keras_dlpa.data.device_executor`). deadline: Unix
        time; training stops after the last epoch expected to end before
        it (`DeadlineCallback`), saves, and `evaluation.json` says
        `completed: false`; resume later with `resume=True`.
        sync_batch_norm: synchronised BatchNorm across replicas
        (tf.distribute). init_weights: a `.weights.h5` of the same model
        to start from instead of the random initialisation (model
        weights only; ignored when resuming from a checkpoint), e.g. to
        compare backends from the same start.
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
    streaming: bool = False
    class_subset: str | None = None
    auto_augment: str = "none"
    random_erasing: float = 0.0
    cutmix_alpha: float = 0.0
    data_workers: int | None = None
    skip_bad_images: bool = False
    train_per_class: int | None = None
    val_fraction: float = 0.1
    imbalance: float | None = 0.01
    allow_data_drop: bool = False
    method: str = "dl2pa"
    softmax_run: str | None = None
    backbone: str = "resnet32_lt_cifar100"
    weights: str | None = None
    freeze_epochs: int = 0
    trunk_lr_scale: float | None = None
    depth: int | None = None
    width: int | None = None
    dim: int | None = None
    prototype_seed: int = 0
    class_scale: bool = True
    loss_scale: float = 1.0
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
    jit_compile: bool | str = "auto"
    report: bool = True
    checkpoint_every: int = 1
    precision: str = "float32"
    executor: str = "auto"
    deadline: float | None = None
    sync_batch_norm: bool = False
    init_weights: str | None = None

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
        if self.mixup_alpha < 0:
            raise ValueError(
                f"`mixup_alpha` must be >= 0. Received: {self.mixup_alpha}"
            )
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"`precision` must be one of {PRECISIONS}. Received: "
                f"precision={self.precision!r}"
            )
        if self.executor not in EXECUTORS:
            raise ValueError(
                f"`executor` must be one of {EXECUTORS}. Received: "
                f"executor={self.executor!r}"
            )
        if self.auto_augment not in AUTO_AUGMENTS:
            raise ValueError(
                f"`auto_augment` must be one of {AUTO_AUGMENTS}. Received: "
                f"auto_augment={self.auto_augment!r}"
            )
        if not 0.0 <= self.random_erasing <= 1.0:
            raise ValueError(
                "`random_erasing` must be a probability in [0, 1]. "
                f"Received: random_erasing={self.random_erasing!r}"
            )
        if self.cutmix_alpha < 0:
            raise ValueError(
                f"`cutmix_alpha` must be >= 0. Received: {self.cutmix_alpha}"
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
