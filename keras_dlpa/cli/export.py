"""`keras-dlpa export`: SavedModel / ONNX export with a parity check."""

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export",
        help="Export a trained DL2PA classifier (SavedModel, ONNX).",
        description="Build the serving graph of a trained classifier "
        "(backbone -> cosines against the prototypes in label order, the "
        "final assignment baked in; outputs logits, label, score), write "
        "it as a SavedModel and/or ONNX and check parity with the Keras "
        "model on a batch.",
    )
    parser.add_argument(
        "source", help="run directory (model.keras + config.json) or .keras"
    )
    parser.add_argument(
        "--format",
        default="savedmodel,onnx",
        help="comma-separated formats: savedmodel, onnx "
        "(default savedmodel,onnx)",
    )
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument(
        "--top-k", type=int, default=None, help="also output the k best"
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=1e-5,
        help="parity tolerance on cosines (default 1e-5)",
    )
    parser.add_argument(
        "--parity-batch",
        type=int,
        default=8,
        help="random images in the parity batch (default 8)",
    )
    parser.add_argument(
        "--opset", type=int, default=17, help="ONNX opset (default 17)"
    )
    parser.add_argument(
        "--no-check", action="store_true", help="skip the parity check"
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import sys

    from keras_dlpa import export as lib

    try:
        formats = lib.parse_formats(args.format)
        result = lib.export_classifier(
            args.source,
            args.out,
            formats=formats,
            top_k=args.top_k,
            parity_batch_size=args.parity_batch,
            tolerance=args.tolerance,
            opset=args.opset,
            check=not args.no_check,
        )
    except lib.ParityError as e:
        print(f"parity FAILED: {e}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError, TypeError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    meta = result.metadata
    for name, path in result.paths.items():
        print(f"wrote {name}: {path}")
    print(
        f"classes c={meta['num_classes']} d={meta['dim']} input "
        f"{meta['input_shape']} prototypes sha256 "
        f"{meta['prototypes_sha256'][:16]}..."
    )
    if result.parity is None:
        print("parity: not checked")
        return 0
    parity = result.parity
    print(
        f"parity: {'PASSED' if parity['passed'] else 'FAILED'} "
        f"({parity['batch_size']} images, tolerance {parity['tolerance']:g})"
    )
    for name, r in parity["backends"].items():
        print(
            f"  {name:18s} max |logit diff| {r['max_abs_logit_diff']:.3g}  "
            f"label mismatches {r['label_mismatches']}"
        )
    return 0
