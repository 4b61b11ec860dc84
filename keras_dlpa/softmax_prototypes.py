"""Prototypes from a trained softmax classifier (paper Table 8, Ours*)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

LOGITS_LAYER = "logits"


def _model_path(source: Path) -> Path:
    if source.is_file():
        if source.suffix != ".keras":
            raise ValueError(
                "Argument `softmax_run` must be a run directory or a "
                f"`.keras` file. Received: softmax_run={str(source)!r}"
            )
        return source
    if not source.is_dir():
        raise FileNotFoundError(
            f"Argument `softmax_run` does not exist: {str(source)!r}. Pass "
            "the run directory of a finished softmax run (with "
            "`model.keras`) or a `.keras` file; train one first, e.g. "
            "`keras-dlpa train cifar100 --method softmax --out RUN`."
        )
    evaluation = source / "evaluation.json"
    model = source / "model.keras"
    finished = evaluation.is_file() and bool(
        json.loads(evaluation.read_text()).get("completed")
    )
    if not finished or not model.is_file():
        raise FileNotFoundError(
            f"The run directory softmax_run={str(source)!r} holds no finished "
            "run (`evaluation.json` with `completed: true` and "
            "`model.keras`). Finish (resume) that run first, or pass its "
            "`.keras` file to use it as it is."
        )
    return model


def softmax_prototypes(
    softmax_run: str | os.PathLike,
    num_classes: int | None = None,
    dim: int | None = None,
) -> np.ndarray:
    """The unit class weight vectors `(c, d)` of a softmax classifier.

    The kernel `(d, c)` of the `Dense` layer named `"logits"` (the head of
    `method="softmax"` or `"psc_star"`), transposed, rows L2-normalised,
    bias ignored: the prototypes of the paper's Ours* ablation.

    Args:
        softmax_run: a finished run directory (`model.keras`, and
            `evaluation.json` with `completed: true`) or a `.keras` file.
        num_classes: expected `c` (checked when given).
        dim: expected `d` (checked when given).

    Returns:
        float32 array `(c, d)` with unit rows.
    """
    import keras

    path = _model_path(Path(softmax_run))
    model = keras.saving.load_model(path, compile=False)
    try:
        layer = model.get_layer(LOGITS_LAYER)
    except ValueError:
        layer = None
    if not isinstance(layer, keras.layers.Dense):
        raise ValueError(
            f"The model in softmax_run={str(softmax_run)!r} has no Dense "
            f"layer named {LOGITS_LAYER!r}, so it is not a softmax "
            "classifier (method 'softmax' or 'psc_star'). Received a model "
            f"with layers ending in {[x.name for x in model.layers[-3:]]}."
        )
    weights = keras.ops.convert_to_numpy(layer.kernel).astype("float64").T
    c, d = weights.shape
    if (num_classes is not None and c != num_classes) or (
        dim is not None and d != dim
    ):
        raise ValueError(
            f"The softmax classifier in softmax_run={str(softmax_run)!r} has "
            f"c={c} classes and d={d} features, but this model needs "
            f"c={num_classes} and d={dim}. Use a softmax run of the same "
            "dataset (classes) and `dim`."
        )
    norms = np.linalg.norm(weights, axis=1, keepdims=True)
    if not np.all(np.isfinite(weights)) or np.any(norms == 0):
        raise ValueError(
            f"The softmax weights in softmax_run={str(softmax_run)!r} have "
            "zero or non-finite class vectors; they cannot be prototypes."
        )
    return (weights / norms).astype("float32")
