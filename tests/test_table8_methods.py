"""The Table 8 ablations: `psc_star` (softmax + 1e-2 x uniformity of the
class weights) and `ours_star` (DL2PA on a trained softmax's weights)."""

import json
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import image_folder as _image_folder

from keras_dlpa.class_statistics import normalize_rows
from keras_dlpa.matching import solve_assignment
from keras_dlpa.methods import get_method
from keras_dlpa.prototypes import uniformity_loss
from keras_dlpa.reassign_callback import ReassignCallback
from keras_dlpa.softmax_prototypes import softmax_prototypes
from keras_dlpa.training.config import flat_config
from keras_dlpa.uniformity_regularizer import UniformityRegularizer
from keras_dlpa.uniformity_regularizer import hyperspherical_uniformity

C, D = 5, 6


@pytest.fixture(autouse=True)
def _prototype_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_DLPA_CACHE", str(tmp_path / "cache"))


def _numpy_uniformity(kernel, t=2.0):
    """Paper Eq. 4 on the columns of a Dense kernel (d, c), inline."""
    w = kernel.T.astype("float64")
    u = w / np.linalg.norm(w, axis=1, keepdims=True)
    sq = ((u[:, None, :] - u[None, :, :]) ** 2).sum(-1)
    return float(np.log(np.mean(np.exp(-t * sq))))


def _head_model(method):
    inputs = keras.Input((D,))
    outputs = get_method(method).head(inputs, C, weight_decay=0.0)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.SGD(0.5),
        loss=get_method(method).loss(),
    )
    return model


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, D)).astype("float32")
    y = rng.integers(0, C, size=16)
    return x, y


@pytest.mark.core
def test_uniformity_matches_numpy_and_the_prototype_loss():
    rng = np.random.default_rng(1)
    kernel = rng.normal(size=(D, C))
    value = float(hyperspherical_uniformity(kernel.T.astype("float32")))
    assert value == pytest.approx(_numpy_uniformity(kernel), rel=1e-5)
    # The same objective the prototypes are estimated with (pairs="all").
    assert value == pytest.approx(uniformity_loss(kernel.T, pairs="all")[0])
    regularizer = UniformityRegularizer(1e-2, l2=0.5)
    expected = 1e-2 * _numpy_uniformity(kernel) + 0.5 * np.sum(kernel**2)
    got = float(regularizer(keras.ops.convert_to_tensor(kernel, "float32")))
    assert got == pytest.approx(expected, rel=1e-5)
    clone = UniformityRegularizer.from_config(regularizer.get_config())
    assert clone.get_config() == regularizer.get_config()
    with pytest.raises(ValueError, match="strength"):
        UniformityRegularizer(-1.0)


@pytest.mark.core
def test_psc_star_loss_is_cross_entropy_plus_uniformity():
    x, y = _data()
    model = _head_model("psc_star")
    kernel, bias = (keras.ops.convert_to_numpy(v) for v in model.weights)
    logits = x @ kernel + bias
    log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    cross_entropy = -np.mean(log_p[np.arange(len(y)), y])
    expected = cross_entropy + 1e-2 * _numpy_uniformity(kernel)
    loss = model.evaluate(x, y, batch_size=16, verbose=0)
    assert loss == pytest.approx(expected, rel=1e-5)
    # The plain softmax head has the cross-entropy alone.
    plain = _head_model("softmax")
    plain.set_weights(model.get_weights())
    got = plain.evaluate(x, y, batch_size=16, verbose=0)
    assert got == pytest.approx(cross_entropy, rel=1e-5)


