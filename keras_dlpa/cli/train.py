"""`keras-dlpa train RECIPE [flags]`: the paper's recipes from the console.

Every recipe script in `recipes/` is `main(argv, recipe=NAME)` of this
module: flags are parsed into a `keras_dlpa.experiment.ExperimentConfig`
(starting from the recipe's defaults in `RECIPES`) and the runner is called.
"""

from __future__ import annotations

import argparse
import sys
import time

from keras_dlpa.methods import METHODS
from keras_dlpa.models import BACKBONE_PRESETS
from keras_dlpa.training.recipes import RECIPES
from keras_dlpa_cli.errors import UsageError
from keras_dlpa_cli.errors import run_command


def _int_list(text: str) -> tuple:
    return tuple(int(v) for v in text.split(",") if v.strip())


def build_parser(recipe: str, parser=None) -> argparse.ArgumentParser:
    """The flags of `recipe` (defaults from `RECIPES[recipe]`)."""
    spec = RECIPES[recipe]
    d = spec["config"]
    if parser is None:
        parser = argparse.ArgumentParser(
            prog=f"recipes/{recipe}.py", description=spec["description"]
        )
    add = parser.add_argument
    add(
        "--method",
        default="dl2pa",
        choices=METHODS,
        help="psc_star / ours_star: the ablations of paper Table 8",
    )
    add(
        "--softmax-run",
        default=None,
        help="ours_star: finished softmax run dir (or its .keras file) "
        "whose class weights are the prototypes",
    )
    add("--dim", type=int, default=d.get("dim"), help="feature size d")
    add("--width", type=int, default=None, help="CIFAR ResNet first width")
    add("--depth", type=int, default=None, help="CIFAR ResNet depth 6n+2")
    add(
        "--imbalance",
        type=float,
        default=d.get("imbalance"),
        help="n_min / n_max in (0, 1]",
    )
    for flag, field, kind, note in (
        ("--epochs", "epochs", int, ""),
        ("--batch-size", "batch_size", int, " (global)"),
        ("--lr", "learning_rate", float, " (peak)"),
        ("--warmup-epochs", "warmup_epochs", int, ""),
        ("--milestones", "milestones", _int_list, " (comma-separated)"),
        ("--weight-decay", "weight_decay", float, " (coupled L2)"),
        ("--mixup", "mixup_alpha", float, " (alpha; 0 = off)"),
        (
            "--loss-scale",
            "loss_scale",
            float,
            " (factor on the IPM loss; 2 x batch = the reference's "
            "batch sum of (1 - cos)^2)",
        ),
    ):
        default = d.get(field, 1.0)
        if isinstance(default, tuple):
            default = ",".join(str(v) for v in default)
        add(flag, type=kind, default=None, help=f"default {default}{note}")
    add("--val-fraction", type=float, default=0.1)
    add("--train-per-class", type=int, default=None)
    add(
        "--skip-bad-images",
        action="store_true",
        help="leave out unreadable or unsupported image files (listed in a "
        "warning) instead of stopping with an error naming them",
    )
    add(
        "--allow-data-drop",
        action="store_true",
        help="train even when the long-tailed profile, headed by the "
        "smallest class, drops most of the images",
    )
    if d["source"] == "tfds" and not d.get("streaming"):
        add(
            "--dataset",
            default=None,
            help=f"TFDS builder (default {d['dataset']}; e.g. "
            "svhn_cropped, stl10)",
        )
    add("--data-dir", default=None, help="TFDS data_dir")
    add("--manual-dir", default=None, help="TFDS manual_dir (archives)")
    add("--no-download", action="store_true", help="TFDS: never download")
    add(
        "--image-dir",
        default=None,
        help="class-folder directory or .tar.gz (instead of TFDS)",
    )
    add(
        "--npz",
        default=None,
        help=".npz of images and labels (instead of TFDS); a prepared one "
        "(benchmarks/gpu/prepare_data.py) holds the run's splits",
    )
    if d["source"] == "image_list":
        add("--root", default=None, help="image root of the list files")
        add("--train-list", default=None, help="list file or class folder")
        add("--val-list", default=None)
        add("--test-list", default=None)
    if d.get("streaming"):
        add(
            "--val-dir",
            default=None,
            help="validation class folder (instead of a split of the train)",
        )
        add("--test-dir", default=None, help="test class folder")
        add(
            "--tfds",
            action="store_true",
            help=f"read the TFDS builder {d['dataset']!r} (ArrayRecord; "
            "ImageNet tars in --manual-dir)",
        )
        add(
            "--image-size",
            type=int,
            default=None,
            help=f"default {d['image_size']}",
        )
        add(
            "--classes",
            default=None,
            help="keep the first N classes (200: ImageNet-200) or the "
            "classes named in a file (one per line)",
        )
        add(
            "--auto-augment",
            default=None,
            choices=("none", "trivial"),
            help=f"default {d.get('auto_augment', 'none')}",
        )
        add("--random-erasing", type=float, default=None)
        add("--cutmix", type=float, default=None, help="alpha; 0 = off")
        add(
            "--workers",
            type=int,
            default=None,
            help="decode processes (default: one per core, at most 8)",
        )
        add(
            "--freeze-epochs",
            type=int,
            default=None,
            help="frozen-trunk warm-up epochs (pretrained backbones)",
        )
        add(
            "--trunk-lr-scale",
            type=float,
            default=None,
            help="trunk rate / head rate after the warm-up",
        )
    add(
        "--backbone",
        default=None,
        choices=sorted(BACKBONE_PRESETS),
        help=f"backbone preset (default {d.get('backbone')})",
    )
    add(
        "--weights",
        default=None,
        help="pretrained backbones: imagenet (downloads), none, or a file",
    )
    add("--out", default=None, help="run dir (default runs/<recipe>-...)")
    add("--seed", type=int, default=0)
    add("--quick", action="store_true", help="tiny smoke run (minutes)")
    add("--resume", action="store_true", help="continue from checkpoints")
    add(
        "--strategy",
        default="auto",
        choices=("auto", "default", "mirrored", "multiworker"),
    )
    add(
        "--verbose",
        type=int,
        default=None,
        choices=(0, 1, 2),
        help="1: progress bar per batch, 2: one line per epoch",
    )
    add("--deterministic", action="store_true", help="TF op determinism")
    add("--no-report", action="store_true", help="skip the plots")
    add(
        "--checkpoint-every",
        type=int,
        default=1,
        help="epochs between crash-safe checkpoints (and after the last)",
    )
    add(
        "--precision",
        default="float32",
        choices=("float32", "bfloat16"),
        help="bfloat16: Keras mixed_bfloat16 (head, loss, stats float32)",
    )
    add(
        "--executor",
        default="auto",
        choices=("auto", "tf", "grain", "device"),
        help="input executor (auto: device on a JAX GPU/TPU for in-memory "
        "data, else tf.data on TensorFlow, grain elsewhere; device: the "
        "images live on the accelerator, JAX only)",
    )
    add(
        "--deadline",
        type=float,
        default=None,
        help="Unix time: stop after the last epoch that ends before it",
    )
    add(
        "--time-limit",
        type=float,
        default=None,
        help="seconds from now (a deadline); resume later with --resume",
    )
    add(
        "--init-weights",
        default=None,
        help=".weights.h5 of the same model to start from",
    )
    add(
        "--sync-bn",
        action="store_true",
        help="synchronised BatchNorm across replicas (tf.distribute)",
    )
    return parser


