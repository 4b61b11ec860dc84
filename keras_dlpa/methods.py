"""One small object per classification method: DL2PA and its baselines.

Each `Method` answers the five questions a runner asks: the fixed
prototypes, the head on the features, the loss, the training metrics and
the callbacks. `get_method(name)` returns the registered object:

- `"dl2pa"`: estimated prototypes (cached on disk) + `PrototypeLayer` +
  `IPMLoss` + `ReassignCallback` (the dynamic assignment of the paper).
- `"static"`: the same prototypes and loss, assignment frozen.
- `"etf"`: simplex ETF prototypes (needs `d >= c - 1`), frozen assignment.
- `"softmax"`: `Dense(c)` + cross-entropy (the paper's PSC baseline).
- `"psc_star"`: PSC* of paper Table 8, the softmax head with
  `1e-2 x L_uni` (the Gaussian-potential uniformity of Eq. 4 on its unit
  class weight vectors, `UniformityRegularizer`) added to cross-entropy.
- `"ours_star"`: Ours* of paper Table 8, DL2PA (`PrototypeLayer` +
  `IPMLoss` + `ReassignCallback`) on the unit class weights of a trained
  softmax classifier (`softmax_run`: its run directory or `.keras` file,
  read by `keras_dlpa.softmax_prototypes`) instead of the estimated
  prototypes; labels start on their own softmax weights (identity).

The prototype head and the softmax logits compute in float32 under a
mixed-precision policy.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from keras_dlpa.ipm_loss import IPMLoss
from keras_dlpa.models.regularization import coupled_l2
from keras_dlpa.prototype_layer import PrototypeLayer
from keras_dlpa.prototypes import cached_prototypes
from keras_dlpa.prototypes import simplex_etf
from keras_dlpa.reassign_callback import ReassignCallback
from keras_dlpa.softmax_prototypes import softmax_prototypes
from keras_dlpa.uniformity_regularizer import UniformityRegularizer


def _accuracy_metrics(num_classes: int, soft_labels: bool) -> list:
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

        Estimated methods use `cached_prototypes(c, d, "auto", seed)` (the
        simplex ETF when `d >= c - 1`, else the paper's uniformity loss,
        cached on disk); `"etf"` raises when `d < c - 1`; `"ours_star"`
        reads `softmax_prototypes(softmax_run, c, d)` and raises without
        `softmax_run`.
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
        """Training metrics `accuracy` and `top5`."""
        return _accuracy_metrics(num_classes, soft_labels)

    def callbacks(self, **reassign_kwargs) -> list:
        """`[ReassignCallback(...)]` for a dynamic method, else `[]`.

        Put them before checkpointing callbacks.
        """
        if self.dynamic:
            return [ReassignCallback(**reassign_kwargs)]
        return []


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
    """The registered `Method` called `name`, else a clear `ValueError`."""
    if name not in _METHODS:
        raise ValueError(
            f"Argument `method` must be one of {METHODS}. Received: "
            f"method={name!r}"
        )
    return _METHODS[name]
