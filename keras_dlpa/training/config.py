"""`ExperimentConfig`: everything one training run needs.

The config is nested: `data` (`DataConfig`), `model` (`ModelConfig`),
`optimisation` (`OptimisationConfig`) and `run` (`RunConfig`), each
checking its own fields; `ExperimentConfig` checks the few settings that
span sections. Field names are unique across sections, so
`ExperimentConfig.from_dict` reads the nested form (`config.json`) and the
flat one (`{"epochs": 3}`: the recipes, the command line, run directories
of earlier versions), and `config.replace(epochs=3)` finds the section.
"""

from __future__ import annotations

import dataclasses
import textwrap

from keras_dlpa.checks import check_choice
from keras_dlpa.checks import check_int
from keras_dlpa.checks import check_number
from keras_dlpa.data.executor import EXECUTORS
from keras_dlpa.data.stream_plan import AUTO_AUGMENTS
from keras_dlpa.data.stream_plan import check_augment_settings
from keras_dlpa.methods import METHODS
from keras_dlpa.methods import get_method
from keras_dlpa.models import BACKBONE_PRESETS
from keras_dlpa.training.distribution import STRATEGIES

SOURCES = ("tfds", "image_dir", "image_list", "numpy")
PRECISIONS = ("float32", "bfloat16")

# `metadata["when"]`: the recipes that get a field's flag (None: all).
STREAMING = "streaming"  # recipes with streamed input
IMAGE_LIST = "image_list"  # recipes reading list files
TFDS_IN_MEMORY = "tfds_in_memory"  # in-memory TFDS recipes


def int_list(text: str) -> tuple:
    """`"160,180"` -> `(160, 180)` (the `--milestones` flag)."""
    return tuple(int(v) for v in text.split(",") if v.strip())


