"""Inference throughput of an exported DL2PA classifier on CPU.

Model: CIFAR ResNet-32 (long-tailed variant, d = 64, CIFAR-10 normalisation
as its first layer) + `PrototypeLayer` with 10 classes and a random
assignment (`keras_dlpa.models.cifar_resnet32`; a small stand-in conv net,
reported as such, when that package is absent). Untrained weights: only
speed is measured.

Timed, in one run: Keras `model.predict`, the SavedModel `serving_default`
signature and ONNX Runtime (CPU), at batch 1 and 256 (images/s, median of
repeats, ratios to Keras predict), and the exported head's cost: the
serving graph (logits, label, score) against the bare backbone (same graph
without the cosine head), in ONNX Runtime and Keras predict (the Keras
classifier with its PrototypeLayer vs its backbone).

    python benchmarks/bench_inference.py [--repeats 5] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import tensorflow as tf  # noqa: E402
from _common import print_table  # noqa: E402
from _common import time_call  # noqa: E402
from _common import write_results  # noqa: E402

import keras_dlpa  # noqa: E402
from keras_dlpa import export as ex  # noqa: E402


def build_classifier(num_classes=10, seed=0):
    """Returns (model, description)."""
    keras.utils.set_random_seed(seed)
    try:
        from keras_dlpa.models import CIFAR10_MEAN
        from keras_dlpa.models import CIFAR10_STD
        from keras_dlpa.models import cifar_resnet32

        backbone = cifar_resnet32(
            "long_tailed", mean=CIFAR10_MEAN, std=CIFAR10_STD
        )
        what = "cifar_resnet32(long_tailed, d=64) + PrototypeLayer"
    except ImportError:
        inputs = keras.Input((32, 32, 3), name="images")
        x = keras.layers.Rescaling(1 / 255)(inputs)
        for filters in (16, 32, 64):
            x = keras.layers.Conv2D(filters, 3, 2, activation="relu")(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        backbone = keras.Model(inputs, x)
        what = "STAND-IN conv net (keras_dlpa.models missing)"
    dim = backbone.output.shape[-1]
    prototypes = keras_dlpa.estimate_prototypes(num_classes, dim, seed=seed)
    layer = keras_dlpa.PrototypeLayer(prototypes, initial_assignment="random")
    model = keras.Model(backbone.input, layer(backbone.output))
    return model, what


def _session(path, threads):
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(
        str(path), options, providers=["CPUExecutionProvider"]
    )


def _runners(r, x):
    """Zero-argument callables running each runtime on the batch `x`."""
    xt = tf.constant(x)
    batch = len(x)
    bare_out = [r["onnx_bare"].get_outputs()[0].name]
    outputs = ["logits", "label", "score"]
    return {
        "keras_predict": lambda: r["model"].predict(
            x, batch_size=batch, verbose=0
        ),
        "keras_predict_backbone": lambda: r["backbone"].predict(
            x, batch_size=batch, verbose=0
        ),
        "savedmodel": lambda: r["signature"](images=xt),
        "onnxruntime": lambda: r["onnx_full"].run(outputs, {"images": x}),
        "onnx_backbone": lambda: r["onnx_bare"].run(bare_out, {"images": x}),
    }


def _repeated(fn, calls):
    def run():
        for _ in range(calls):
            fn()

    return run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-sizes", default="1,256")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--calls-batch1",
        type=int,
        default=10,
        help="calls per timing sample at batch 1 (default 10)",
    )
    parser.add_argument("--ort-threads", type=int, default=0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]

    model, what = build_classifier()
    print(f"model: {what}")
    tmp = Path(tempfile.mkdtemp(prefix="bench_inference_"))
    result = ex.export_classifier(model, tmp / "export")
    backbone = ex.extract_backbone(model)
    backbone_onnx = tmp / "backbone.onnx"
    ex.export_onnx(backbone, backbone_onnx)
    loaded = tf.saved_model.load(str(result.paths["savedmodel"]))
    runtimes = {
        "model": model,
        "serving": ex.build_serving_model(model),
        "backbone": backbone,
        "signature": loaded.signatures["serving_default"],
        "onnx_full": _session(result.paths["onnx"], args.ort_threads),
        "onnx_bare": _session(backbone_onnx, args.ort_threads),
    }

    rng = np.random.default_rng(0)
    rows, head_rows = [], []
    for batch in batch_sizes:
        x = rng.integers(0, 256, (batch, 32, 32, 3)).astype("float32")
        calls = args.calls_batch1 if batch == 1 else 1
        speed = {}
        for name, fn in _runners(runtimes, x).items():
            median, _ = time_call(
                _repeated(fn, calls), repeats=args.repeats, warmup=1
            )
            speed[name] = batch * calls / median
        base = speed["keras_predict"]
        for name in ("keras_predict", "savedmodel", "onnxruntime"):
            rows.append(
                {
                    "batch": batch,
                    "runtime": name,
                    "images_per_s": speed[name],
                    "vs_keras_predict": speed[name] / base,
                }
            )
        for runtime, full, bare in (
            ("onnxruntime", "onnxruntime", "onnx_backbone"),
            ("keras_predict", "keras_predict", "keras_predict_backbone"),
        ):
            head_rows.append(
                {
                    "batch": batch,
                    "runtime": runtime,
                    "backbone_images_per_s": speed[bare],
                    "serving_images_per_s": speed[full],
                    "head_overhead_pct": 100 * (speed[bare] / speed[full] - 1),
                }
            )
    print("\nThroughput (median of repeats; ratio to Keras predict)")
    print_table(rows)
    print("\nHead cost: serving graph vs bare backbone (same runtime)")
    print_table(head_rows)
    write_results(
        "bench_inference",
        {
            "model": what,
            "repeats": args.repeats,
            "calls_per_sample_batch1": args.calls_batch1,
            "parity": result.parity,
            "throughput": rows,
            "head_cost": head_rows,
        },
        args.out,
    )


if __name__ == "__main__":
    main()
