"""One small object per classification method: DL2PA and its baselines.

A `Method` gives the fixed prototypes, the head, the loss, the training
metrics and the callbacks of a run; `get_method(name)` returns it:

- `"dl2pa"`: estimated prototypes + `PrototypeLayer` + `IPMLoss` +
  `ReassignCallback` (the paper's dynamic assignment).
- `"static"`: the same, assignment frozen.
- `"etf"`: simplex ETF prototypes (needs `d >= c - 1`), frozen assignment.
- `"softmax"`: `Dense(c)` + cross-entropy (the paper's PSC baseline).
- `"psc_star"`: PSC* of paper Table 8, softmax + `1e-2 x L_uni`
  (`UniformityRegularizer`) on its class weights.
- `"ours_star"`: Ours* of paper Table 8, DL2PA on the unit class weights of
  a trained softmax classifier (`softmax_run`), labels starting on their
  own weights.

Heads compute in float32 under a mixed-precision policy.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from keras_dlpa.checks import check_choice
from keras_dlpa.ipm_loss import IPMLoss
from keras_dlpa.models.regularization import coupled_l2
from keras_dlpa.prototype_layer import PrototypeLayer
from keras_dlpa.prototypes import cached_prototypes
from keras_dlpa.prototypes import simplex_etf
from keras_dlpa.reassign_callback import ReassignCallback
from keras_dlpa.softmax_prototypes import softmax_prototypes
from keras_dlpa.uniformity_regularizer import UniformityRegularizer


@dataclasses.dataclass(frozen=True)
class Method:
    """A classification method (see the module docstring).

    Attributes:
        name: the registered name.
        uses_prototypes: fixed prototypes + `PrototypeLayer` + `IPMLoss`.
        dynamic: the assignment is re-optimised (`ReassignCallback`).
        etf: the prototypes are the simplex ETF.
        from_softmax: the prototypes are the unit class weights of a
            trained softmax classifier (`softmax_run`).
        uniformity: the strength `lambda` of the uniformity regulariser on
            a softmax head's class weights (0: none).
    """

    name: str
    uses_prototypes: bool = True
    dynamic: bool = False
    etf: bool = False
    from_softmax: bool = False
    uniformity: float = 0.0

    def prototypes(
        self,
        num_classes: int,
        dim: int,
        seed: int = 0,
        cache_dir=None,
        softmax_run=None,
    ) -> np.ndarray | None:
        """Fixed prototypes `(c, d)`, or `None` for a softmax head.

        `cached_prototypes(c, d, "auto", seed)`, `simplex_etf` for `"etf"`
        or `softmax_prototypes(softmax_run, c, d)` for `"ours_star"`.
        """
        if not self.uses_prototypes:
            return None
        if self.from_softmax:
            if softmax_run is None:
                raise ValueError(
                    f"method={self.name!r} takes its prototypes from a "
                    "trained softmax classifier: pass `softmax_run` (the "
                    "run directory of a finished softmax run, or its "
                    "`.keras` file; --softmax-run). Received: "
                    "softmax_run=None"
                )
            return softmax_prototypes(softmax_run, num_classes, dim)
        if self.etf:
            if dim < num_classes - 1:
                raise ValueError(
                    "method='etf' needs a simplex ETF, which exists only for "
                    f"d >= c - 1, but d={dim} and c={num_classes} (needs "
                    f"d >= {num_classes - 1}). Use method='dl2pa' or "
                    "'static' (estimated prototypes), or a larger `dim`."
                )
            return simplex_etf(num_classes, dim, seed=seed)
        return cached_prototypes(
            num_classes, dim, method="auto", seed=seed, cache_dir=cache_dir
        )

    def head(
        self,
        features,
        num_classes: int,
        prototypes: np.ndarray | None = None,
        weight_decay: float = 0.0,
        initial_assignment="identity",
        seed: int = 0,
    ):
        """Logits `(B, c)` in label order from features `(B, d)`."""
        dim = int(features.shape[-1])
        if not self.uses_prototypes:
            kernel_regularizer = coupled_l2(weight_decay)
            if self.uniformity:
                # The L2 factor of `coupled_l2(weight_decay)`.
                kernel_regularizer = UniformityRegularizer(
                    self.uniformity, l2=weight_decay / 2.0
                )
            return keras.layers.Dense(
                num_classes,
                kernel_regularizer=kernel_regularizer,
                bias_regularizer=coupled_l2(weight_decay),
                dtype="float32",
                name="logits",
            )(features)
        if prototypes is None:
            # ours_star raises here: its prototypes need `softmax_run`.
            prototypes = self.prototypes(num_classes, dim, seed)
        prototypes = np.asarray(prototypes)
        if prototypes.shape != (num_classes, dim):
            raise ValueError(
                f"Argument `prototypes` must have shape (c, d) = "
                f"({num_classes}, {dim}) to match `num_classes` and the "
                f"backbone's features. Received: shape={prototypes.shape}"
            )
        return PrototypeLayer(
            prototypes,
            initial_assignment=initial_assignment,
            seed=seed,
            dtype="float32",
            name="prototypes",
        )(features)

    def loss(
        self,
        class_scale: bool = False,
        soft_labels: bool = False,
        scale: float = 1.0,
    ) -> keras.losses.Loss:
        """`IPMLoss(class_scale, scale=scale)` or (soft) cross-entropy from
        logits (`scale` must then be 1: it is the IPM loss's factor)."""
        if self.uses_prototypes:
            return IPMLoss(class_scale=class_scale, scale=scale)
        if scale != 1.0:
            raise ValueError(
                "`loss_scale` multiplies the IPM loss of the prototype "
                f"methods {PROTOTYPE_METHODS}; method {self.name!r} uses "
                f"cross-entropy. Received: loss_scale={scale!r}"
            )
        if soft_labels:
            return keras.losses.CategoricalCrossentropy(from_logits=True)
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def metrics(self, num_classes: int, soft_labels: bool = False) -> list:
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

    def callbacks(self, **reassign_kwargs) -> list:
        """`[ReassignCallback(...)]` for a dynamic method (put it before
        checkpointing callbacks), else `[]`."""
        return [ReassignCallback(**reassign_kwargs)] if self.dynamic else []


_METHODS = {
    "dl2pa": Method("dl2pa", dynamic=True),
    "static": Method("static"),
    "etf": Method("etf", etf=True),
    "softmax": Method("softmax", uses_prototypes=False),
    # Paper Table 8: PSC* = CE + 1e-2 x L_uni; Ours* = DL2PA on the
    # prototypes of a trained softmax classifier.
    "psc_star": Method("psc_star", uses_prototypes=False, uniformity=1e-2),
    "ours_star": Method("ours_star", dynamic=True, from_softmax=True),
}
METHODS = tuple(_METHODS)
PROTOTYPE_METHODS = tuple(n for n, m in _METHODS.items() if m.uses_prototypes)


def get_method(name: str) -> Method:
    """The registered `Method` called `name`."""
    return _METHODS[check_choice("method", name, METHODS)]
