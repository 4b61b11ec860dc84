"""Inference throughput of an exported DL2PA classifier on CPU.

Model: CIFAR ResNet-32 (long-tailed variant, d = 64, CIFAR-10 normalisation
as its first layer) + `PrototypeLayer` with 10 classes and a random
assignment (`keras_dlpa.models.cifar_resnet32`; a small stand-in conv net,
reported as such, when that package is absent). Untrained weights: only
speed is measured.

Timed, in one run: Keras `model.predict`, the Keras fast paths for small
batches (`model(x, training=False)`, `model.predict_on_batch(x)`, a
`tf.function` of the call), the SavedModel `serving_default` signature,
ONNX Runtime (CPU) and ONNX Runtime on the int8 model (`quantize_onnx`,
calibrated on 256 CIFAR-10 training JPEGs when the shared archive is there,
else on random images), at batch 1 and 256 (images/s, median of repeats,
ratios to Keras predict, GFLOP/s), and the exported head's cost: the
serving graph (logits, label, score) against the bare backbone (same graph
without the cosine head), in ONNX Runtime and Keras predict.

FLOPs/image are counted on the float32 ONNX graph: 2 x the multiply-adds
of every Conv, MatMul and Gemm node, with shapes inferred at batch 1
(element-wise ops, pooling and the normalisation are left out); GFLOP/s =
images/s x FLOPs/image / 1e9 (for int8: the same operations, as int8).

`--run-dir RUN` adds an int8 accuracy check on a trained model: the run's
own validation split (rebuilt from `RUN/config.json`), calibration on 256
images of its training split, top-1 of the float32 and int8 ONNX models
and their images/s at batch 256.

    python benchmarks/bench_inference.py [--repeats 5] [--out FILE]
        [--run-dir runs/quickstart]

`benchmarks/make_tables.py` renders the JSON (images/s, ratio to Keras
predict, GFLOP/s, the int8 / float32 speed-up per batch size and the
`--run-dir` top-1 table) into BENCHMARKS.md.
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
from _common import CIFAR10_JPEG  # noqa: E402
from _common import print_table  # noqa: E402
from _common import time_call  # noqa: E402
from _common import write_results  # noqa: E402

import keras_dlpa  # noqa: E402
from keras_dlpa import export as ex  # noqa: E402


def onnx_flops(path) -> int:
    """FLOPs per image: 2 x multiply-adds of Conv/MatMul/Gemm at batch 1."""
    import onnx

    proto = onnx.load(str(path))
    for value in proto.graph.input:
        value.type.tensor_type.shape.dim[0].dim_value = 1
    proto = onnx.shape_inference.infer_shapes(proto)
    shapes = {
        v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in (
            *proto.graph.value_info,
            *proto.graph.input,
            *proto.graph.output,
        )
    }
    for t in proto.graph.initializer:
        shapes[t.name] = list(t.dims)
    macs = 0
    for node in proto.graph.node:
        if node.op_type == "Conv":
            out = shapes[node.output[0]]  # (1, C_out, H, W)
            weight = shapes[node.input[1]]  # (C_out, C_in / g, kh, kw)
            macs += int(np.prod(out)) * int(np.prod(weight[1:]))
        elif node.op_type in ("MatMul", "Gemm"):
            a, b = shapes[node.input[0]], shapes[node.input[1]]
            if node.op_type == "Gemm" and any(
                attr.i for attr in node.attribute if attr.name == "transB"
            ):
                b = b[::-1]
            macs += int(np.prod(a)) * int(b[-1])
    return 2 * macs


def calibration_images(count=256 + 64, seed=0):
    """Real CIFAR-10 training images when the archive exists, else noise."""
    if CIFAR10_JPEG.is_file():
        images = ex.load_calibration_images(
            CIFAR10_JPEG, count, (32, 32, 3), seed
        )
        return images, "cifar10-jpeg-train"
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, 32, 32, 3)).astype("uint8"), "random"


def build_classifier(num_classes=10, seed=0):
    """Returns (model, description)."""
    keras.utils.set_random_seed(seed)
    try:
        from keras_dlpa.models import CIFAR10_MEAN
        from keras_dlpa.models import CIFAR10_STD
        from keras_dlpa.models import cifar_resnet32

        backbone = cifar_resnet32(
            "long_tailed", input_statistics=(CIFAR10_MEAN, CIFAR10_STD)
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
    model = r["model"]
    return {
        "keras_predict": lambda: model.predict(x, batch_size=batch, verbose=0),
        "keras_call": lambda: model(x, training=False),
        "keras_predict_on_batch": lambda: model.predict_on_batch(x),
        "keras_tf_function": lambda: r["tf_function"](xt),
        "keras_predict_backbone": lambda: r["backbone"].predict(
            x, batch_size=batch, verbose=0
        ),
        "savedmodel": lambda: r["signature"](images=xt),
        "onnxruntime": lambda: r["onnx_full"].run(outputs, {"images": x}),
        "onnxruntime_int8": lambda: r["onnx_int8"].run(outputs, {"images": x}),
        "onnx_backbone": lambda: r["onnx_bare"].run(bare_out, {"images": x}),
    }


def _run_splits(run_dir):
    """The run's (train, val) splits, rebuilt from its config.json."""
    import json

    from keras_dlpa.training import ExperimentConfig
    from keras_dlpa.training.config import flat_config
    from keras_dlpa.training.sources import load_data
    from keras_dlpa.training.sources import make_splits

    raw = json.loads((Path(run_dir) / "config.json").read_text())
    names = ExperimentConfig().flat()
    config = ExperimentConfig.from_dict(
        {k: v for k, v in flat_config(raw).items() if k in names}
    )
    full, val, _ = load_data(config)
    return make_splits(full, config, val)


