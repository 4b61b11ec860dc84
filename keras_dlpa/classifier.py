"""Classifier assembly per method (function API over `keras_dlpa.methods`).

Methods: `"dl2pa"`, `"static"`, `"etf"`, `"softmax"` and the Table 8
ablations `"psc_star"`, `"ours_star"` (which needs `prototypes`); each is a
`keras_dlpa.methods.Method` object, and the functions here are the
function-style entry points to it.
"""

from __future__ import annotations

import keras
import numpy as np

from keras_dlpa.methods import METHODS
from keras_dlpa.methods import PROTOTYPE_METHODS
from keras_dlpa.methods import get_method
from keras_dlpa.models.projection import project_features

__all__ = [
    "METHODS",
    "PROTOTYPE_METHODS",
    "build_classifier",
    "check_method",
    "classifier_loss",
    "classifier_metrics",
    "method_callbacks",
    "method_prototypes",
    "project_features",
]


def check_method(method: str) -> str:
    """Returns `method` if it is one of `METHODS`, else raises."""
    return get_method(method).name


def method_prototypes(
    method: str, num_classes: int, dim: int, seed: int = 0, cache_dir=None
) -> np.ndarray | None:
    """Fixed prototypes `(c, d)` of `method`, or `None` for `"softmax"`."""
    return get_method(method).prototypes(num_classes, dim, seed, cache_dir)


def build_classifier(
    backbone: keras.Model,
    num_classes: int,
    method: str = "dl2pa",
    prototypes: np.ndarray | None = None,
    weight_decay: float = 0.0,
    initial_assignment="identity",
    seed: int = 0,
    name: str | None = None,
) -> keras.Model:
    """Puts the classification head of `method` on a feature backbone.

    Args:
        backbone: functional model, images `(B, H, W, C)` -> `(B, d)`.
        num_classes: `c`.
        method: one of `METHODS`.
        prototypes: `(c, d)` prototypes for the prototype methods; made
            with `method_prototypes(method, c, d, seed)` when `None`
            (`"ours_star"` needs them: `softmax_prototypes(run)`).
        weight_decay: coupled L2 of the softmax head (`Dense(c)`).
        initial_assignment: `PrototypeLayer` initial assignment.
        seed: prototype seed (when `prototypes` is `None`).
        name: model name; default `f"{method}_classifier"`.

    Returns:
        A functional `keras.Model`: images -> `(B, c)` logits in label order
        (cosines for the prototype methods). The head is the layer named
        `"prototypes"` (a `PrototypeLayer`) or `"logits"` (`Dense`).
    """
    outputs = get_method(method).head(
        backbone.outputs[0],
        num_classes,
        prototypes=prototypes,
        weight_decay=weight_decay,
        initial_assignment=initial_assignment,
        seed=seed,
    )
    return keras.Model(
        backbone.input, outputs, name=name or f"{method}_classifier"
    )


def classifier_loss(
    method: str, class_scale: bool = False, soft_labels: bool = False
) -> keras.losses.Loss:
    """The training loss of `method` (`Method.loss`)."""
    return get_method(method).loss(class_scale, soft_labels)


def classifier_metrics(num_classes: int, soft_labels: bool = False) -> list:
    """Training metrics `accuracy` and `top5` (top-`min(5, c)`)."""
    return get_method("softmax").metrics(num_classes, soft_labels)


def method_callbacks(method: str, **reassign_kwargs) -> list:
    """Callbacks `method` needs (`Method.callbacks`)."""
    return get_method(method).callbacks(**reassign_kwargs)
