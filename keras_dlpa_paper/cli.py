"""`keras-dlpa reproduce --grid NAME`: the paper's CIFAR / SVHN / STL-10
tables (4, 6, 7, 8 and Fig. 4a), resumable.

`keras_dlpa.cli` adds this subcommand with `register`; the harness it
runs (`keras_dlpa_paper.reproduce`) is imported only when it runs.
"""

from __future__ import annotations

import sys
import time

from keras_dlpa_cli.errors import UsageError


def _seeds(text: str) -> tuple:
    try:
        seeds = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UsageError(
            f"--seeds must be comma-separated integers. Received: {text!r}"
        ) from None
    if not seeds:
        raise UsageError(f"--seeds must name a seed. Received: {text!r}")
    return seeds


def _ints(flag: str, text: str) -> tuple:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UsageError(
            f"{flag} must be comma-separated integers. Received: {text!r}"
        ) from None


def _names(text: str | None) -> tuple | None:
    """`"a,b"` -> `("a", "b")`; None stays None."""
    if text is None:
        return None
    return tuple(v.strip() for v in text.split(",") if v.strip())


def _extra_args(args) -> tuple:
    """Recipe flags for every run: `--epochs`, `--precision`,
    `--checkpoint-every`."""
    extra = ()
    if args.epochs is not None:
        extra += ("--epochs", args.epochs)
    if args.precision is not None:
        extra += ("--precision", args.precision)
    if args.checkpoint_every is not None:
        extra += ("--checkpoint-every", args.checkpoint_every)
    return extra


def _run(args) -> int:
    from keras_dlpa_paper.grids import GRIDS
    from keras_dlpa_paper.grids import Selection
    from keras_dlpa_paper.reproduce import GRID_NAMES
    from keras_dlpa_paper.reproduce import reproduce
    from keras_dlpa_paper.reproduce import resolve_data
    from keras_dlpa_paper.sweep import SweepOptions

    if args.grid not in GRID_NAMES:
        raise UsageError(
            f"--grid must be one of {', '.join(GRID_NAMES)}. Received: "
            f"{args.grid!r}"
        )
    if args.parallel < 1:
        raise UsageError(f"--parallel must be >= 1. Received: {args.parallel}")
    select = Selection(
        datasets=_names(args.datasets),
        methods=_names(args.methods),
        imbalances=_names(args.imbalance),
        dims=None if args.dims is None else _ints("--dims", args.dims),
    )
    args.out = args.out or f"runs/{args.grid}" + (
        "-quick" if args.quick else ""
    )
    deadline = args.deadline
    if args.time_limit is not None:
        deadline = time.time() + args.time_limit
    if args.grid not in GRIDS:
        if select != Selection():
            raise UsageError(
                f"--grid {args.grid} runs all of its cells; --datasets, "
                "--methods, --imbalance and --dims select cells of table4, "
                "fig4a, fig4a_cpu, table6 and table8."
            )
        select = None
    else:
        try:
            select.check(GRIDS[args.grid])
        except ValueError as error:
            text = str(error).replace("imbalances=", "--imbalance ")
            for kind in ("datasets", "methods", "dims"):
                text = text.replace(f"{kind}=", f"--{kind} ")
            raise UsageError(text) from None
    data = args.data
    if not args.report_only:
        try:
            data = resolve_data(args.grid, data, select)
        except ValueError as error:
            raise UsageError(str(error)) from None
    report = reproduce(
        args.grid,
        args.out,
        seeds=_seeds(args.seeds),
        data=data,
        select=select,
        options=SweepOptions(
            quick=args.quick,
            parallel=args.parallel,
            deadline=deadline,
            report_only=args.report_only,
            extra_args=tuple(_extra_args(args)),
        ),
        tfds_data_dir=args.tfds_data_dir,
    )
    rows = len(report["rows"])
    print(f"Report: {args.out}/report.md ({rows} rows)")
    failed = report.get("failed_runs")
    if failed:
        print(
            f"keras-dlpa: {len(failed)} run(s) failed or were refused: "
            f"{', '.join(failed)} (logs in {args.out}/logs)",
            file=sys.stderr,
        )
        return 1
    return 0


