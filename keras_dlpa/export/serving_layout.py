"""Model-repository layouts that TF Serving and Triton load as they are.

- TF Serving: `OUT/NAME/VERSION/saved_model.pb` + `variables/` (the
  SavedModel of `export_saved_model`; its `assets.extra/` metadata is
  ignored by the server).
- Triton (onnxruntime backend): `OUT/NAME/VERSION/model.onnx`,
  `OUT/NAME/config.pbtxt` and `OUT/NAME/labels.txt` (class names, used by
  Triton's classification extension on `logits`).
"""

from __future__ import annotations

import importlib
from pathlib import Path

from keras_dlpa.checks import check_choice
from keras_dlpa.checks import check_int
from keras_dlpa_serving.onnx_client import TRITON_CONFIG

LAYOUTS = ("default", "tf-serving", "triton")
TRITON_LABELS = "labels.txt"
DEFAULT_MAX_BATCH_SIZE = 256
# ONNX TensorProto element types -> Triton DataType names.
_TRITON_TYPES = {
    1: "TYPE_FP32",
    2: "TYPE_UINT8",
    3: "TYPE_INT8",
    6: "TYPE_INT32",
    7: "TYPE_INT64",
    10: "TYPE_FP16",
    11: "TYPE_FP64",
}


def check_layout(layout: str, name: str, version: int) -> int:
    """Validates the layout arguments of `export_classifier`; `version`."""
    check_choice("layout", layout, LAYOUTS)
    if not name or any(c in name for c in "/\\ ") or name in (".", ".."):
        raise ValueError(
            "`name` must be a model name without spaces or path "
            f"separators. Received: name={name!r}"
        )
    return check_int("version", version)


def _tensor(value) -> tuple:
    """`(name, Triton dtype, dims without batch)` of an ONNX graph value."""
    tensor = value.type.tensor_type
    if tensor.elem_type not in _TRITON_TYPES:
        raise ValueError(
            f"ONNX tensor {value.name!r} has element type "
            f"{tensor.elem_type}, which has no Triton data type here."
        )
    dims = [
        d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim
    ][1:]
    return value.name, _TRITON_TYPES[tensor.elem_type], dims


def _block(name: str, dtype: str, dims, extra=()) -> str:
    lines = ["  {", f'    name: "{name}"', f"    data_type: {dtype}"]
    if dims:
        lines.append(f"    dims: [ {', '.join(map(str, dims))} ]")
    else:
        # A per-image scalar, shape (batch,): Triton wants dims [ 1 ]
        # reshaped to [ ] (model_configuration.md, "Reshape").
        lines += ["    dims: [ 1 ]", "    reshape: { shape: [ ] }"]
    lines += [f"    {line}" for line in extra]
    return "\n".join([*lines, "  }"])


def triton_config(
    onnx_path,
    name: str,
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
    labels: bool = True,
) -> str:
    """The Triton `config.pbtxt` text of an exported `.onnx` classifier:
    inputs and outputs read from the ONNX graph, `platform:
    "onnxruntime_onnx"`, `max_batch_size`, `dynamic_batching` (100 us queue
    delay) and, with `labels`, `label_filename: "labels.txt"` on `logits`."""
    import onnx

    max_batch_size = check_int("max_batch_size", max_batch_size)
    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    inputs = [_block(*_tensor(v), ["format: FORMAT_NHWC"]) for v in graph.input]
    label = [f'label_filename: "{TRITON_LABELS}"'] if labels else []
    outputs = [
        _block(*_tensor(v), label if v.name == "logits" else [])
        for v in graph.output
    ]
    preferred = {b for b in (32, 64, max_batch_size) if b <= max_batch_size}
    preferred = ", ".join(map(str, sorted(preferred)))
    sep = ",\n"
    return (
        f'name: "{name}"\nplatform: "onnxruntime_onnx"\n'
        f"max_batch_size: {max_batch_size}\n"
        f"input [\n{sep.join(inputs)}\n]\noutput [\n{sep.join(outputs)}\n]\n"
        "dynamic_batching {\n"
        f"  preferred_batch_size: [ {preferred} ]\n"
        "  max_queue_delay_microseconds: 100\n}\n"
    )


def read_triton_config(path):
    """Parses a `config.pbtxt` into Triton's `ModelConfig` protobuf, or
    raises a `ValueError` naming the file."""
    from google.protobuf import text_format

    try:
        module = importlib.import_module("tritonclient.grpc.model_config_pb2")
    except (ImportError, RuntimeError) as error:
        raise ImportError(
            "Checking a Triton config.pbtxt needs tritonclient: pip install "
            f"'keras-dlpa[onnx]' ({error})"
        ) from error
    path = Path(path)
    try:
        return text_format.Parse(path.read_text(), module.ModelConfig())
    except text_format.ParseError as error:
        raise ValueError(
            f"{path} is not a valid Triton model configuration: {error}"
        ) from error


def write_triton_model(
    onnx_path, class_names=None, max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
) -> Path:
    """Writes `config.pbtxt` (+ `labels.txt`) into the model folder `NAME`
    of `NAME/VERSION/model.onnx`, checks it with Triton's `ModelConfig`
    schema and returns its path."""
    model_dir = Path(onnx_path).parent.parent
    labels = class_names is not None
    if labels:
        (model_dir / TRITON_LABELS).write_text(
            "".join(f"{n}\n" for n in class_names)
        )
    path = model_dir / TRITON_CONFIG
    path.write_text(
        triton_config(onnx_path, model_dir.name, max_batch_size, labels)
    )
    read_triton_config(path)
    return path
