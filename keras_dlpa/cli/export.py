"""`keras-dlpa export`: SavedModel / ONNX export with a parity check."""

import argparse
import dataclasses


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
        default=None,
        help="comma-separated formats: savedmodel, onnx (default: those "
        "of the layout)",
    )
    parser.add_argument(
        "--layout",
        default="default",
        choices=("default", "tf-serving", "triton"),
        help="default: OUT/savedmodel + OUT/model.onnx; tf-serving: "
        "OUT/NAME/VERSION/saved_model.pb; triton: OUT/NAME/VERSION/"
        "model.onnx + OUT/NAME/config.pbtxt",
    )
    parser.add_argument(
        "--name", default="dl2pa", help="model name (serving layouts)"
    )
    parser.add_argument(
        "--int8",
        action="store_true",
        help="also write an int8 ONNX model (static quantisation, "
        "calibrated on --calibration-images)",
    )
    parser.add_argument(
        "--calibration-images",
        default=None,
        help="training images for int8 calibration: a folder, a .tar.gz "
        "archive of <class>/ folders, or a list file",
    )
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument(
        "--top-k", type=int, default=None, help="also output the k best"
    )
    parser.add_argument(
        "--parity-batch",
        dest="parity_batch_size",
        type=int,
        default=8,
        help="random images in the parity batch (default 8)",
    )
    for flag, kind, default, text in (
        ("--version", int, 1, "model version"),
        ("--max-batch-size", int, 256, "Triton max_batch_size"),
        ("--calibration-size", int, 256, "calibration images, +64 to check"),
        ("--int8-min-agreement", float, 0.9, "int8: min top-1 agreement"),
        ("--int8-tolerance", float, 0.05, "int8: max mean |cosine diff|"),
        ("--tolerance", float, 1e-5, "parity tolerance on cosines"),
        ("--opset", int, 17, "ONNX opset"),
    ):
        parser.add_argument(
            flag, type=kind, default=default, help=f"{text} (default {default})"
        )
    parser.add_argument(
        "--no-check",
        dest="check",
        action="store_false",
        help="skip the parity check",
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import sys

    from keras_dlpa.checks import require_tensorflow

    require_tensorflow("keras-dlpa export")  # before the export imports TF
    from keras_dlpa import export as lib

    if args.int8 and not args.calibration_images:
        print(
            "error: --int8 needs --calibration-images (training images)",
            file=sys.stderr,
        )
        return 2
    fields = [f.name for f in dataclasses.fields(lib.ExportOptions)]
    options = {f: getattr(args, f) for f in fields if hasattr(args, f)}
    try:
        result = lib.export_classifier(
            args.source,
            args.out,
            formats=args.format,
            top_k=args.top_k,
            calibration_images=args.calibration_images,
            options=lib.ExportOptions(**options),
        )
    except lib.ParityError as e:
        print(f"parity FAILED: {e}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError, TypeError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ImportError as e:  # a missing optional package: not usage
        print(f"error: {e}", file=sys.stderr)
        return 1
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
        if "label_agreement" in r:
            print(
                f"  {name:18s} labels agree {r['label_agreement']:.1%} "
                f"(>= {r['min_agreement']:.0%}), mean |logit diff| "
                f"{r['mean_abs_logit_diff']:.3g} (<= {r['tolerance']:g}) "
                f"on {r['batch_size']} held-out images"
            )
            continue
        print(
            f"  {name:18s} max |logit diff| {r['max_abs_logit_diff']:.3g}  "
            f"label mismatches {r['label_mismatches']}"
        )
    return 0
