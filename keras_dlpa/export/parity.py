"""Parity check: Keras vs SavedModel vs ONNX Runtime on one batch."""

from __future__ import annotations

import keras
import numpy as np

from keras_dlpa.checks import check_number
from keras_dlpa_serving import onnx_client

INT8_MIN_AGREEMENT = 0.9
INT8_TOLERANCE = 0.05


class ParityError(RuntimeError):
    """An exported model disagrees with the Keras model beyond tolerance."""


def random_images(shape, batch_size: int = 8, seed: int = 0) -> np.ndarray:
    """Seeded random 0-255 integer-valued images `(B, H, W, C)` float32."""
    if None in tuple(shape):
        raise ValueError(
            f"The model input {tuple(shape)} has an unknown height/width; "
            "pass parity images of the size to check."
        )
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(batch_size, *shape)).astype("float32")


def _compare(got, ref_logits, tolerance, top_k):
    ref_labels = np.argmax(ref_logits, axis=1)
    logits = np.asarray(got["logits"], "float32")
    if logits.shape != ref_logits.shape:
        error = f"logits shape {logits.shape} != {ref_logits.shape}"
        return {"passed": False, "error": error}
    labels = np.asarray(got["label"]).reshape(-1).astype("int64")
    rows = np.arange(len(labels))
    # A label differing from argmax only counts when the two reference
    # cosines are further apart than the tolerance (not a numerical tie).
    gap = ref_logits[rows, ref_labels] - ref_logits[rows, labels]
    mismatches = int(np.sum((labels != ref_labels) & (gap > tolerance)))
    diff = float(np.max(np.abs(logits - ref_logits)))
    score = np.asarray(got["score"])
    score_diff = float(np.max(np.abs(score - ref_logits.max(axis=1))))
    result = {
        "max_abs_logit_diff": diff,
        "max_abs_score_diff": score_diff,
        "label_mismatches": mismatches,
        "labels_identical": bool(np.array_equal(labels, ref_labels)),
    }
    if top_k:
        ref_top = -np.sort(-ref_logits, axis=1)[:, :top_k]
        top_scores = np.asarray(got["top_k_scores"])
        top_diff = float(np.max(np.abs(top_scores - ref_top)))
        result["max_abs_top_k_score_diff"] = top_diff
        score_diff = max(score_diff, top_diff)
    close = diff <= tolerance and score_diff <= tolerance
    result["passed"] = bool(mismatches == 0 and close)
    return result


def _run_saved_model(path, images):
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    run = loaded.signatures
    out = {"savedmodel": run["serving_default"](images=tf.constant(images))}
    integers = np.array_equal(images, np.round(images))
    if integers and np.all((images >= 0) & (images <= 255)):
        uint8 = tf.constant(images.astype("uint8"))
        out["savedmodel_uint8"] = run["serving_uint8"](images=uint8)
    return {k: {n: t.numpy() for n, t in v.items()} for k, v in out.items()}


def check_parity(
    model,
    images,
    saved_model_path=None,
    onnx_path=None,
    serving_model=None,
    tolerance: float = 1e-5,
    top_k: int | None = None,
    raise_on_failure: bool = True,
) -> dict:
    """Compares exported models with the Keras model on one batch.

    Each export must give the top-1 labels of `model(images)` (a different
    label only where the two reference cosines tie within `tolerance`) and
    its cosines (logits, scores, top-k scores) within `tolerance`.

    Args:
        model: the trained Keras classifier.
        images: `(B, H, W, C)` raw images.
        saved_model_path: SavedModel directory to check (both signatures;
            `serving_uint8` when the images are integers in 0-255).
        onnx_path: `.onnx` file to check with onnxruntime.
        serving_model: the Keras serving model to check.
        tolerance: max absolute cosine difference (default 1e-5).
        top_k: the exported `k`, if any.
        raise_on_failure: raise `ParityError` when a check fails.

    Returns:
        `{"tolerance", "batch_size", "passed", "backends": {name: result}}`;
        each result has `max_abs_logit_diff`, `label_mismatches`, `passed`.
    """
    check_number("tolerance", tolerance)
    images = np.asarray(images, "float32")
    logits = keras.ops.convert_to_numpy(model(images, training=False))
    ref_logits = np.asarray(logits, "float32")
    outputs = {}
    if serving_model is not None:
        got = serving_model(images, training=False)
        outputs["keras_serving"] = {
            k: keras.ops.convert_to_numpy(v) for k, v in got.items()
        }
    if saved_model_path is not None:
        outputs.update(_run_saved_model(saved_model_path, images))
    if onnx_path is not None:
        session, _ = onnx_client.load_model(onnx_path)
        names = [o.name for o in session.get_outputs()]
        values = session.run(names, {"images": images})
        outputs["onnx"] = dict(zip(names, values))
    backends = {
        name: _compare(got, ref_logits, tolerance, top_k)
        for name, got in outputs.items()
    }
    report = {
        "tolerance": float(tolerance),
        "batch_size": int(images.shape[0]),
        "passed": all(r["passed"] for r in backends.values()),
        "backends": backends,
    }
    if raise_on_failure and not report["passed"]:
        failed = {k: v for k, v in backends.items() if not v["passed"]}
        raise ParityError(
            "Exported model disagrees with the Keras model (tolerance "
            f"{tolerance:g}, {images.shape[0]} images): {failed}"
        )
    return report


def check_int8_parity(
    fp32_path,
    int8_path,
    images,
    min_agreement: float = INT8_MIN_AGREEMENT,
    tolerance: float = INT8_TOLERANCE,
    raise_on_failure: bool = True,
) -> dict:
    """Compares an int8 ONNX model with its float32 source on real images.

    It passes when the top-1 labels agree on at least `min_agreement` of
    `images` and the mean |cosine difference| is at most `tolerance`. Use
    held-out real images (noise lies outside the calibrated ranges).

    Args:
        fp32_path: the float32 `.onnx`.
        int8_path: the quantised `.onnx`.
        images: `(B, H, W, C)` raw images.
        min_agreement: minimum fraction of agreeing labels (default 0.9).
        tolerance: maximum mean |cosine difference| (default 0.05).
        raise_on_failure: raise `ParityError` when a check fails.

    Returns:
        `{"label_agreement", "mean_abs_logit_diff", "max_abs_logit_diff",
        "min_agreement", "tolerance", "batch_size", "passed"}`.
    """
    check_number("min_agreement", min_agreement, high=1.0)
    check_number("tolerance", tolerance)
    images = np.asarray(images, "float32")
    ref = onnx_client.onnx_predictor(fp32_path).logits(images)
    got = onnx_client.onnx_predictor(int8_path).logits(images)
    diff = np.abs(got - ref)
    agreement = float(np.mean(got.argmax(axis=1) == ref.argmax(axis=1)))
    report = {
        "label_agreement": agreement,
        "mean_abs_logit_diff": float(diff.mean()),
        "max_abs_logit_diff": float(diff.max()),
        "min_agreement": float(min_agreement),
        "tolerance": float(tolerance),
        "batch_size": int(images.shape[0]),
    }
    passed = agreement >= min_agreement and diff.mean() <= tolerance
    report["passed"] = bool(passed)
    if raise_on_failure and not report["passed"]:
        raise ParityError(
            f"The int8 model disagrees with the float32 model: labels agree "
            f"on {agreement:.1%} of {images.shape[0]} images (need >= "
            f"{min_agreement:.0%}), mean |cosine diff| "
            f"{report['mean_abs_logit_diff']:.4f} (need <= {tolerance:g})."
        )
    return report