def int8_accuracy(run_dir, tmp, repeats):
    """Top-1 and images/s of the float32 vs int8 ONNX of a trained run."""
    train, val = _run_splits(run_dir)
    result = ex.export_classifier(
        run_dir,
        tmp / "run_export",
        formats="onnx",
        calibration_images=train.images,
        options=ex.ExportOptions(int8=True, calibration_size=256),
    )
    x = val.images.astype("float32")
    row = {"run": str(run_dir), "val_images": len(x)}
    row["calibration"] = "256 images of the run's training split"
    row["int8_parity"] = (
        (result.parity or {}).get("backends", {}).get("onnx_int8")
    )
    speeds = {}
    for name, key in (("fp32", "onnx"), ("int8", "onnx_int8")):
        session = _session(result.paths[key], 0)
        labels = np.concatenate(
            [
                session.run(["label"], {"images": x[i : i + 256]})[0].ravel()
                for i in range(0, len(x), 256)
            ]
        )
        row[f"top1_{name}"] = 100 * float(np.mean(labels == val.labels))
        batch = x[:256]
        median, _ = time_call(
            lambda s=session, b=batch: s.run(["logits"], {"images": b}),
            repeats=repeats,
            warmup=1,
        )
        speeds[name] = len(batch) / median
        row[f"images_per_s_{name}"] = speeds[name]
    row["top1_change_points"] = row["top1_int8"] - row["top1_fp32"]
    row["int8_speedup"] = speeds["int8"] / speeds["fp32"]
    row["flops_per_image"] = onnx_flops(result.paths["onnx"])
    return row


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
    parser.add_argument(
        "--run-dir",
        default=None,
        help="trained run (config.json, model.keras): int8 top-1 check",
    )
    args = parser.parse_args(argv)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    load_start = list(os.getloadavg())

    model, what = build_classifier()
    print(f"model: {what}")
    tmp = Path(tempfile.mkdtemp(prefix="bench_inference_"))
    calibration, calibration_source = calibration_images()
    result = ex.export_classifier(
        model,
        tmp / "export",
        calibration_images=calibration,
        options=ex.ExportOptions(int8=True, calibration_size=256),
    )
    flops = onnx_flops(result.paths["onnx"])
    print(f"FLOPs/image: {flops / 1e6:.1f} M (Conv/MatMul/Gemm, x2 MACs)")
    call = tf.function(
        lambda images: model(images, training=False), reduce_retracing=True
    )
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
        "onnx_int8": _session(result.paths["onnx_int8"], args.ort_threads),
        "tf_function": call,
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
        for name in (
            "keras_predict",
            "keras_call",
            "keras_predict_on_batch",
            "keras_tf_function",
            "savedmodel",
            "onnxruntime",
            "onnxruntime_int8",
        ):
            rows.append(
                {
                    "batch": batch,
                    "runtime": name,
                    "images_per_s": speed[name],
                    "vs_keras_predict": speed[name] / base,
                    "gflop_per_s": speed[name] * flops / 1e9,
                }
            )
        rows[-1]["int8_vs_fp32_onnx"] = (
            speed["onnxruntime_int8"] / speed["onnxruntime"]
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
    print_table(rows, [*rows[0], "int8_vs_fp32_onnx"])
    print("\nHead cost: serving graph vs bare backbone (same runtime)")
    print_table(head_rows)
    accuracy = None
    if args.run_dir:
        accuracy = int8_accuracy(args.run_dir, tmp, args.repeats)
        print("\nint8 on a trained model (its validation split)")
        print_table([accuracy])
    write_results(
        "bench_inference",
        {
            "model": what,
            "flops_per_image": flops,
            "flops_counted": "2 x MACs of Conv/MatMul/Gemm in the ONNX graph",
            "int8_calibration": calibration_source,
            "repeats": args.repeats,
            "calls_per_sample_batch1": args.calls_batch1,
            "parity": result.parity,
            "throughput": rows,
            "head_cost": head_rows,
            "int8_accuracy": accuracy,
            "loadavg_start": load_start,
            "command": " ".join(
                ["python benchmarks/bench_inference.py", *sys.argv[1:]]
            ),
        },
        args.out,
    )


if __name__ == "__main__":
    main()
