"""Exact resume of a real (tiny) run interrupted after a checkpoint."""

import json

import keras
import numpy as np
import pytest
from tensorflow.python.framework import config as tf_config

from keras_dlpa import find_prototype_layer
from keras_dlpa.experiment import ExperimentConfig
from keras_dlpa.experiment import run_experiment

NUM_CLASSES = 8
EPOCHS = 3


class Interrupt(Exception):
    pass


class StopAfterEpoch(keras.callbacks.Callback):
    """Raises at the end of `epoch`, after the checkpoint was written."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise Interrupt(f"interrupted after epoch {epoch}")


class StateRecorder(keras.callbacks.Callback):
    """Snapshots the full training state at epoch begin and end."""

    def __init__(self):
        super().__init__()
        self.begin, self.end = {}, {}

    def _state(self):
        model = self.model
        layer = find_prototype_layer(model)
        optimizer = model.optimizer
        to_np = keras.ops.convert_to_numpy
        return {
            "weights": [np.array(w) for w in model.get_weights()],
            "optimizer": [to_np(v).copy() for v in optimizer.variables],
            "iterations": int(to_np(optimizer.iterations)),
            "learning_rate": float(to_np(optimizer.learning_rate)),
            "assignment": to_np(layer.assignment).copy(),
            "representatives": to_np(layer.representatives).copy(),
            "observed": to_np(layer.observed).copy(),
        }

    def on_epoch_begin(self, epoch, logs=None):
        self.begin[epoch] = self._state()

    def on_epoch_end(self, epoch, logs=None):
        self.end[epoch] = self._state()


@pytest.fixture
def deterministic():
    was_enabled = tf_config.is_op_determinism_enabled()
    yield
    if not was_enabled:
        tf_config.disable_op_determinism()


def _dataset(path):
    # Class-dependent colour, so features and the assignment evolve.
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(NUM_CLASSES), 24)
    colours = rng.uniform(40, 215, size=(NUM_CLASSES, 3))
    images = colours[labels][:, None, None, :] + rng.normal(
        0, 30, size=(labels.size, 16, 16, 3)
    )
    images = np.clip(images, 0, 255).astype("uint8")
    np.savez(path, images=images, labels=labels)
    return path


def _config(tmp_path, out, resume=False):
    return ExperimentConfig(
        dataset="synthetic",
        source="numpy",
        numpy_path=str(tmp_path / "data.npz"),
        imbalance=0.5,
        val_fraction=0.25,
        method="dl2pa",
        backbone="resnet32_lt_cifar10",
        depth=8,
        width=1,  # d = 4 < c - 1: estimated prototypes, assignment matters
        epochs=EPOCHS,
        batch_size=16,
        learning_rate=0.1,
        warmup_epochs=1,
        milestones=(2,),
        mixup_alpha=1.0,
        out=str(tmp_path / out),
        resume=resume,
        seed=3,
        verbose=0,
        deterministic=True,
        report=False,
    )


def _assert_same_state(a, b):
    for key in ("iterations", "learning_rate"):
        assert a[key] == b[key], key
    for key in ("assignment", "representatives", "observed"):
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    for x, y in zip(a["weights"], b["weights"]):
        np.testing.assert_array_equal(x, y)
    assert len(a["optimizer"]) == len(b["optimizer"])
    for x, y in zip(a["optimizer"], b["optimizer"]):
        np.testing.assert_array_equal(x, y)


@pytest.mark.large
def test_interrupted_run_resumes_exactly(tmp_path, monkeypatch, deterministic):
    monkeypatch.setenv("KERAS_DLPA_CACHE", str(tmp_path / "cache"))
    _dataset(tmp_path / "data.npz")

    full = StateRecorder()
    run_experiment(_config(tmp_path, "full"), callbacks=[full])
    keras.backend.clear_session()

    with pytest.raises(Interrupt):
        run_experiment(_config(tmp_path, "cut"), callbacks=[StopAfterEpoch(1)])
    keras.backend.clear_session()
    cut_dir = tmp_path / "cut"
    metadata = json.loads(
        (cut_dir / "checkpoints" / "training_metadata.json").read_text()
    )
    assert metadata["epoch"] == 2
    assert not (cut_dir / "model.keras").exists()

    # Without --resume the existing run is protected.
    with pytest.raises(FileExistsError, match="resume"):
        run_experiment(_config(tmp_path, "cut"))
    keras.backend.clear_session()

    resumed = StateRecorder()
    run_experiment(_config(tmp_path, "cut", resume=True), callbacks=[resumed])

    # Only epoch 2 ran; it started from exactly the state that the
    # uninterrupted run had at the end of epoch 1.
    assert sorted(resumed.begin) == [2]
    _assert_same_state(resumed.begin[2], full.end[1])
    assert resumed.begin[2]["learning_rate"] == pytest.approx(0.01)
    # The batches are keyed by (seed, epoch): the end state is identical.
    _assert_same_state(resumed.end[2], full.end[2])
    # The assignment did change during training (it is really restored).
    assert not np.array_equal(
        full.begin[0]["assignment"], full.end[2]["assignment"]
    ) or not np.array_equal(
        full.begin[0]["representatives"], full.end[2]["representatives"]
    )

    rows_full = json.loads((tmp_path / "full" / "metrics.json").read_text())
    rows_cut = json.loads((cut_dir / "metrics.json").read_text())
    assert [r["epoch"] for r in rows_cut] == [0, 1, 2]
    for a, b in zip(rows_full, rows_cut):
        a.pop("epoch_time_s")
        b.pop("epoch_time_s")
        assert a == b
    csv_lines = (cut_dir / "metrics.csv").read_text().strip().splitlines()
    assert len(csv_lines) == 1 + EPOCHS

    eval_full = json.loads((tmp_path / "full" / "evaluation.json").read_text())
    eval_cut = json.loads((cut_dir / "evaluation.json").read_text())
    for key in ("last", "best"):
        assert eval_full[key] == eval_cut[key]
    state = np.load(cut_dir / "final_state.npz")
    np.testing.assert_array_equal(
        state["assignment"], full.end[2]["assignment"]
    )


def test_resume_of_a_finished_run_only_evaluates(tmp_path, monkeypatch):
    """A finished run resumed again keeps its metrics and final weights."""
    monkeypatch.setenv("KERAS_DLPA_CACHE", str(tmp_path / "cache"))
    _dataset(tmp_path / "data.npz")
    config = _config(tmp_path, "run")
    config.epochs = 1
    config.deterministic = False
    first = run_experiment(config)
    keras.backend.clear_session()
    config.resume = True
    second = run_experiment(config)
    assert first["last"] == second["last"]
    rows = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert [r["epoch"] for r in rows] == [0]
