"""ONNX export (tf2onnx) with model metadata."""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

DEFAULT_OPSET = 17
BATCH_DIM = "batch"


def name_batch_dim(proto, name: str = BATCH_DIM) -> None:
    """Names the symbolic first axis of every graph input and output `name`
    (tf2onnx's `unk__N` differs per tensor and export; clients read it)."""
    for value in (*proto.graph.input, *proto.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_param = name


def export_onnx(
    serving_model, path, metadata=None, opset: int = DEFAULT_OPSET
) -> Path:
    """Writes `serving_model` as an ONNX model (tf2onnx).

    One float32 input `"images"` `(batch, H, W, C)` (uint8 pixels are fed
    as their float32 values) and the named outputs of `build_serving_model`,
    as the SavedModel signatures; the dynamic batch axis is `"batch"`.

    Args:
        serving_model: the model from `build_serving_model`.
        path: output `.onnx` file.
        metadata: optional `{str: str}` for the model's `metadata_props`.
        opset: ONNX opset.

    Returns:
        The written path.
    """
    try:
        import onnx
        import tf2onnx  # noqa: F401
    except ImportError as error:
        raise ImportError(
            "ONNX export needs tf2onnx and onnx: pip install 'keras-dlpa[onnx]'"
        ) from error
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = tuple(serving_model.inputs[0].shape[1:])
    spec = tf.TensorSpec((None, *shape), tf.float32, name="images")
    serving_model.export(
        str(path),
        format="onnx",
        input_signature=[spec],
        opset_version=opset,
        verbose=False,
    )
    proto = onnx.load(str(path))
    name_batch_dim(proto)
    if metadata:
        onnx.helper.set_model_props(
            proto, {str(k): str(v) for k, v in metadata.items()}
        )
    proto.producer_name = "keras_dlpa.export"
    proto.doc_string = (
        "DL2PA classifier: images -> cosine logits against label-ordered "
        "prototypes (assignment baked in)."
    )
    onnx.save(proto, str(path))
    return path
