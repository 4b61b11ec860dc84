"""Export of trained DL2PA classifiers for serving (TensorFlow only).

The serving graph is backbone -> L2 normalise -> cosines against the
label-ordered prototypes `W[A]` baked in as constants, with outputs
`logits`, `label`, `score` (and optional top-k); written as a SavedModel
and/or ONNX and checked for parity against the Keras model. Serving needs
neither `keras_dlpa` nor the training statistics.
"""

from keras_dlpa.export.export_classifier import FORMATS
from keras_dlpa.export.export_classifier import ExportResult
from keras_dlpa.export.export_classifier import export_classifier
from keras_dlpa.export.export_classifier import parse_formats
from keras_dlpa.export.metadata import export_metadata
from keras_dlpa.export.metadata import prototypes_sha256
from keras_dlpa.export.onnx_model import export_onnx
from keras_dlpa.export.parity import ParityError
from keras_dlpa.export.parity import check_parity
from keras_dlpa.export.prototype_head import BakedPrototypeHead
from keras_dlpa.export.saved_model import export_saved_model
from keras_dlpa.export.serving_model import build_serving_model
from keras_dlpa.export.serving_model import extract_backbone
from keras_dlpa.export.source import LoadedClassifier
from keras_dlpa.export.source import load_classifier

__all__ = [
    "FORMATS",
    "BakedPrototypeHead",
    "ExportResult",
    "LoadedClassifier",
    "ParityError",
    "build_serving_model",
    "check_parity",
    "export_classifier",
    "export_metadata",
    "export_onnx",
    "export_saved_model",
    "extract_backbone",
    "load_classifier",
    "parse_formats",
    "prototypes_sha256",
]
