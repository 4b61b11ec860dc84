"""Issue #21: nothing silently lost or mixed.

Bad settings exit 2 with one line, a failed start leaves no run
directory, a run directory has one owner, one small class cannot shrink
every class unnoticed, divergence stops every method with one line and no
NaN model, and a deadline that has passed trains nothing (the sweep's
side of this, `keras_dlpa_paper.sweep`: tests/test_sweep.py).
"""

import json
import re
import time

import keras
import numpy as np
import pytest
from conftest import image_folder
from conftest import unit_rows

import keras_dlpa
from keras_dlpa import DeadlineCallback
from keras_dlpa import DivergenceCallback
from keras_dlpa.cli.train import main
from keras_dlpa.data.image_data import ImageData
from keras_dlpa.training.config import ExperimentConfig
from keras_dlpa.training.run_dir import RunDirInUse
from keras_dlpa.training.run_dir import RunDirLock
from keras_dlpa.training.sources import splits_with_report

TINY = [
    "--depth", "8", "--width", "2", "--epochs", "1", "--batch-size", "8",
    "--warmup-epochs", "0", "--milestones", "1", "--verbose", "0",
    "--no-report", "--val-fraction", "0.25",
]  # fmt: skip


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return image_folder(
        tmp_path_factory.mktemp("safety") / "train", 4, 12, size=16
    )


def _cli(capsys, *argv):
    """`recipes/cifar10_lt.py ARGV` in this process: (code, stderr)."""
    capsys.readouterr()
    code = main(list(argv), recipe="cifar10_lt")
    return code, capsys.readouterr().err.strip()


@pytest.mark.parametrize(
    "flags, named",
    [
        (["--dim", "0"], "`dim`"),
        (["--lr", "nan"], "`learning_rate`"),
        (["--weight-decay", "-1"], "`weight_decay`"),
        (["--loss-scale", "0"], "`loss_scale`"),
        (["--method", "softmax", "--loss-scale", "2"], "`loss_scale`"),
    ],
)
def test_bad_settings_exit_2_with_one_line(
    flags, named, folder, tmp_path, capsys
):
    out = tmp_path / "run"
    code, err = _cli(
        capsys, "--image-dir", str(folder), "--out", str(out), *flags
    )
    assert code == 2, err
    assert named in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_resume_of_nothing_exits_2_and_creates_nothing(
    folder, tmp_path, capsys
):
    out = tmp_path / "typo"
    code, err = _cli(
        capsys, "--image-dir", str(folder), "--out", str(out), "--resume"
    )
    assert code == 2 and "Nothing to resume" in err, err
    assert not out.exists()


def test_failed_start_leaves_no_run_directory(tmp_path, capsys):
    out = tmp_path / "run"
    code, err = _cli(
        capsys, "--image-dir", str(tmp_path / "missing"), "--out", str(out)
    )
    assert code == 1 and "not found" in err, err
    assert not out.exists()


def test_a_second_owner_is_refused_and_a_dead_ones_lock_is_not(
    folder, tmp_path, capsys
):
    out = tmp_path / "run"
    with RunDirLock(out):
        code, err = _cli(
            capsys, "--image-dir", str(folder), "--out", str(out), *TINY
        )
        assert code == 1, err
        assert "in use by another process" in err and "pid" in err
        assert len(err.splitlines()) == 1
        with pytest.raises(RunDirInUse):
            RunDirLock(out).acquire()
        assert sorted(p.name for p in out.iterdir()) == [".lock"]
    # The lock file outlives its owner; the lock does not.
    assert (out / ".lock").is_file()
    RunDirLock(out).acquire().release()


def _data(counts):
    labels = np.repeat(np.arange(len(counts)), counts)
    images = np.zeros((labels.size, 4, 4, 3), np.uint8)
    return ImageData(images, labels, [f"c{k}" for k in range(len(counts))])


def test_one_small_class_cannot_shrink_every_class():
    data = _data([30, 30, 30, 2])
    config = ExperimentConfig.from_dict(dict(imbalance=1.0, val_fraction=0.5))
    with pytest.raises(ValueError, match="smallest class, 'c3'") as info:
        splits_with_report(data, config)
    assert "--allow-data-drop" in str(info.value)
    allowed = config.replace(allow_data_drop=True)
    train, _, report = splits_with_report(data, allowed)
    assert train.class_counts().tolist() == [1, 1, 1, 1]
    assert report["before_profile"] == [15, 15, 15, 1]
    assert report["lost_per_class"] == [14, 14, 14, 0]
    assert report["lost_to_smallest_class"] == 42
    # The profile's own drops are not a loss.
    lt = config.replace(imbalance=0.1)
    train, _, report = splits_with_report(_data([30] * 4), lt)
    assert report["lost_to_smallest_class"] == 0
    assert train.class_counts().tolist() == [15, 6, 3, 1]


@pytest.mark.parametrize("method", ["softmax", "dl2pa"])
def test_divergence_stops_every_method_with_one_line(
    method, folder, tmp_path, capsys
):
    out = tmp_path / method
    code, err = _cli(
        capsys,
        *("--image-dir", str(folder), "--out", str(out), *TINY),
        *("--method", method, "--lr", "1e30", "--epochs", "2"),
    )
    assert code == 1, err
    assert re.search(r"Training diverged in epoch \d: ", err), err
    assert "learning rate" in err
    assert "Labels" not in err and len(err.splitlines()) == 1
    assert not (out / "model.keras").exists()
    assert not (out / "evaluation.json").exists()