@pytest.mark.core
def test_psc_star_gradient_reaches_the_dense_kernel():
    x, y = _data()
    psc, plain = _head_model("psc_star"), _head_model("softmax")
    plain.set_weights(psc.get_weights())
    kernel0 = keras.ops.convert_to_numpy(psc.weights[0]).astype("float64")
    for model in (psc, plain):
        model.train_on_batch(x, y)
    psc_k, psc_b = (keras.ops.convert_to_numpy(v) for v in psc.weights)
    plain_k, plain_b = (keras.ops.convert_to_numpy(v) for v in plain.weights)
    # One SGD step (lr 0.5): the kernels differ by lr x 1e-2 x the
    # analytic gradient of the uniformity loss; the bias does not.
    _, grad_rows = uniformity_loss(kernel0.T, pairs="all")
    np.testing.assert_allclose(
        psc_k - plain_k, -0.5 * 1e-2 * grad_rows.T, atol=2e-6
    )
    assert np.abs(psc_k - plain_k).max() > 1e-4
    np.testing.assert_allclose(psc_b, plain_b, atol=1e-7)


def _train(method, folder, out, *extra, expect=0):
    from keras_dlpa.cli.train import main

    argv = [
        "--method", method, "--epochs", "1", "--depth", "8", "--width", "2",
        "--dim", "6", "--batch-size", "16", "--verbose", "0", "--seed", "1",
        "--no-report", "--image-dir", str(folder), "--out", str(out), *extra,
    ]  # fmt: skip
    assert main(argv, recipe="cifar100") == expect


def test_ours_star_uses_the_softmax_weights_and_reassigns(tmp_path, capsys):
    assert any(
        isinstance(c, ReassignCallback)
        for c in get_method("ours_star").callbacks()
    )
    folder = _image_folder(tmp_path / "train", 4, 12, size=16)
    softmax = tmp_path / "softmax"
    _train("softmax", folder, softmax)
    model = keras.saving.load_model(softmax / "model.keras")
    kernel = keras.ops.convert_to_numpy(model.get_layer("logits").kernel)
    expected = normalize_rows(kernel.T)
    np.testing.assert_allclose(
        softmax_prototypes(softmax, 4, 6), expected, atol=1e-6
    )

    ours = tmp_path / "ours"
    _train("ours_star", folder, ours, "--softmax-run", str(softmax))
    state = np.load(ours / "final_state.npz")
    np.testing.assert_allclose(state["prototypes"], expected, atol=1e-6)
    # The assignment was re-solved from the class statistics (Eq. 9).
    assert state["observed"].min() > 0
    optimum, _ = solve_assignment(
        normalize_rows(state["representatives"]),
        state["prototypes"],
        current=state["assignment"],
    )
    np.testing.assert_array_equal(state["assignment"], optimum)
    # ... and moved off the identity it started from (seeded, 1 epoch).
    assert not np.array_equal(state["assignment"], np.arange(4))
    rows = json.loads((ours / "metrics.json").read_text())
    assert 0.0 < rows[0]["assignment_changed"] <= 1.0
    config = flat_config(json.loads((ours / "config.json").read_text()))
    assert config["softmax_run"] == str(softmax)

    # Clear errors: no run, another d, an unfinished run, no softmax run.
    capsys.readouterr()
    _train("ours_star", folder, tmp_path / "e1", expect=2)
    assert "softmax_run" in capsys.readouterr().err
    missing = tmp_path / "missing"
    _train(
        "ours_star",
        folder,
        tmp_path / "e2",
        "--softmax-run",
        str(missing),
        expect=1,
    )
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(
        ValueError, match=r"c=4 classes and d=6 features.*c=4 and d=7"
    ):
        softmax_prototypes(softmax, 4, 7)
    evaluation = json.loads((softmax / "evaluation.json").read_text())
    (softmax / "evaluation.json").write_text(
        json.dumps({**evaluation, "completed": False})
    )
    with pytest.raises(FileNotFoundError, match="no finished run"):
        softmax_prototypes(softmax)
    softmax_prototypes(softmax / "model.keras", 4, 6)  # a .keras file works
    with pytest.raises(ValueError, match="not a softmax classifier"):
        softmax_prototypes(Path(ours) / "model.keras")