def _deadline(args) -> float | None:
    if args.deadline is not None and args.time_limit is not None:
        raise ValueError("Pass --deadline or --time-limit, not both.")
    if args.time_limit is not None:
        if args.time_limit <= 0:
            raise ValueError(
                f"--time-limit must be > 0 seconds. Received: {args.time_limit}"
            )
        return time.time() + args.time_limit
    return args.deadline


def config_from_args(recipe: str, args):
    """`ExperimentConfig` of `recipe` with the parsed flags applied."""
    from keras_dlpa.training import ExperimentConfig

    spec = RECIPES[recipe]
    values = dict(spec["config"])
    if args.quick:
        values.update(spec["quick"])
    values.update(
        method=args.method,
        softmax_run=args.softmax_run,
        imbalance=args.imbalance,
        allow_data_drop=args.allow_data_drop,
        val_fraction=args.val_fraction,
        skip_bad_images=args.skip_bad_images,
        data_dir=args.data_dir,
        manual_dir=args.manual_dir,
        download=not args.no_download,
        seed=args.seed,
        resume=args.resume,
        strategy=args.strategy,
        verbose=values.get("verbose", 2)
        if args.verbose is None
        else args.verbose,
        deterministic=args.deterministic,
        report=not args.no_report,
        checkpoint_every=args.checkpoint_every,
        precision=args.precision,
        executor=args.executor,
        deadline=_deadline(args),
        sync_batch_norm=args.sync_bn,
        init_weights=args.init_weights,
    )
    # Flags given explicitly override the recipe and --quick values.
    explicit = {
        "dim": args.dim,
        "width": args.width,
        "depth": args.depth,
        "train_per_class": args.train_per_class,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.lr,
        "warmup_epochs": args.warmup_epochs,
        "milestones": args.milestones,
        "weight_decay": args.weight_decay,
        "mixup_alpha": args.mixup,
        "loss_scale": args.loss_scale,
    }
    explicit["dataset"] = getattr(args, "dataset", None)
    explicit["backbone"] = args.backbone
    explicit["weights"] = args.weights
    if spec["config"].get("streaming"):
        explicit.update(
            image_size=args.image_size,
            class_subset=args.classes,
            auto_augment=args.auto_augment,
            random_erasing=args.random_erasing,
            cutmix_alpha=args.cutmix,
            data_workers=args.workers,
            freeze_epochs=args.freeze_epochs,
            trunk_lr_scale=args.trunk_lr_scale,
            val_list=args.val_dir,
            test_list=args.test_dir,
        )
    values.update({k: v for k, v in explicit.items() if v is not None})
    if args.image_dir and args.npz:
        raise ValueError("Pass --image-dir or --npz, not both.")
    if args.image_dir:
        values.update(source="image_dir", image_dir=args.image_dir)
        values["test_split"] = None
    if args.npz:
        values.update(source="numpy", numpy_path=args.npz, test_split=None)
    if spec["config"].get("streaming") and args.tfds:
        values["source"] = "tfds"
        # imagenet_lt: train / validation / test; imagenet2012: its
        # validation split is the usual test set.
        values["test_split"] = (
            "test" if values["dataset"] == "imagenet_lt" else "validation"
        )
    if spec["config"]["source"] == "image_list":
        values.update(
            image_root=args.root,
            train_list=args.train_list,
            val_list=args.val_list or values.get("val_list"),
            test_list=args.test_list or values.get("test_list"),
        )
    imb = "bal" if values["imbalance"] is None else f"{values['imbalance']:g}"
    data = f"{args.dataset}-" if getattr(args, "dataset", None) else ""
    values["out"] = args.out or (
        f"runs/{recipe}-{data}{args.method}-{imb}-{args.seed}"
        + ("-quick" if args.quick else "")
    )
    return ExperimentConfig(**values)


