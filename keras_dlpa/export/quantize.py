"""int8 post-training static quantisation of an exported ONNX classifier."""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import numpy as np

from keras_dlpa.checks import check_choice
from keras_dlpa.data.image_folder import ARCHIVE_SUFFIXES
from keras_dlpa.export.onnx_model import name_batch_dim

logger = logging.getLogger(__name__)

QUANT_FORMATS = ("qdq", "qoperator")
# The cosine head (L2 normalise, matmul against W[A], top-k) stays float:
# it is a few hundred multiply-adds per image, and quantising the unit
# features would move every cosine by up to one quantisation step.
HEAD_SCOPE = "baked_prototype_head"


def quantize_onnx(
    model_path,
    out_path,
    calibration_images,
    quant_format: str = "qdq",
    per_channel: bool = True,
    reduce_range: bool = True,
    batch_size: int = 32,
) -> Path:
    """Writes an int8 copy of an exported ONNX classifier.

    onnxruntime `quantize_static` (min/max calibration): uint8 activations,
    int8 weights; the cosine head stays float32, so the outputs keep their
    names, dtypes and shapes. Metadata is copied, plus `"quantization"`.

    Args:
        model_path: the float32 `.onnx` from `export_onnx`.
        out_path: output `.onnx` file.
        calibration_images: `(N, H, W, C)` raw 0-255 training images (a
            few hundred are enough).
        quant_format: `"qdq"` (QuantizeLinear/DequantizeLinear pairs,
            fused by onnxruntime) or `"qoperator"` (QLinearConv, ...).
        per_channel: per-output-channel weight scales (default True).
        reduce_range: 7-bit weights (default True): avoids the int16
            saturation of the u8 x s8 kernels on AVX2 CPUs without VNNI.
        batch_size: calibration batch size.

    Returns:
        The written path.
    """
    try:
        import onnx
        from onnxruntime import quantization
    except ImportError as error:
        raise ImportError(
            "int8 quantisation needs onnx and onnxruntime: pip install "
            "'keras-dlpa[onnx]'"
        ) from error
    check_choice("quant_format", quant_format, QUANT_FORMATS)
    images = np.asarray(calibration_images)
    if images.ndim != 4 or len(images) == 0:
        raise ValueError(
            "Argument `calibration_images` must be a non-empty batch "
            f"(N, H, W, C). Received: shape={images.shape}"
        )
    model_path, out_path = Path(model_path), Path(out_path)
    proto = onnx.load(str(model_path))
    input_name = proto.graph.input[0].name

    class Batches(quantization.CalibrationDataReader):
        def __init__(self):
            self.rewind()

        def get_next(self):
            return next(self.batches, None)

        def rewind(self):
            self.batches = iter(
                {input_name: np.asarray(images[i : i + batch_size], "float32")}
                for i in range(0, len(images), batch_size)
            )

    head = [n.name for n in proto.graph.node if HEAD_SCOPE in n.name]
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        # Shape inference + graph optimisation first, as onnxruntime
        # recommends (ONNX's: only the batch axis is symbolic; the symbolic
        # pass would need sympy).
        prepared = Path(tmp) / "prepared.onnx"
        quantization.quant_pre_process(
            str(model_path), str(prepared), skip_symbolic_shape=True
        )
        quantization.quantize_static(
            str(prepared),
            str(out_path),
            Batches(),
            quant_format=quantization.QuantFormat.QDQ
            if quant_format == "qdq"
            else quantization.QuantFormat.QOperator,
            per_channel=per_channel,
            reduce_range=reduce_range,
            activation_type=quantization.QuantType.QUInt8,
            weight_type=quantization.QuantType.QInt8,
            nodes_to_exclude=head,
            calibrate_method=quantization.CalibrationMethod.MinMax,
        )
    quantized = onnx.load(str(out_path))
    name_batch_dim(quantized)
    props = {p.key: p.value for p in proto.metadata_props}
    scheme = {"scheme": "static int8 (onnxruntime quantize_static)"}
    scheme.update(format=quant_format, activations="uint8", weights="int8")
    scheme.update(
        per_channel=bool(per_channel), reduce_range=bool(reduce_range)
    )
    scheme.update(calibration_images=int(len(images)), float_head=True)
    props["quantization"] = json.dumps(scheme)
    del quantized.metadata_props[:]
    onnx.helper.set_model_props(quantized, props)
    quantized.producer_name = proto.producer_name
    quantized.doc_string = proto.doc_string + " int8 backbone."
    onnx.save(quantized, str(out_path))
    logger.info("wrote int8 ONNX %s", out_path)
    return out_path


def load_calibration_images(source, count: int, shape, seed: int = 0):
    """`count` seeded-random raw images `(count, H, W, C)` uint8.

    Args:
        source: a `(N, H, W, C)` array; a `.tar.gz`/`.tgz` archive or a
            folder of `<class>/*.jpg` (read with
            `keras_dlpa.data.load_image_folder`, whose decoded archive is
            cached); or a flat folder, image or list file (read like
            `keras-dlpa predict` images, resized to `shape`).
        count: number of images; fewer available is an error.
        shape: the model input `(H, W, C)`.
        seed: the sampling seed.
    """
    from keras_dlpa_serving import onnx_client

    rng = np.random.default_rng(seed)
    if isinstance(source, np.ndarray):
        images = source
    else:
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(
                f"No calibration images at {str(path)!r}: pass a folder, "
                "a .tar.gz archive of <class>/ folders or a list file."
            )
        class_folder = path.is_dir() and any(p.is_dir() for p in path.iterdir())
        if path.name.lower().endswith(ARCHIVE_SUFFIXES) or class_folder:
            from keras_dlpa.data import load_image_folder

            images = load_image_folder(path).images
        else:
            files = onnx_client.find_images([path])
            if len(files) < count:
                raise ValueError(
                    f"Need {count} calibration images; {str(path)!r} has "
                    f"{len(files)}."
                )
            pick = rng.choice(len(files), count, replace=False)
            return np.stack(
                [onnx_client.load_image(files[i], shape) for i in pick]
            )
    images = np.asarray(images)
    onnx_client.check_batch(images, tuple(shape))
    if len(images) < count:
        raise ValueError(
            f"Need {count} calibration images; the source has "
            f"{len(images)}. Pass a smaller calibration size."
        )
    return images[np.sort(rng.choice(len(images), count, replace=False))]