def register(subparsers) -> None:
    """Adds `keras-dlpa reproduce`."""
    parser = subparsers.add_parser(
        "reproduce",
        help="run a paper grid (table4, fig4a, fig4a_cpu, table6, table7, "
        "table8)",
        description="Runs a named experiment grid of the paper as one "
        "recipe process per run (complete runs are skipped, interrupted "
        "ones resumed), then writes OUT/report.md with our mean ± std over "
        "seeds next to the paper's numbers. table4: CIFAR-100-LT; fig4a, "
        "fig4a_cpu: balanced CIFAR-100 against d; table6: CIFAR-10-LT "
        "(archive or TFDS) and SVHN-LT / STL-10-LT (TFDS svhn_cropped, "
        "stl10: downloaded where the network allows); table7: prototype "
        "quality; table8: balanced CIFAR-100, softmax / psc_star / "
        "ours_star / dl2pa at d = 16, 32, 64 (each ours_star run starts "
        "after the softmax run whose weights it reads); budget_cpu: "
        "softmax vs dl2pa vs static at d = 10 on balanced CIFAR-100, the "
        "learning rate tuned per method on the validation split, then "
        "15 / 40 / 100-epoch budgets (keras_dlpa_paper.study; --seeds and "
        "--methods do not apply). The CIFAR data comes from --data or "
        "from the folder named by the environment variable "
        "KERAS_DLPA_DATA.",
    )
    add = parser.add_argument
    add(
        "--grid",
        required=True,
        help="table4, fig4a, fig4a_cpu, table6, table7, table8, budget_cpu",
    )
    add("--out", default=None, help="sweep directory (default runs/GRID)")
    add("--seeds", default="0", help="comma-separated, e.g. 0,1,2")
    add(
        "--data",
        default=None,
        help="image folder/archive (--image-dir) of the grid's CIFAR cells, "
        "a prepared .npz of their splits (--npz; one seed, one imbalance), "
        "or tfds (TensorFlow Datasets); default: the grid's archive "
        "(cifar100-png-train.tar.gz, cifar10-jpeg-train.tar.gz) in the "
        "folder $KERAS_DLPA_DATA",
    )
    add(
        "--datasets",
        default=None,
        help="only these datasets' cells, comma-separated (table6: "
        "cifar10, svhn_cropped, stl10)",
    )
    add(
        "--methods",
        default=None,
        help="only these methods' cells, comma-separated (e.g. dl2pa,softmax)",
    )
    add(
        "--imbalance",
        default=None,
        help="only these imbalance columns, comma-separated (e.g. 0.01, or "
        "balanced)",
    )
    add(
        "--dims",
        default=None,
        help="only these feature sizes d, comma-separated (e.g. 50,128)",
    )
    add(
        "--tfds-data-dir",
        default=None,
        help="TFDS data_dir of the TFDS cells (SVHN, STL-10)",
    )
    add("--quick", action="store_true", help="tiny runs (CI)")
    add("--parallel", type=int, default=1, help="runs at once")
    add("--deadline", type=float, default=None, help="Unix time, every run")
    add("--time-limit", type=float, default=None, help="seconds from now")
    add("--report-only", action="store_true", help="only write the report")
    add("--epochs", type=int, default=None, help="override every run's epochs")
    add(
        "--precision",
        default=None,
        choices=("float32", "bfloat16"),
        help="every run's precision (bfloat16: head, loss, stats float32)",
    )
    add(
        "--checkpoint-every",
        type=int,
        default=None,
        help="every run's epochs between checkpoints (default 1)",
    )
    parser.set_defaults(func=_run)