def run_recipe(recipe: str, args) -> dict:
    """Builds the config of `recipe` from `args`, runs it, prints results."""
    import logging

    from keras_dlpa.evaluation import format_metrics_table
    from keras_dlpa.training import run_experiment

    logging.basicConfig(level=logging.WARNING)
    try:
        config = config_from_args(recipe, args)
    except (ValueError, TypeError) as error:
        raise UsageError(str(error)) from None
    from keras_dlpa.training.run_dir import RunSettingsError

    print(f"Run directory: {config.out}")
    try:
        evaluation = run_experiment(config)
    except RunSettingsError as error:
        raise UsageError(str(error)) from None
    print(format_metrics_table(evaluation))
    print(f"Wall time: {evaluation['wall_time_s']:.1f} s")
    return evaluation


def main(argv=None, recipe: str = "cifar100_lt") -> int:
    """Entry point of the recipe scripts (errors: one line, exit 1 or 2)."""
    args = build_parser(recipe).parse_args(argv)
    return run_command(
        lambda: run_recipe(recipe, args) and 0, prog=f"recipes/{recipe}.py"
    )


def register(subparsers) -> None:
    """Adds `keras-dlpa train RECIPE ...`."""
    parser = subparsers.add_parser(
        "train",
        help="train a paper recipe (" + ", ".join(RECIPES) + ")",
        description="Train one of the paper's recipes; see recipes/*.py.",
    )
    sub = parser.add_subparsers(dest="recipe", metavar="RECIPE", required=True)
    for name, spec in RECIPES.items():
        recipe_parser = sub.add_parser(name, help=spec["description"])
        build_parser(name, recipe_parser)
        recipe_parser.set_defaults(
            func=lambda args, name=name: run_recipe(name, args) and 0
        )


if __name__ == "__main__":
    sys.exit(main())
