"""`keras-dlpa train RECIPE [flags]`: the paper's recipes from the console.

Every recipe script in `recipes/` is `main(argv, recipe=NAME)` of this
module: the flags are generated from the field metadata of the sections of
`keras_dlpa.training.ExperimentConfig` (flag, help, type, choices), parsed
into a config starting from the recipe's values in `RECIPES`, and the
runner is called.
"""

from __future__ import annotations

import argparse
import sys
import time

from keras_dlpa.training.config import IMAGE_LIST
from keras_dlpa.training.config import SECTIONS
from keras_dlpa.training.config import STREAMING
from keras_dlpa.training.config import TFDS_IN_MEMORY
from keras_dlpa.training.config import ExperimentConfig
from keras_dlpa.training.config import config_fields
from keras_dlpa.training.recipes import RECIPES
from keras_dlpa_cli.errors import UsageError
from keras_dlpa_cli.errors import run_command


def _flag_fields(recipe_config: dict):
    """`(section, field, flag, dest, help)` of every flag of a recipe; a
    field's aliases come before its main flag, which `config_from_args`
    applies last, so it wins."""
    has = {
        None: True,
        STREAMING: bool(recipe_config.get("streaming")),
        IMAGE_LIST: recipe_config["source"] == "image_list",
        TFDS_IN_MEMORY: recipe_config["source"] == "tfds"
        and not recipe_config.get("streaming"),
    }
    for section, field in config_fields():
        meta = field.metadata
        for flag, when, text in meta.get("aliases", ()):
            if has[when]:
                yield section, field, flag, flag[2:].replace("-", "_"), text
        if meta.get("flag") and has[meta.get("when")]:
            yield section, field, meta["flag"], field.name, meta["help"]


def _shown(value) -> str:
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def build_parser(recipe: str, parser=None) -> argparse.ArgumentParser:
    """The flags of `recipe`, generated from `ExperimentConfig`'s field
    metadata (flag, help, type, choices, which recipes), by section, with
    the defaults of `RECIPES[recipe]` in the help. Every field flag defaults
    to None, "not given": the recipe's value (or `--quick`'s) stays."""
    spec = RECIPES[recipe]
    defaults = spec["config"]
    if parser is None:
        parser = argparse.ArgumentParser(
            prog=f"recipes/{recipe}.py", description=spec["description"]
        )
    groups = {name: parser.add_argument_group(name) for name in SECTIONS}
    for section, field, flag, dest, text in _flag_fields(defaults):
        meta = field.metadata
        metavar = flag[2:].replace("-", "_").upper()
        group = groups[section]
        if isinstance(field.default, bool):
            # The flag sets the opposite of the default (`--no-report`).
            group.add_argument(
                flag,
                dest=dest,
                action="store_const",
                const=not field.default,
                default=None,
                help=text,
            )
            continue
        default = defaults.get(field.name, field.default)
        if default is not None and field.name != "out":
            text = f"{text} (default {_shown(default)})"
        kind = meta.get("type") or type(field.default)
        group.add_argument(
            flag,
            dest=dest,
            type=str if kind is type(None) else kind,
            choices=meta.get("choices"),
            default=None,
            metavar=None if meta.get("choices") else metavar,
            help=text,
        )
    cli = parser.add_argument_group("command line")
    if defaults.get("streaming"):
        cli.add_argument(
            "--tfds",
            action="store_true",
            help=f"read the TFDS builder {defaults['dataset']!r} "
            "(ArrayRecord; ImageNet tars in --manual-dir)",
        )
    cli.add_argument(
        "--quick", action="store_true", help="tiny smoke run (minutes)"
    )
    cli.add_argument(
        "--time-limit",
        type=float,
        default=None,
        help="seconds from now (a deadline); resume later with --resume",
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


def config_from_args(recipe: str, args) -> ExperimentConfig:
    """`ExperimentConfig` of `recipe` with the parsed flags applied.

    The recipe's values, then `--quick`'s, then every flag given (by its
    field's metadata); then the source flags (`--image-dir`, `--npz`,
    `--tfds`), the deadline and the default run directory.
    """
    spec = RECIPES[recipe]
    values = dict(spec["config"])
    if args.quick:
        values.update(spec["quick"])
    for _, field, _, dest, _ in _flag_fields(spec["config"]):
        value = getattr(args, dest, None)
        if value is not None:
            values[field.name] = value
    values["deadline"] = _deadline(args)
    if args.image_dir and args.numpy_path:
        raise ValueError("Pass --image-dir or --npz, not both.")
    if args.image_dir:
        values.update(source="image_dir", test_split=None)
    if args.numpy_path:
        values.update(source="numpy", test_split=None)
    if getattr(args, "tfds", False):
        values["source"] = "tfds"
        # imagenet_lt: train / validation / test; imagenet2012: its
        # validation split is the usual test set.
        values["test_split"] = (
            "test" if values["dataset"] == "imagenet_lt" else "validation"
        )
    if not args.out:
        imb = values["imbalance"]
        imb = "bal" if imb is None else f"{imb:g}"
        data = f"{args.dataset}-" if getattr(args, "dataset", None) else ""
        values["out"] = (
            f"runs/{recipe}-{data}{values.get('method', 'dl2pa')}-{imb}-"
            f"{values.get('seed', 0)}" + ("-quick" if args.quick else "")
        )
    return ExperimentConfig.from_dict(values)


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

    print(f"Run directory: {config.run.out}")
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
