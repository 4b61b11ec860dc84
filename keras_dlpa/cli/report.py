"""`keras-dlpa report`: plot a run directory and print its metrics table."""

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "report",
        help="Write the PNG report of a run directory.",
        description="Read RUN_DIR (config.json, metrics.json and, when "
        "present, evaluation.json and final_state.npz), write the PNG "
        "plots (training curves, per-class accuracy vs training count, "
        "assignment changes, prototype similarity) and print their paths "
        "and the many/medium/few-shot metrics table.",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="run directory")
    parser.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="output directory (default RUN_DIR/plots)",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="do not log skipped plots"
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import json
    import logging
    import sys
    from pathlib import Path

    from keras_dlpa import report as lib
    from keras_dlpa.evaluation import format_metrics_table

    handler = None
    if not args.quiet:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        lib.logger.addHandler(handler)
        lib.logger.setLevel(logging.INFO)
    try:
        paths = lib.make_report(args.run_dir, out_dir=args.out)
        evaluation = None
        eval_path = Path(args.run_dir) / "evaluation.json"
        if eval_path.is_file():
            with open(eval_path, encoding="utf-8") as f:
                evaluation = json.load(f)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        if handler is not None:
            lib.logger.removeHandler(handler)
    for path in paths:
        print(f"wrote {path}")
    if evaluation is not None:
        print(format_metrics_table(evaluation))
    return 0
