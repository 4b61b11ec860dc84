"""keras-dlpa: hyperspherical classification with dynamic label-to-prototype
assignment (DL2PA, Saadabadi et al., CVPR 2024) for Keras 3.

The core (prototypes, `PrototypeLayer`, `IPMLoss`, class statistics,
`ReassignCallback`, matching) is backend-agnostic (TensorFlow and JAX), and
so are `keras_dlpa.data` (numpy/PIL data core, grain executor) and
`keras_dlpa.training`: importing them imports no TensorFlow. TensorFlow-only
parts are imported from their own modules: the tf.data executors
(`keras_dlpa.data.pipeline`) and `keras_dlpa.export`. The Keras-free ONNX
client is the sibling package `keras_dlpa_serving`.

`import keras_dlpa` registers every serialisable object of the library
(layers, losses, regularizers, learning-rate schedules) with Keras, so
`keras.saving.load_model` loads a saved model without `custom_objects`.
"""

from keras_dlpa import models
from keras_dlpa.class_statistics import merge_statistics
from keras_dlpa.deadline_callback import DeadlineCallback
from keras_dlpa.divergence_callback import DivergenceCallback
from keras_dlpa.divergence_callback import TrainingDiverged
from keras_dlpa.evaluation import EvaluationCallback
from keras_dlpa.evaluation import classification_metrics
from keras_dlpa.evaluation import format_metrics_table
from keras_dlpa.evaluation import shot_groups
from keras_dlpa.ipm_loss import IPMLoss
from keras_dlpa.ipm_loss import ipm_loss
from keras_dlpa.matching import solve_assignment
from keras_dlpa.prototype_classifier import PrototypeClassifier
from keras_dlpa.prototype_layer import PrototypeLayer
from keras_dlpa.prototype_layer import find_prototype_layer
from keras_dlpa.prototypes import cached_prototypes
from keras_dlpa.prototypes import estimate_prototypes
from keras_dlpa.prototypes import load_prototypes
from keras_dlpa.prototypes import prototype_quality
from keras_dlpa.prototypes import save_prototypes
from keras_dlpa.prototypes import simplex_etf
from keras_dlpa.reassign_callback import ReassignCallback
from keras_dlpa.schedules import WarmupCosine
from keras_dlpa.schedules import WarmupMultiStep
from keras_dlpa.softmax_prototypes import softmax_prototypes
from keras_dlpa.uniformity_regularizer import UniformityRegularizer
from keras_dlpa.uniformity_regularizer import hyperspherical_uniformity

__version__ = "0.1.0"

__all__ = [
    "DeadlineCallback",
    "DivergenceCallback",
    "EvaluationCallback",
    "IPMLoss",
    "PrototypeClassifier",
    "PrototypeLayer",
    "ReassignCallback",
    "TrainingDiverged",
    "UniformityRegularizer",
    "WarmupCosine",
    "WarmupMultiStep",
    "cached_prototypes",
    "classification_metrics",
    "estimate_prototypes",
    "find_prototype_layer",
    "format_metrics_table",
    "hyperspherical_uniformity",
    "ipm_loss",
    "load_prototypes",
    "merge_statistics",
    "models",
    "prototype_quality",
    "save_prototypes",
    "shot_groups",
    "simplex_etf",
    "softmax_prototypes",
    "solve_assignment",
]