def test_a_passed_deadline_trains_nothing(folder, tmp_path, capsys):
    out = tmp_path / "run"
    code, err = _cli(
        capsys,
        *("--image-dir", str(folder), "--out", str(out), *TINY),
        *("--time-limit", "0.001", "--epochs", "3", "--imbalance", "0.5"),
    )
    assert code == 0, err
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert evaluation["completed"] is False
    assert evaluation["epochs_done"] == 0
    assert not (out / "metrics.json").exists()
    # The run records what the profile kept.
    report = json.loads((out / "config.json").read_text())["data_report"]
    assert report["before_profile"] == [9, 9, 9, 9]
    assert report["after_profile"] == [9, 7, 5, 4]
    assert report["lost_to_smallest_class"] == 0


@pytest.mark.core
def test_deadline_callback_stops_after_the_last_epoch_that_fits():
    class SlowEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            time.sleep(0.3)

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    # Each epoch takes >= 0.3 s, so a second one would end after the
    # deadline: training stops after epoch 1, which is not the last.
    deadline = DeadlineCallback(time.time() + 0.4, verbose=0)
    history = model.fit(
        np.zeros((4, 2)),
        np.zeros((4, 1)),
        epochs=5,
        verbose=0,
        callbacks=[SlowEpoch(), deadline],
    )
    assert len(history.epoch) == 1
    assert deadline.completed is False and deadline.stopped_epoch == 0


def test_bad_labels_under_xla_are_not_called_divergence():
    model = keras.Sequential(
        [
            keras.Input((3,)),
            keras.layers.Dense(3),
            keras_dlpa.PrototypeLayer(unit_rows(4, 3)),
        ]
    )
    model.compile("sgd", loss=keras_dlpa.IPMLoss(), jit_compile=True)
    with pytest.raises(ValueError, match=r"Labels must be integers in \[0, 4"):
        model.fit(
            np.ones((8, 3), "float32"),
            np.array([0, 1, 2, 3, 0, 1, 2, 9]),
            batch_size=4,
            verbose=0,
            callbacks=[DivergenceCallback(), keras_dlpa.ReassignCallback()],
        )


def test_checkpoint_every_keeps_the_best_epoch_between_checkpoints(tmp_path):
    """`every=3` over 7 epochs: checkpoints after epochs 3, 6 and 7 (the
    last); the best epoch (5, between checkpoints) is written with its own
    weights at the next checkpoint, and the run's weights are untouched."""
    from keras_dlpa.training.checkpoint import RunCheckpoint
    from keras_dlpa.training.checkpoint import latest_checkpoint

    scores = [0.1, 0.5, 0.3, 0.2, 0.6, 0.4, 0.1]
    seen = {}

    class Score(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["val_top1"] = scores[epoch]
            seen[epoch] = [np.array(w) for w in self.model.get_weights()]

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(0).normal(size=(16, 2))
    checkpoint = RunCheckpoint(
        tmp_path / "ckpt", best_path=tmp_path / "best.keras", every=3, keep=5
    )
    after = {}

    class After(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            after[epoch] = [np.array(w) for w in self.model.get_weights()]

    model.fit(
        x,
        x[:, :1],
        epochs=7,
        verbose=0,
        callbacks=[Score(), checkpoint, After()],
    )
    for epoch in range(7):  # writing the best model restored the weights
        for a, b in zip(after[epoch], seen[epoch]):
            np.testing.assert_array_equal(a, b)
    manifests = sorted(p.name for p in (tmp_path / "ckpt").glob("*.json"))
    assert manifests == [
        "epoch-000003.json", "epoch-000006.json", "epoch-000007.json"
    ]  # fmt: skip
    latest = latest_checkpoint(tmp_path / "ckpt")
    assert latest["best"]["epoch"] == 4 and latest["best"]["value"] == 0.6
    assert latest["best"]["file"].endswith("best-000005.keras")
    best = keras.saving.load_model(tmp_path / "best.keras")
    for a, b in zip(best.get_weights(), seen[4]):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(model.get_weights(), seen[6]):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="`every` must be an integer >= 1"):
        RunCheckpoint(tmp_path / "x", every=0)

    class Stop(keras.callbacks.Callback):  # as the deadline does
        def on_epoch_end(self, epoch, logs=None):
            self.model.stop_training = epoch == 3

    stopped = RunCheckpoint(tmp_path / "stop", every=3)
    model.fit(x, x[:, :1], epochs=7, verbose=0, callbacks=[Stop(), stopped])
    manifests = sorted(p.name for p in (tmp_path / "stop").glob("*.json"))
    assert manifests == ["epoch-000003.json", "epoch-000004.json"]


def test_deadline_estimate_leaves_out_the_compiling_first_epoch():
    deadline = DeadlineCallback(time.time() + 100, margin=1.5, verbose=0)
    deadline.durations = [30.0]
    assert deadline.longest == 30.0
    deadline.durations = [30.0, 1.0, 2.0]
    assert deadline.longest == 2.0
