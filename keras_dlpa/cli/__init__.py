"""The `keras-dlpa` console script.

Each module in this package that defines `register(subparsers)` contributes
one subcommand; `register` adds its parser and sets `func=callable(args)`.
`reproduce` comes from the paper harness, `keras_dlpa_paper.cli`.
Modules import heavy dependencies inside their command functions so that
`keras-dlpa --help` stays fast.
"""

import argparse
import importlib
import os
import pkgutil
import sys

from keras_dlpa_paper import cli as paper_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keras-dlpa",
        description="Hyperspherical classification with dynamic "
        "label-to-prototype assignment (DL2PA).",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "register"):
            module.register(subparsers)
    paper_cli.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs a subcommand; errors are one line on stderr (see `errors`)."""
    from keras_dlpa_cli.errors import TRACEBACK_ENV
    from keras_dlpa_cli.errors import run_command

    parser = build_parser()
    parser.add_argument(
        "--traceback",
        action="store_true",
        help=f"show full tracebacks (or set {TRACEBACK_ENV}=1)",
    )
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    if args.traceback:
        os.environ[TRACEBACK_ENV] = "1"
    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
