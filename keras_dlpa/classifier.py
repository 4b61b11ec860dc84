"""Classifier assembly per method: DL2PA and its baselines, one code path.

Methods (`METHODS`):

- `"dl2pa"`: estimated prototypes (`keras_dlpa.prototypes.cached_prototypes`,
  so recipes never recompute them) + `PrototypeLayer` + `IPMLoss` +
  `ReassignCallback` (the dynamic assignment of the paper).
- `"static"`: the same prototypes and loss, assignment frozen (no callback).
- `"etf"`: simplex ETF prototypes (needs `d >= c - 1`), frozen assignment.
- `"softmax"`: `Dense(c)` + cross-entropy (the paper's PSC baseline);
  categorical cross-entropy for soft (mixup) labels.
"""

from __future__ import annotations

import keras
import numpy as np

from keras_dlpa.ipm_loss import IPMLoss
from keras_dlpa.models.cifar_resnet import coupled_l2
from keras_dlpa.models.projection import project_features  # noqa: F401
from keras_dlpa.prototype_layer import PrototypeLayer
from keras_dlpa.prototypes import cached_prototypes
from keras_dlpa.prototypes import simplex_etf
from keras_dlpa.reassign_callback import ReassignCallback

METHODS = ("dl2pa", "static", "etf", "softmax")
PROTOTYPE_METHODS = ("dl2pa", "static", "etf")


def check_method(method: str) -> str:
    """Returns `method` if it is one of `METHODS`, else raises."""
    if method not in METHODS:
        raise ValueError(
            f"Argument `method` must be one of {METHODS}. Received: "
            f"method={method!r}"
        )
    return method


def method_prototypes(
    method: str,
    num_classes: int,
    dim: int,
    seed: int = 0,
    cache_dir=None,
) -> np.ndarray | None:
    """Fixed prototypes `(c, d)` for `method`, or `None` for `"softmax"`.

    `"dl2pa"` and `"static"` use `cached_prototypes(c, d, "auto", seed)`
    (the simplex ETF when `d >= c - 1`, else estimated by the paper's
    uniformity loss and cached on disk). `"etf"` uses the simplex ETF and
    raises when `d < c - 1`.
    """
    check_method(method)
    if method == "softmax":
        return None
    if method == "etf":
        if dim < num_classes - 1:
            raise ValueError(
                "method='etf' needs a simplex ETF, which exists only for "
                f"d >= c - 1, but d={dim} and c={num_classes} (needs "
                f"d >= {num_classes - 1}). Use method='dl2pa' or 'static' "
                "(estimated prototypes), or a larger `dim`."
            )
        return simplex_etf(num_classes, dim, seed=seed)
    return cached_prototypes(
        num_classes, dim, method="auto", seed=seed, cache_dir=cache_dir
    )


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
            with `method_prototypes(method, c, d, seed)` when `None`.
        weight_decay: coupled L2 of the softmax head (`Dense(c)`).
        initial_assignment: `PrototypeLayer` initial assignment.
        seed: prototype seed (when `prototypes` is `None`).
        name: model name; default `f"{method}_classifier"`.

    Returns:
        A functional `keras.Model`: images -> `(B, c)` logits in label order
        (cosines for the prototype methods). The head is the layer named
        `"prototypes"` (a `PrototypeLayer`) or `"logits"` (`Dense`).
    """
    check_method(method)
    features = backbone.outputs[0]
    dim = int(features.shape[-1])
    if method == "softmax":
        outputs = keras.layers.Dense(
            num_classes,
            kernel_regularizer=coupled_l2(weight_decay),
            bias_regularizer=coupled_l2(weight_decay),
            name="logits",
        )(features)
    else:
        if prototypes is None:
            prototypes = method_prototypes(method, num_classes, dim, seed)
        prototypes = np.asarray(prototypes)
        if prototypes.shape != (num_classes, dim):
            raise ValueError(
                f"Argument `prototypes` must have shape (c, d) = "
                f"({num_classes}, {dim}) to match `num_classes` and the "
                f"backbone's features. Received: shape={prototypes.shape}"
            )
        outputs = PrototypeLayer(
            prototypes,
            initial_assignment=initial_assignment,
            seed=seed,
            name="prototypes",
        )(features)
    return keras.Model(
        backbone.input, outputs, name=name or f"{method}_classifier"
    )


def classifier_loss(
    method: str, class_scale: bool = False, soft_labels: bool = False
) -> keras.losses.Loss:
    """The training loss of `method`.

    Prototype methods: `IPMLoss(class_scale)` (sparse or soft labels).
    Softmax: `SparseCategoricalCrossentropy(from_logits=True)`, or
    `CategoricalCrossentropy(from_logits=True)` when `soft_labels` (mixup).
    """
    check_method(method)
    if method in PROTOTYPE_METHODS:
        return IPMLoss(class_scale=class_scale)
    if soft_labels:
        return keras.losses.CategoricalCrossentropy(from_logits=True)
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def classifier_metrics(num_classes: int, soft_labels: bool = False) -> list:
    """Training metrics `accuracy` and `top5` (top-`min(5, c)`)."""
    k = min(5, num_classes)
    if soft_labels:
        return [
            keras.metrics.CategoricalAccuracy(name="accuracy"),
            keras.metrics.TopKCategoricalAccuracy(k, name="top5"),
        ]
    return [
        keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
        keras.metrics.SparseTopKCategoricalAccuracy(k, name="top5"),
    ]


def method_callbacks(method: str, **reassign_kwargs) -> list:
    """Callbacks `method` needs: `[ReassignCallback(...)]` for `"dl2pa"`.

    Put them before checkpointing callbacks.
    """
    check_method(method)
    if method == "dl2pa":
        return [ReassignCallback(**reassign_kwargs)]
    return []
