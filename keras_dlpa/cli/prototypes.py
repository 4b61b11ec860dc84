"""`keras-dlpa prototypes`: estimate prototypes and write them to a file."""

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "prototypes",
        help="Estimate hyperspherical prototypes and save them (.npz).",
        description="Estimate num_classes unit prototypes in dim "
        "dimensions (uniformity optimisation, or the simplex ETF when "
        "dim >= num_classes - 1), write them with metadata to one .npz "
        "file and print their quality and the time taken.",
    )
    parser.add_argument(
        "-c", "--num-classes", type=int, required=True, help="classes c"
    )
    parser.add_argument(
        "-d", "--dim", type=int, required=True, help="dimension d"
    )
    parser.add_argument(
        "-o", "--output", required=True, help="output .npz file"
    )
    parser.add_argument(
        "--method",
        default="auto",
        choices=["auto", "uniformity", "etf"],
        help="auto: ETF when d >= c - 1, else uniformity (default auto)",
    )
    parser.add_argument(
        "--optimizer",
        default="auto",
        choices=["auto", "reference", "adam"],
        help="auto: the reference SGD + L-BFGS for small c^2 d, full-batch "
        "Adam above (default auto)",
    )
    for flag, default, text in (
        ("--seed", 0, "seed"),
        ("--steps", 1000, "SGD passes of the reference stage"),
        (
            "--refine-iterations",
            100,
            "L-BFGS iterations per refinement "
            "temperature; 0 gives the reference optimiser alone",
        ),
        ("--adam-steps", 200, "full-batch Adam steps"),
    ):
        parser.add_argument(
            flag, type=int, default=default, help=f"{text} (default {default})"
        )
    parser.add_argument(
        "--quiet", action="store_true", help="do not log progress"
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import logging
    import sys
    import time

    from keras_dlpa.prototypes import estimate as lib
    from keras_dlpa.prototypes import save_prototypes

    if not args.quiet:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        lib.logger.addHandler(handler)
        lib.logger.setLevel(logging.INFO)
    start = time.perf_counter()
    try:
        method = lib._resolve_method(args.num_classes, args.dim, args.method)
        options = lib.EstimationOptions(
            steps=args.steps,
            refine_iterations=args.refine_iterations,
            optimizer=args.optimizer,
            adam_steps=args.adam_steps,
        )
        w = lib.estimate_prototypes(
            args.num_classes,
            args.dim,
            method,
            args.seed,
            options,
            verbose=not args.quiet,
        )
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - start
    meta = {"method": method, "seed": args.seed, "seconds": round(seconds, 3)}
    if method == "uniformity":
        meta.update(
            steps=args.steps,
            refine_iterations=args.refine_iterations,
            optimizer=lib._resolve_optimizer(
                args.num_classes, args.dim, args.optimizer
            ),
            adam_steps=args.adam_steps,
        )
    path = save_prototypes(args.output, w, **meta)
    q = lib.prototype_quality(w)
    print(
        f"wrote {path}: {w.shape[0]} x {w.shape[1]} ({method}), "
        f"cosine min {q['min']:.4f} max {q['max']:.4f} "
        f"mean {q['mean']:.4f}, {seconds:.2f}s"
    )
    return 0