def _field(default, help: str, flag: str | None = None, **cli):
    """A field with its metadata: the one description of the field, from
    which the command line's flags and the class docstrings are built.

    Args:
        default: the field's default.
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
    metadata = {"help": help, "flag": flag, **cli}
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass
class DataConfig:
    """The data of a run: source, splits and streamed augmentation."""

    dataset: str = _field(
        "cifar100",
        "name recorded in the run; with source tfds, the TFDS builder "
        "(e.g. svhn_cropped, stl10)",
        flag="--dataset",
        when=TFDS_IN_MEMORY,
    )
    source: str = _field(
        "tfds",
        "tfds; image_dir (class folders or a .tar.gz of them: image_dir); "
        "image_list ('path label' lines relative to image_root: "
        "train_list, optional val_list and test_list); or numpy (.npz "
        "with images, labels and optional class_names, test_images, "
        "test_labels: numpy_path). Set by --image-dir, --npz, --tfds",
    )
    data_dir: str | None = _field(None, "TFDS data_dir", flag="--data-dir")
    manual_dir: str | None = _field(
        None, "TFDS manual_dir (archives)", flag="--manual-dir"
    )
    download: bool = _field(True, "TFDS: never download", flag="--no-download")
    test_split: str | None = _field(
        "test", "TFDS split used as the test split (None: none)"
    )
    image_dir: str | None = _field(
        None,
        "class-folder directory or .tar.gz (instead of TFDS)",
        flag="--image-dir",
    )
    image_root: str | None = _field(
        None,
        "image root of the list files",
        flag="--root",
        when=IMAGE_LIST,
    )
    train_list: str | None = _field(
        None,
        "list file or class folder",
        flag="--train-list",
        when=IMAGE_LIST,
    )
    val_list: str | None = _field(
        None,
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
        "test list file",
        flag="--test-list",
        when=IMAGE_LIST,
        aliases=(("--test-dir", STREAMING, "test class folder"),),
    )
    numpy_path: str | None = _field(
        None,
        ".npz of images and labels (instead of TFDS); a prepared one "
        "(benchmarks/gpu/prepare_data.py) holds the run's splits",
        flag="--npz",
    )
    image_size: int = _field(
        224,
        "side of the square streamed training and evaluation images "
        "(random-resized crop for training; for evaluation the shorter "
        "side is resized to image_size / 0.875, then centre-cropped)",
        flag="--image-size",
        when=STREAMING,
    )
    streaming: bool = _field(
        False,
        "keep only paths and labels in memory and decode each batch in "
        "worker processes (keras_dlpa.data.streaming), with the ImageNet "
        "augmentation of StreamAugmentation. Sources image_dir, "
        "image_list (always streamed) and tfds (ArrayRecord "
        "tfds.data_source). Set by the recipe",
    )
    class_subset: str | None = _field(
        None,
        "keep the first N classes in label order (200: ImageNet-200) or "
        "the classes named in a file (one per line)",
        flag="--classes",
        when=STREAMING,
    )
    auto_augment: str = _field(
        "none",
        "trivial (TrivialAugment wide) or none (streaming only)",
        flag="--auto-augment",
        when=STREAMING,
        choices=AUTO_AUGMENTS,
    )
    random_erasing: float = _field(
        0.0,
        "random-erasing probability (streaming only)",
        flag="--random-erasing",
        when=STREAMING,
    )
    cutmix_alpha: float = _field(
        0.0,
        "cutmix Beta(alpha, alpha); 0 = off. With mixup too, each batch "
        "picks one (streaming only)",
        flag="--cutmix",
        when=STREAMING,
    )
    data_workers: int | None = _field(
        None,
        "decode processes of the streaming executor (default: one per "
        "core, at most 8; 0: in the training process)",
        flag="--workers",
        when=STREAMING,
        type=int,
    )
    skip_bad_images: bool = _field(
        False,
        "leave out unreadable or unsupported files of an image folder or "
        "list (listed in a warning and in the data's skipped_files; "
        "streamed sources are decoded once up front) instead of stopping "
        "with an error naming them. TFDS sources ignore it",
        flag="--skip-bad-images",
    )
    train_per_class: int | None = _field(
        None,
        "keep at most this many images per class of the (balanced) "
        "training split before anything else, seeded (quick runs)",
        flag="--train-per-class",
        type=int,
    )
    val_fraction: float = _field(
        0.1,
        "fraction of each class held out for validation, carved from the "
        "training data before the long-tailed profile",
        flag="--val-fraction",
    )
    imbalance: float | None = _field(
        0.01,
        "n_min / n_max in (0, 1] of the long-tailed profile applied to "
        "the training part (None: keep it as it is)",
        flag="--imbalance",
        type=float,
    )
    allow_data_drop: bool = _field(
        False,
        "train even when the long-tailed profile, headed by the "
        "smallest class, drops most of the images a profile headed by "
        "the largest class would keep (splits_with_report)",
        flag="--allow-data-drop",
    )

    def __post_init__(self):
        check_choice("source", self.source, SOURCES)
        if self.imbalance is not None:
            check_number("imbalance", self.imbalance, 0.0, 1.0)
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(
                "`val_fraction` must be in (0, 1). Received: "
                f"val_fraction={self.val_fraction}"
            )
        check_int("train_per_class", self.train_per_class, allow_none=True)
        if self.source == "image_list":
            self.streaming = True
        if self.source == "numpy" and self.streaming:
            raise ValueError(
                "source='numpy' is in memory; `streaming` needs an image "
                "folder, a list file or a TFDS builder."
            )


@dataclasses.dataclass
class ModelConfig:
    """The model of a run: backbone, method (head and loss) and prototypes."""

    method: str = _field(
        "dl2pa",
        "dl2pa, static, etf, softmax, or the ablations of paper Table 8: "
        "psc_star (softmax + 1e-2 x uniformity of its class weights) and "
        "ours_star (DL2PA on the class weights of the softmax classifier "
        "in softmax_run)",
        flag="--method",
        choices=METHODS,
    )
    softmax_run: str | None = _field(
        None,
        "ours_star only (required there): a finished softmax run "
        "directory (its model.keras) or a .keras file whose Dense layer "
        "'logits' has the class weights that are the prototypes",
        flag="--softmax-run",
    )
    backbone: str = _field(
        "resnet32_lt_cifar100",
        "backbone preset (a key of keras_dlpa.models.BACKBONE_PRESETS)",
        flag="--backbone",
        choices=sorted(BACKBONE_PRESETS),
    )
    weights: str | None = _field(
        None,
        "initial weights of a pretrained preset (or resnet50_imagenet): "
        "imagenet (downloaded by Keras), none, or a file (default: the "
        "preset's)",
        flag="--weights",
    )
    freeze_epochs: int = _field(
        0,
        "epochs of frozen-trunk warm-up (trunk learning rate 0) for "
        "presets with a pretrained trunk",
        flag="--freeze-epochs",
        when=STREAMING,
    )
    trunk_lr_scale: float | None = _field(
        None,
        "the trunk's learning rate as a fraction of the head's after the "
        "warm-up (discriminative learning rates; default: one optimizer "
        "for everything, unless freeze_epochs)",
        flag="--trunk-lr-scale",
        when=STREAMING,
        type=float,
    )
    depth: int | None = _field(
        None,
        "CIFAR ResNet depth 6n+2 (default: the preset's)",
        flag="--depth",
        type=int,
    )
    width: int | None = _field(
        None,
        "CIFAR ResNet first width (default: the preset's)",
        flag="--width",
        type=int,
    )
    dim: int | None = _field(
        None,
        "feature size d (default: the backbone's own). For a long-tailed "
        "CIFAR backbone (no projection, d = 4 x width) another d adds "
        "Dense(d, no bias) + BatchNorm after the features",
        flag="--dim",
        type=int,
    )
    prototype_seed: int = _field(0, "seed of the prototypes (cached on disk)")
    class_scale: bool = _field(
        True, "IPMLoss(class_scale=...) (long-tailed recipes)"
    )
    loss_scale: float = _field(
        1.0,
        "IPMLoss(scale=...), a constant factor on the IPM loss (prototype "
        "methods only). 1.0: the batch mean of 1/2 (cos - 1)^2; 2 x batch "
        "size: the batch sum of (1 - cos)^2 of the reference code's "
        "balanced recipes (the same SGD update as learning rate x s with "
        "weight decay / s)",
        flag="--loss-scale",
    )

    def __post_init__(self):
        method = get_method(self.method)
        if method.from_softmax != bool(self.softmax_run):
            raise ValueError(
                "`softmax_run` (--softmax-run), the run directory or "
                "`.keras` file of a finished softmax run, is needed by "
                "method='ours_star' and used by no other. Received: "
                f"softmax_run={self.softmax_run!r} with "
                f"method={self.method!r}"
            )
        check_number("loss_scale", self.loss_scale)
        if self.loss_scale != 1.0 and not method.uses_prototypes:
            raise ValueError(
                "`loss_scale` multiplies the IPM loss of the prototype "
                f"methods; method={self.method!r} uses cross-entropy. "
                f"Received: loss_scale={self.loss_scale!r}"
            )
        check_choice("backbone", self.backbone, sorted(BACKBONE_PRESETS))
        for name in ("dim", "width", "depth"):
            check_int(name, getattr(self, name), allow_none=True)
        check_int("freeze_epochs", self.freeze_epochs, minimum=0)
        if self.trunk_lr_scale is not None:
            check_number("trunk_lr_scale", self.trunk_lr_scale)


@dataclasses.dataclass
class OptimisationConfig:
    """How a run trains: schedule, SGD, mixup, DL2PA reassignment."""

    epochs: int = _field(200, "epochs", flag="--epochs")
    batch_size: int = _field(128, "global batch size", flag="--batch-size")
    learning_rate: float = _field(0.1, "peak learning rate", flag="--lr")
    warmup_epochs: int = _field(
        5, "linear warm-up epochs", flag="--warmup-epochs"
    )
    lr_decay: str = _field("step", "step (milestones, gamma) or cosine")
    milestones: tuple = _field(
        (160, 180),
        "epochs of the step decay (comma-separated)",
        flag="--milestones",
        type=int_list,
    )
    gamma: float = _field(0.1, "step decay factor")
    momentum: float = _field(0.9, "SGD momentum (no Nesterov)")
    weight_decay: float = _field(
        2e-4,
        "coupled L2 (as PyTorch)",
        flag="--weight-decay",
    )
    mixup_alpha: float = _field(1.0, "mixup alpha; 0 = off", flag="--mixup")
    crop_padding: int = _field(4, "random-crop padding")
    flip: bool = _field(True, "random horizontal flip")
    reassign_per_epoch: int = _field(1, "DL2PA assignments per epoch (tau')")
    reassign_momentum: float = _field(
        0.9, "DL2PA class-statistics momentum (alpha)"
    )
    eval_batch_size: int = _field(256, "evaluation batch")

    def __post_init__(self):
        for name in ("epochs", "batch_size", "eval_batch_size"):
            check_int(name, getattr(self, name))
        check_int("warmup_epochs", self.warmup_epochs, minimum=0)
        check_int("reassign_per_epoch", self.reassign_per_epoch)
        check_choice("lr_decay", self.lr_decay, ("step", "cosine"))
        check_number("learning_rate", self.learning_rate)
        check_number("gamma", self.gamma)
        check_number("weight_decay", self.weight_decay, closed=True)
        for name in ("momentum", "reassign_momentum"):
            check_number(name, getattr(self, name), 0.0, 1.0, closed=True)
        self.milestones = tuple(int(m) for m in self.milestones)


@dataclasses.dataclass
class RunConfig:
    """Where and how a run runs: run directory, seed, devices, logging."""

    out: str = _field(
        "runs/experiment",
        "run dir (default runs/<recipe>-...)",
        flag="--out",
    )
    resume: bool = _field(
        False, "continue from out/checkpoints", flag="--resume"
    )
    seed: int = _field(
        0,
        "global seed (weights, split, data order)",
        flag="--seed",
    )
    strategy: str = _field(
        "auto",
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
        "fit verbosity; 1: progress bar per batch, 2: one line per epoch",
        flag="--verbose",
        choices=(0, 1, 2),
    )
    deterministic: bool = _field(
        False,
        "TF op determinism (bit-exact resume; JAX on CPU is deterministic)",
        flag="--deterministic",
    )
    jit_compile: bool | str = _field(
        "auto",
        "True, False or auto: auto compiles the train step with XLA on "
        "JAX (jax.jit; without it Keras runs the JAX step eagerly, op by "
        "op) and as a tf.function without XLA on TensorFlow; True / False "
        "force it (compile(jit_compile=...))",
    )
    report: bool = _field(
        True, "skip the plots drawn at the end", flag="--no-report"
    )
    checkpoint_every: int = _field(
        1,
        "epochs between crash-safe checkpoints (and after the last); a "
        "run killed in between resumes from the last one and ends the "
        "same (RunCheckpoint)",
        flag="--checkpoint-every",
    )
    precision: str = _field(
        "float32",
        "bfloat16: Keras mixed_bfloat16 policy (the prototype head, the "
        "loss and the class statistics stay float32)",
        flag="--precision",
        choices=PRECISIONS,
    )
    executor: str = _field(
        "auto",
        "input executor (auto: device on a JAX GPU/TPU for in-memory "
        "data, else tf.data on TensorFlow, grain elsewhere; device: the "
        "images live on the accelerator, JAX only, "
        "keras_dlpa.data.device_executor)",
        flag="--executor",
        choices=EXECUTORS,
    )
    deadline: float | None = _field(
        None,
        "Unix time: training stops after the last epoch expected to end "
        "before it (DeadlineCallback), saves, and evaluation.json says "
        "completed: false; resume later with --resume",
        flag="--deadline",
        type=float,
    )
    sync_batch_norm: bool = _field(
        False,
        "synchronised BatchNorm across replicas (tf.distribute)",
        flag="--sync-bn",
    )
    init_weights: str | None = _field(
        None,
        ".weights.h5 of the same model to start from instead of the "
        "random initialisation (model weights only; ignored when resuming "
        "from a checkpoint), e.g. to compare backends from the same start",
        flag="--init-weights",
    )

    def __post_init__(self):
        check_choice("precision", self.precision, PRECISIONS)
        check_choice("executor", self.executor, EXECUTORS)
        check_choice("jit_compile", self.jit_compile, (True, False, "auto"))
        check_int("checkpoint_every", self.checkpoint_every)


# The sections of `ExperimentConfig` (and of `--help`), by name.
SECTIONS = {
    "data": DataConfig,
    "model": ModelConfig,
    "optimisation": OptimisationConfig,
    "run": RunConfig,
}


def config_fields():
    """`(section name, field)` of every field of every section."""
    for name, section in SECTIONS.items():
        for field in dataclasses.fields(section):
            yield name, field


def _section_of(name: str) -> str:
    for section, field in config_fields():
        if field.name == name:
            return section
    raise ValueError(
        f"Unknown config field {name!r}: expected a section {tuple(SECTIONS)}"
        " or a field of one (see `help(ExperimentConfig)`)."
    )


def flat_config(stored: dict) -> dict:
    """A `config.json` dict as one flat dict: its sections' fields beside
    the resolved extras (`num_classes`, `class_names`, ...), `settings`
    flat too. The flat files of earlier versions come back as they are."""
    flat = {k: v for k, v in stored.items() if k not in SECTIONS}
    for name in SECTIONS:
        flat.update(stored.get(name) or {})
    if isinstance(flat.get("settings"), dict):
        flat["settings"] = flat_config(flat["settings"])
    return flat


@dataclasses.dataclass
class ExperimentConfig:
    """Everything a run needs; written (resolved) to `RUN_DIR/config.json`.

    Four sections, each field described once in its metadata (`_field`):
    the flags of `keras-dlpa train` and the lists below are generated from
    it. Build one from field names with `ExperimentConfig.from_dict`.
    """

    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    optimisation: OptimisationConfig = dataclasses.field(
        default_factory=OptimisationConfig
    )
    run: RunConfig = dataclasses.field(default_factory=RunConfig)

    def __post_init__(self):
        # The augmentation spans two sections (mixup is optimisation's).
        data = self.data
        check_augment_settings(
            data.auto_augment,
            data.random_erasing,
            self.optimisation.mixup_alpha,
            data.cutmix_alpha,
        )
        freeze, epochs = self.model.freeze_epochs, self.optimisation.epochs
        if freeze > epochs:
            raise ValueError(
                "`freeze_epochs` must be in [0, epochs]. Received: "
                f"freeze_epochs={freeze}, epochs={epochs}"
            )

    @classmethod
    def from_dict(cls, values: dict) -> ExperimentConfig:
        """The config of field names, flat (`{"epochs": 3}`), nested by
        section (`{"optimisation": {"epochs": 3}}`) or both; the others
        keep their defaults. A `ValueError` names an unknown one."""
        sections = {name: {} for name in SECTIONS}
        for key, value in values.items():
            if key not in SECTIONS:
                sections[_section_of(key)][key] = value
                continue
            for name, item in value.items():
                if _section_of(name) != key:
                    raise ValueError(
                        f"{name!r} is a field of `{_section_of(name)}`, "
                        f"not of `{key}`."
                    )
                sections[key][name] = item
        return cls(**{k: SECTIONS[k](**v) for k, v in sections.items()})

    def flat(self) -> dict:
        """Every field by name, in one flat dict."""
        return flat_config(dataclasses.asdict(self))

    def replace(self, **fields) -> ExperimentConfig:
        """A new config with `fields` (flat names) replaced."""
        return ExperimentConfig.from_dict(
            {**dataclasses.asdict(self), **fields}
        )


def _document() -> None:
    """Appends a line per field (name, default, flag, help) to the
    docstring of its section and to `ExperimentConfig`'s."""
    ExperimentConfig.__doc__ = ExperimentConfig.__doc__.rstrip() + "\n"
    for name, section in SECTIONS.items():
        lines = []
        for field in dataclasses.fields(section):
            meta, flag = field.metadata, field.metadata["flag"]
            if flag and isinstance(field.default, bool):
                flag = f"; `{flag}` sets {not field.default}"
            elif flag:
                flag = f"; `{flag}`"
            text = f"{field.name} (default `{field.default!r}`{flag or ''}): "
            lines += textwrap.wrap(
                text + meta["help"] + ".",
                width=79,
                initial_indent=" " * 8,
                subsequent_indent=" " * 12,
            )
        text = "\n".join(lines) + "\n"
        section.__doc__ += "\n\n    Fields:\n" + text
        ExperimentConfig.__doc__ += f"\n    {name} (`{section.__name__}`):\n"
        ExperimentConfig.__doc__ += text


_document()
