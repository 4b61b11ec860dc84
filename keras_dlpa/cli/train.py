"""`keras-dlpa train RECIPE [flags]`: the paper's recipes from the console.

Every recipe script in `recipes/` is `main(argv, recipe=NAME)` of this
module: flags are parsed into a `keras_dlpa.experiment.ExperimentConfig`
(starting from the recipe's defaults in `RECIPES`) and the runner is called.
"""

from __future__ import annotations

import argparse
import sys

# Recipe defaults: ExperimentConfig fields. "quick" overrides them for
# `--quick` (a few minutes on a laptop CPU; a smoke run, not a result).
# The paper's long-tailed CIFAR schedule (reference code, notes).
_CIFAR_LT = {
    "source": "tfds",
    "imbalance": 0.01,
    "epochs": 200,
    "batch_size": 128,
    "learning_rate": 0.1,
    "warmup_epochs": 5,
    "milestones": (160, 180),
    "weight_decay": 2e-4,
    "mixup_alpha": 1.0,
    "class_scale": True,
}
_CIFAR_QUICK = {
    "width": 8,
    "depth": 8,
    "epochs": 3,
    "batch_size": 64,
    "warmup_epochs": 1,
    "milestones": (2,),
}

RECIPES = {
    "cifar100_lt": {
        "description": "CIFAR-100-LT, ResNet-32 (32/64/128, d = 128), "
        "imbalance 0.01, 200 epochs (paper Table 3).",
        "config": {
            **_CIFAR_LT,
            "dataset": "cifar100",
            "backbone": "resnet32_lt_cifar100",
        },
        "quick": {**_CIFAR_QUICK, "train_per_class": 100},
    },
    "cifar10_lt": {
        "description": "CIFAR-10-LT, ResNet-32 (16/32/64, d = 64), "
        "imbalance 0.01, 200 epochs (paper Table 3).",
        "config": {
            **_CIFAR_LT,
            "dataset": "cifar10",
            "backbone": "resnet32_lt_cifar10",
        },
        "quick": {**_CIFAR_QUICK, "train_per_class": 500},
    },
    "cifar100": {
        "description": "Balanced CIFAR-100, ResNet-32 + Dense(64 -> d), "
        "d in {10, 25, 50, 100}, 250 epochs, plain IPM loss (paper "
        "Table 2).",
        "config": {
            "dataset": "cifar100",
            "source": "tfds",
            "backbone": "resnet32_cifar100",
            "dim": 50,
            "imbalance": None,
            "epochs": 250,
            "batch_size": 128,
            "learning_rate": 0.01,
            "warmup_epochs": 0,
            "milestones": (100, 200),
            "weight_decay": 1e-4,
            "mixup_alpha": 0.0,
            "class_scale": False,
        },
        "quick": {
            "train_per_class": 50,
            "width": 8,
            "depth": 8,
            "epochs": 3,
            "batch_size": 64,
            "milestones": (2,),
        },
    },
    "imagenet_lt": {
        "description": "ImageNet-LT, ResNet-50 + Dense(2048 -> 512), "
        "105 epochs, batch 1024, lr 0.5 with 5 warm-up epochs and cosine "
        "decay, wd 2e-5 (the reference's ImageNet settings).",
        "config": {
            "dataset": "imagenet_lt",
            "source": "image_list",
            "backbone": "resnet50_imagenet",
            "dim": 512,
            "imbalance": None,
            "image_size": 224,
            "epochs": 105,
            "batch_size": 1024,
            "learning_rate": 0.5,
            "warmup_epochs": 5,
            "lr_decay": "cosine",
            "milestones": (),
            "weight_decay": 2e-5,
            "mixup_alpha": 0.2,
            "class_scale": True,
            "test_split": None,
        },
        "quick": {
            "image_size": 64,
            "epochs": 2,
            "batch_size": 32,
            "warmup_epochs": 1,
        },
    },
}


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
        choices=("dl2pa", "static", "etf", "softmax"),
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
    ):
        default = d[field]
        if isinstance(default, tuple):
            default = ",".join(str(v) for v in default)
        add(flag, type=kind, default=None, help=f"default {default}{note}")
    add("--val-fraction", type=float, default=0.1)
    add("--train-per-class", type=int, default=None)
    add("--data-dir", default=None, help="TFDS data_dir")
    add("--manual-dir", default=None, help="TFDS manual_dir (archives)")
    add("--no-download", action="store_true", help="TFDS: never download")
    add(
        "--image-dir",
        default=None,
        help="class-folder directory or .tar.gz (instead of TFDS)",
    )
    if d["source"] == "image_list":
        add("--root", default=None, help="image root of the list files")
        add("--train-list", default=None, help="list file or class folder")
        add("--val-list", default=None)
        add("--test-list", default=None)
        add(
            "--image-size",
            type=int,
            default=None,
            help=f"default {d['image_size']}",
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
    add("--verbose", type=int, default=2, choices=(0, 1, 2))
    add("--deterministic", action="store_true", help="TF op determinism")
    add("--no-report", action="store_true", help="skip the plots")
    return parser


def config_from_args(recipe: str, args):
    """`ExperimentConfig` of `recipe` with the parsed flags applied."""
    from keras_dlpa.experiment import ExperimentConfig

    spec = RECIPES[recipe]
    values = dict(spec["config"])
    if args.quick:
        values.update(spec["quick"])
    values.update(
        method=args.method,
        imbalance=args.imbalance,
        val_fraction=args.val_fraction,
        data_dir=args.data_dir,
        manual_dir=args.manual_dir,
        download=not args.no_download,
        seed=args.seed,
        resume=args.resume,
        strategy=args.strategy,
        verbose=args.verbose,
        deterministic=args.deterministic,
        report=not args.no_report,
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
    }
    if spec["config"]["source"] == "image_list":
        explicit["image_size"] = args.image_size
    values.update({k: v for k, v in explicit.items() if v is not None})
    if args.image_dir:
        values.update(source="image_dir", image_dir=args.image_dir)
        values["test_split"] = None
    if spec["config"]["source"] == "image_list":
        values.update(
            image_root=args.root,
            train_list=args.train_list,
            val_list=args.val_list,
            test_list=args.test_list,
        )
    imb = "bal" if values["imbalance"] is None else f"{values['imbalance']:g}"
    values["out"] = args.out or (
        f"runs/{recipe}-{args.method}-{imb}-{args.seed}"
        + ("-quick" if args.quick else "")
    )
    return ExperimentConfig(**values)


def run_recipe(recipe: str, args) -> dict:
    """Builds the config of `recipe` from `args`, runs it, prints results."""
    import logging

    from keras_dlpa.evaluation import format_metrics_table
    from keras_dlpa.experiment import run_experiment

    logging.basicConfig(level=logging.WARNING)
    config = config_from_args(recipe, args)
    print(f"Run directory: {config.out}")
    evaluation = run_experiment(config)
    print(format_metrics_table(evaluation))
    print(f"Wall time: {evaluation['wall_time_s']:.1f} s")
    return evaluation


def main(argv=None, recipe: str = "cifar100_lt") -> int:
    """Entry point of the recipe scripts."""
    args = build_parser(recipe).parse_args(argv)
    run_recipe(recipe, args)
    return 0


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
