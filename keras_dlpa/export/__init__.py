"""Export of trained DL2PA classifiers for serving (TensorFlow only).

The serving graph is backbone -> L2 normalise -> cosines against the
label-ordered prototypes `W[A]` baked in as constants, with outputs
`logits`, `label`, `score` (and optional top-k); written as a SavedModel
and/or ONNX (optionally in TF-Serving / Triton repository layouts, and as
an int8 ONNX copy) and checked for parity against the Keras model. Serving
needs neither `keras_dlpa` nor the training statistics; `onnx_client` and
`load_predictor` classify image files with any of them.
"""

from keras_dlpa.lazy_exports import lazy_exports

_EXPORTS = {
    "FORMATS": "classifier_export",
    "ExportResult": "classifier_export",
    "export_classifier": "classifier_export",
    "parse_formats": "classifier_export",
    "export_metadata": "metadata",
    "prototypes_sha256": "metadata",
    "export_onnx": "onnx_model",
    "ParityError": "parity",
    "check_int8_parity": "parity",
    "check_parity": "parity",
    "load_predictor": "predictors",
    "BakedPrototypeHead": "prototype_head",
    "load_calibration_images": "quantize",
    "quantize_onnx": "quantize",
    "export_saved_model": "saved_model",
    "LAYOUTS": "serving_layout",
    "read_triton_config": "serving_layout",
    "triton_config": "serving_layout",
    "build_serving_model": "serving_model",
    "extract_backbone": "serving_model",
    "LoadedClassifier": "source",
    "load_classifier": "source",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
