"""`export_classifier`: one call from a trained model to checked exports."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from keras_dlpa.checks import check_int
from keras_dlpa.checks import require_tensorflow
from keras_dlpa.export.onnx_model import DEFAULT_OPSET
from keras_dlpa.export.onnx_model import export_onnx
from keras_dlpa.export.parity import INT8_MIN_AGREEMENT
from keras_dlpa.export.parity import INT8_TOLERANCE
from keras_dlpa.export.parity import ParityError
from keras_dlpa.export.parity import check_int8_parity
from keras_dlpa.export.parity import check_parity
from keras_dlpa.export.parity import random_images
from keras_dlpa.export.quantize import load_calibration_images
from keras_dlpa.export.quantize import quantize_onnx
from keras_dlpa.export.saved_model import export_saved_model
from keras_dlpa.export.serving_layout import DEFAULT_MAX_BATCH_SIZE
from keras_dlpa.export.serving_layout import check_layout
from keras_dlpa.export.serving_layout import write_triton_model
from keras_dlpa.export.serving_model import build_serving_model
from keras_dlpa.export.serving_model import export_metadata
from keras_dlpa.predict import image_shape
from keras_dlpa.predict import load_classifier
from keras_dlpa_serving.onnx_client import check_batch

FORMATS = ("savedmodel", "onnx")
SAVED_MODEL_DIR = "savedmodel"
ONNX_FILE = "model.onnx"
INT8_ONNX_FILE = "model_int8.onnx"
# Held-out real images (beyond the calibration set) of the int8 check.
INT8_CHECK_SIZE = 64
REPORT_FILE = "export.json"


@dataclasses.dataclass
class ExportResult:
    """What `export_classifier` wrote: `out_dir`, `paths` (`{format: path}`
    plus `"report"`), `metadata` (`export_metadata`) and `parity` (the
    `check_parity` report, or None when not checked)."""

    out_dir: Path
    paths: dict
    metadata: dict
    parity: dict | None


@dataclasses.dataclass(frozen=True)
class ExportOptions:
    """Layout, parity and int8 settings of `export_classifier`.

    Attributes:
        layout: `"default"`, `"tf-serving"` or `"triton"` (docs/serving.md);
            `name`, `version` and Triton's `max_batch_size` are theirs.
        opset: ONNX opset.
        check, parity_batch_size, tolerance: the parity check, its random
            batch size and its tolerance on cosines.
        seed: seed of the random parity images and calibration sample.
        int8, calibration_size: also write an int8 ONNX model calibrated
            on that many `calibration_images` (64 more, disjoint, check it).
        int8_min_agreement, int8_tolerance: the int8 check's minimum top-1
            agreement and maximum mean |cosine difference| vs float32.
    """

    layout: str = "default"
    name: str = "dl2pa"
    version: int = 1
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    opset: int = DEFAULT_OPSET
    check: bool = True
    parity_batch_size: int = 8
    tolerance: float = 1e-5
    seed: int = 0
    int8: bool = False
    calibration_size: int = 256
    int8_min_agreement: float = INT8_MIN_AGREEMENT
    int8_tolerance: float = INT8_TOLERANCE


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


def _layout_formats(layout: str, formats) -> tuple:
    """The formats to write: `formats` (default: all) that `layout` holds."""
    allowed = {"tf-serving": ("savedmodel",), "triton": ("onnx",)}
    allowed = allowed.get(layout, FORMATS)
    formats = allowed if formats is None else parse_formats(formats)
    if set(formats) - set(allowed):
        raise ValueError(
            f"Layout {layout!r} holds {', '.join(allowed)} only. Received: "
            f"formats={','.join(formats)}; drop the format or use "
            "layout='default'."
        )
    return formats


def export_classifier(
    source,
    out_dir,
    formats=None,
    top_k: int | None = None,
    class_names=None,
    images=None,
    calibration_images=None,
    options: ExportOptions | None = None,
) -> ExportResult:
    """Exports a trained DL2PA classifier for serving and checks parity.

    Writes the serving graph (`build_serving_model`) as a SavedModel and/or
    ONNX, optionally an int8 ONNX copy, in the layout of `options.layout`
    (docs/serving.md) with a JSON report `export.json`; raises
    `ParityError` when an export's labels or cosines differ from the Keras
    model's.

    Args:
        source: a `keras.Model`, a `.keras` file or a RUN_DIR (uses
            `model.keras` and `config.json` "class_names").
        out_dir: output directory (created).
        formats: `"savedmodel,onnx"` or a sequence of `"savedmodel"`,
            `"onnx"`; default: every format of the layout.
        top_k: optional `k` for `top_k_labels`/`top_k_scores` outputs.
        class_names: optional `c` names (default: the run config, else
            `"0".."c-1"`).
        images: optional parity images `(B, H, W, C)` raw pixels; default
            `parity_batch_size` seeded random 0-255 images.
        calibration_images: int8 calibration source: training images as
            an array, a folder or a `.tar.gz` archive
            (`load_calibration_images`).
        options: an `ExportOptions`; default `ExportOptions()`.

    Returns:
        An `ExportResult`.
    """
    o = ExportOptions() if options is None else options
    if not isinstance(o, ExportOptions):
        raise TypeError(
            "`options` must be an ExportOptions or None. Received: "
            f"options={options!r}"
        )
    layout, name = o.layout, o.name
    version = check_layout(layout, name, o.version)
    formats = _layout_formats(layout, formats)
    if o.int8 and "onnx" not in formats:
        raise ValueError(
            "int8 export quantises the ONNX model; add the onnx format "
            f"(layout 'default' or 'triton'). Received: layout={layout!r}, "
            f"formats={','.join(formats)}"
        )
    require_tensorflow("keras_dlpa.export (SavedModel, tf2onnx)")
    loaded = load_classifier(source, class_names=class_names)
    model = loaded.model
    metadata = export_metadata(model, loaded.class_names, top_k=top_k)
    serving = build_serving_model(model, top_k=top_k)
    shape = image_shape(model)
    if images is None:
        images = random_images(shape, o.parity_batch_size, o.seed)
    images = check_batch(images, shape).astype("float32")
    if o.int8:
        size = check_int("calibration_size", o.calibration_size)
        if calibration_images is None:
            raise ValueError(
                "int8 export needs calibration images (training images: a "
                "folder, a .tar.gz archive or an array). Received: "
                "calibration_images=None"
            )
        calib = load_calibration_images(
            calibration_images, size + INT8_CHECK_SIZE, shape, o.seed
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if layout == "default":
        sm_dir = out_dir / SAVED_MODEL_DIR
        onnx_path = out_dir / ONNX_FILE
        int8_path = out_dir / INT8_ONNX_FILE
    else:
        sm_dir = out_dir / name / str(version)
        onnx_path = sm_dir / ONNX_FILE
        int8_path = out_dir / f"{name}_int8" / str(version) / ONNX_FILE
    paths = {}
    if "savedmodel" in formats:
        paths["savedmodel"] = export_saved_model(serving, sm_dir, metadata)
    if "onnx" in formats:
        paths["onnx"] = export_onnx(serving, onnx_path, metadata, opset=o.opset)
    names, mbs = json.loads(metadata["class_names"]), o.max_batch_size
    if layout == "triton":
        paths["triton_config"] = write_triton_model(onnx_path, names, mbs)
    if o.int8:
        paths["onnx_int8"] = quantize_onnx(onnx_path, int8_path, calib[:size])
        if layout == "triton":
            paths["triton_config_int8"] = write_triton_model(
                int8_path, names, mbs
            )
    parity = None
    if o.check:
        parity = check_parity(
            model,
            images,
            saved_model_path=paths.get("savedmodel"),
            onnx_path=paths.get("onnx"),
            serving_model=serving,
            tolerance=o.tolerance,
            top_k=top_k,
            raise_on_failure=False,
        )
        if o.int8:
            int8_report = check_int8_parity(
                onnx_path,
                int8_path,
                calib[size:],
                min_agreement=o.int8_min_agreement,
                tolerance=o.int8_tolerance,
                raise_on_failure=False,
            )
            parity["backends"]["onnx_int8"] = int8_report
            parity["passed"] = parity["passed"] and int8_report["passed"]
    report_dir = out_dir if layout == "default" else out_dir / name
    paths["report"] = report_dir / REPORT_FILE
    report = {
        "source": loaded.source,
        "layout": layout,
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
            f"Export parity check failed (tolerance {o.tolerance:g}; int8: "
            f"label agreement >= {o.int8_min_agreement:g}, mean |cosine "
            f"diff| <= {o.int8_tolerance:g}); the exports in {out_dir} must "
            f"not be served: {failed}"
        )
    return ExportResult(out_dir, paths, metadata, parity)
