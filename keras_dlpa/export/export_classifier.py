"""`export_classifier`: one call from a trained model to checked exports."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import keras

from keras_dlpa.export.metadata import export_metadata
from keras_dlpa.export.onnx_model import DEFAULT_OPSET
from keras_dlpa.export.onnx_model import export_onnx
from keras_dlpa.export.parity import ParityError
from keras_dlpa.export.parity import check_images
from keras_dlpa.export.parity import check_parity
from keras_dlpa.export.parity import random_images
from keras_dlpa.export.saved_model import export_saved_model
from keras_dlpa.export.serving_model import build_serving_model
from keras_dlpa.export.serving_model import image_shape
from keras_dlpa.export.source import load_classifier

logger = logging.getLogger(__name__)

FORMATS = ("savedmodel", "onnx")
SAVED_MODEL_DIR = "savedmodel"
ONNX_FILE = "model.onnx"
REPORT_FILE = "export.json"


@dataclasses.dataclass
class ExportResult:
    """What `export_classifier` wrote.

    Attributes:
        out_dir: the output directory.
        paths: `{format: path}` of each export, plus `"report"`.
        metadata: the metadata dict (see `export_metadata`).
        parity: the `check_parity` report, or None when not checked.
    """

    out_dir: Path
    paths: dict
    metadata: dict
    parity: dict | None


def parse_formats(formats) -> tuple:
    """Normalises `"savedmodel,onnx"` or a sequence to a tuple of formats."""
    if isinstance(formats, str):
        items = [f.strip().lower() for f in formats.split(",") if f.strip()]
    else:
        items = [str(f).strip().lower() for f in formats]
    unknown = [f for f in items if f not in FORMATS]
    if unknown or not items:
        raise ValueError(
            f"Unknown export format(s) {unknown or formats!r}. Supported "
            f"formats: {', '.join(FORMATS)} (comma-separated)."
        )
    return tuple(dict.fromkeys(items))


def export_classifier(
    source,
    out_dir,
    formats=FORMATS,
    top_k: int | None = None,
    class_names=None,
    images=None,
    parity_batch_size: int = 8,
    tolerance: float = 1e-5,
    seed: int = 0,
    opset: int = DEFAULT_OPSET,
    check: bool = True,
) -> ExportResult:
    """Exports a trained DL2PA classifier for serving and checks parity.

    Builds the serving graph (`build_serving_model`: backbone -> L2
    normalise -> cosines against `W[A]` baked in as constants; outputs
    `logits`, `label`, `score`, optional top-k), writes it as a SavedModel
    (`out_dir/savedmodel`, signatures `serving_default` float32 and
    `serving_uint8`) and/or ONNX (`out_dir/model.onnx`, opset 17, metadata
    in `metadata_props`), then compares every export with the Keras model
    on one batch and raises `ParityError` when labels or cosines differ.
    A JSON report goes to `out_dir/export.json`.

    Args:
        source: a `keras.Model`, a `.keras` file or a RUN_DIR (uses
            `model.keras` and `config.json` "class_names").
        out_dir: output directory (created).
        formats: `"savedmodel,onnx"` or a sequence of `"savedmodel"`,
            `"onnx"`.
        top_k: optional `k` for `top_k_labels`/`top_k_scores` outputs.
        class_names: optional `c` names (default: the run config, else
            `"0".."c-1"`).
        images: optional parity images `(B, H, W, C)` raw pixels; default
            `parity_batch_size` seeded random 0-255 images.
        parity_batch_size: size of the random parity batch (default 8).
        tolerance: parity tolerance on cosines (default 1e-5).
        seed: seed of the random parity images.
        opset: ONNX opset (default 17).
        check: run the parity check (default True).

    Returns:
        An `ExportResult`.
    """
    formats = parse_formats(formats)
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            "keras_dlpa.export needs the TensorFlow backend. Received: "
            f"backend={keras.backend.backend()!r}; set "
            "KERAS_BACKEND=tensorflow (a .keras file trained on JAX loads "
            "there unchanged)."
        )
    loaded = load_classifier(source, class_names=class_names)
    model = loaded.model
    metadata = export_metadata(model, loaded.class_names, top_k=top_k)
    serving_model = build_serving_model(model, top_k=top_k)
    shape = image_shape(model)
    if images is None:
        images = random_images(shape, parity_batch_size, seed)
    else:
        images = check_images(images, shape)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    if "savedmodel" in formats:
        paths["savedmodel"] = export_saved_model(
            serving_model, out_dir / SAVED_MODEL_DIR, metadata
        )
        logger.info("wrote SavedModel %s", paths["savedmodel"])
    if "onnx" in formats:
        paths["onnx"] = export_onnx(
            serving_model, out_dir / ONNX_FILE, metadata, opset=opset
        )
        logger.info("wrote ONNX %s", paths["onnx"])
    parity = None
    if check:
        parity = check_parity(
            model,
            images,
            saved_model_path=paths.get("savedmodel"),
            onnx_path=paths.get("onnx"),
            serving_model=serving_model,
            tolerance=tolerance,
            top_k=top_k,
            raise_on_failure=False,
        )
    paths["report"] = out_dir / REPORT_FILE
    report = {
        "source": loaded.source,
        "formats": list(formats),
        "paths": {k: str(v) for k, v in paths.items()},
        "metadata": metadata,
        "parity": parity,
    }
    paths["report"].write_text(json.dumps(report, indent=2) + "\n")
    if parity is not None and not parity["passed"]:
        failed = {
            k: v for k, v in parity["backends"].items() if not v["passed"]
        }
        raise ParityError(
            f"Export parity check failed (tolerance {tolerance:g}); the "
            f"exports in {out_dir} must not be served: {failed}"
        )
    return ExportResult(out_dir, paths, metadata, parity)
