"""Crash-safe checkpoints: real recipe runs killed with SIGKILL, resumed.

A tiny `recipes/cifar10_lt.py` run (generated image folder, ResNet-8 of
width 1, `--deterministic`) is killed at several moments (mid-epoch, and
during the checkpoint write, made slow through `SLOW_WRITE_ENV`), resumed
with `--resume`, and must end with the same weights, assignment, class
statistics and metrics as an uninterrupted run, with no metrics row lost
or repeated.
"""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import backend_env
from PIL import Image

from keras_dlpa.training.checkpoint import SLOW_WRITE_ENV
from keras_dlpa.training.checkpoint import CheckpointError
from keras_dlpa.training.checkpoint import latest_checkpoint

WORKER = Path(__file__).with_name("resume_worker.py")
EPOCHS = 4


def _images(root, classes=6, per_class=20, size=16):
    rng = np.random.default_rng(0)
    for k in range(classes):
        folder = root / f"c{k}"
        folder.mkdir(parents=True)
        colour = rng.uniform(40, 215, size=3)
        for i in range(per_class):
            pixels = colour + rng.normal(0, 30, size=(size, size, 3))
            Image.fromarray(np.clip(pixels, 0, 255).astype("uint8")).save(
                folder / f"{i:02d}.png"
            )
    return root


def _args(images, out, *extra):
    return [
        "--image-dir", str(images), "--out", str(out),
        "--depth", "8", "--width", "1", "--epochs", str(EPOCHS),
        "--batch-size", "8", "--warmup-epochs", "1", "--milestones", "3",
        "--imbalance", "0.5", "--val-fraction", "0.25", "--seed", "3",
        "--verbose", "0", "--deterministic", "--no-report", *extra,
    ]  # fmt: skip


def _env(tmp_path, **extra):
    """A TensorFlow subprocess' environment, its cache under `tmp_path`."""
    return backend_env(cache=tmp_path / "cache", **extra)


def _run(args, env, timeout=600):
    result = subprocess.run(
        [sys.executable, str(WORKER), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _kill_when(args, env, ready, timeout=600):
    """Starts a run and SIGKILLs it as soon as `ready()` is true."""
    process = subprocess.Popen(
        [sys.executable, str(WORKER), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    start = time.time()
    try:
        while not ready():
            if process.poll() is not None:
                raise AssertionError(
                    "the run ended before the kill: "
                    + process.stderr.read().decode()[-3000:]
                )
            if time.time() - start > timeout:
                raise AssertionError("timed out waiting to kill the run")
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL


def _manifest(run_dir, epoch):
    return run_dir / "checkpoints" / f"epoch-{epoch:06d}.json"


def _rows(run_dir):
    rows = json.loads((run_dir / "metrics.json").read_text())
    for row in rows:
        for key in ("epoch_time_s", "train_time_s"):
            row.pop(key, None)
    return rows


def _final(run_dir):
    import keras

    model = keras.saving.load_model(run_dir / "model.keras", compile=False)
    state = dict(np.load(run_dir / "final_state.npz"))
    return [np.asarray(w) for w in model.get_weights()], state


def _assert_same_run(reference, resumed):
    weights_a, state_a = _final(reference)
    weights_b, state_b = _final(resumed)
    for key in ("assignment", "representatives", "observed"):
        np.testing.assert_array_equal(state_a[key], state_b[key], key)
    assert len(weights_a) == len(weights_b)
    for a, b in zip(weights_a, weights_b):
        np.testing.assert_array_equal(a, b)
    rows = _rows(resumed)
    assert [r["epoch"] for r in rows] == list(range(EPOCHS))
    assert rows == _rows(reference)
    lines = (resumed / "metrics.csv").read_text().strip().splitlines()
    assert len(lines) == 1 + EPOCHS
    a = json.loads((reference / "evaluation.json").read_text())
    b = json.loads((resumed / "evaluation.json").read_text())
    assert a["last"] == b["last"] and a["best"] == b["best"]
    assert b["completed"] is True


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run (and the generated images it reads)."""
    tmp_path = tmp_path_factory.mktemp("resume")
    images = _images(tmp_path / "images")
    out = tmp_path / "reference"
    _run(_args(images, out), _env(tmp_path))
    state = np.load(out / "final_state.npz")
    # The assignment really moved, so restoring it is checked.
    assert not np.array_equal(state["assignment"], np.arange(6))
    return tmp_path, images, out


@pytest.mark.large
def test_killed_mid_epoch_resumes_exactly(reference):
    tmp_path, images, ref = reference
    out = tmp_path / "mid_epoch"
    args = _args(images, out)
    env = _env(tmp_path)
    # Killed during epoch 2 (0-based 1): epoch 1's checkpoint is complete.
    _kill_when(args, env, lambda: _manifest(out, 1).is_file())
    assert not (out / "model.keras").exists()
    # Without --resume the existing run is protected (one-line error).
    result = subprocess.run(
        [sys.executable, str(WORKER), *args],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "--resume" in result.stderr
    assert "Traceback" not in result.stderr
    _run(args + ["--resume"], env)
    _assert_same_run(ref, out)


@pytest.mark.large
def test_killed_between_sparse_checkpoints_resumes_exactly(reference):
    """`--checkpoint-every 2`: killed in epoch 4 (0-based 3), one epoch
    after the checkpoint of epoch 2; the resumed run trains epoch 3 again
    (its metrics row replaced, not repeated) and ends as the uninterrupted
    run (checkpointed every epoch) does."""
    tmp_path, images, ref = reference
    out = tmp_path / "sparse"
    args = _args(images, out, "--checkpoint-every", "2")

    def in_last_epoch():
        rows = out / "metrics.json"
        return rows.is_file() and len(json.loads(rows.read_text())) >= 3

    _kill_when(args, _env(tmp_path), in_last_epoch)
    assert latest_checkpoint(out / "checkpoints")["epoch"] == 2
    assert not _manifest(out, 3).is_file()
    _run(args + ["--resume"], _env(tmp_path))
    assert latest_checkpoint(out / "checkpoints")["epoch"] == EPOCHS
    _assert_same_run(ref, out)


@pytest.mark.large
def test_killed_during_checkpoint_write_falls_back_and_resumes(reference):
    tmp_path, images, ref = reference
    out = tmp_path / "during_write"
    args = _args(images, out)
    checkpoints = out / "checkpoints"

    def writing_second_checkpoint():
        # Epoch 1's checkpoint is complete and epoch 2's weights are being
        # written (the write sleeps before its commit).
        return _manifest(out, 1).is_file() and any(
            checkpoints.glob(".tmp-*.weights.h5")
        )

    slow = _env(tmp_path, **{SLOW_WRITE_ENV: "2"})
    # The first checkpoint is written slowly too: wait for it to commit.
    _kill_when(args, slow, writing_second_checkpoint, timeout=900)
    assert latest_checkpoint(checkpoints)["epoch"] == 1
    _run(args + ["--resume"], _env(tmp_path))
    _assert_same_run(ref, out)
    assert not list(checkpoints.glob(".tmp-*"))


def test_damaged_checkpoints_fall_back_or_fail_clearly(reference, tmp_path):
    import shutil

    _, _, ref = reference
    run = tmp_path / "run"
    shutil.copytree(ref, run)
    checkpoints = run / "checkpoints"
    assert latest_checkpoint(checkpoints)["epoch"] == EPOCHS
    # A manifest cut short: the previous checkpoint is used.
    newest = _manifest(run, EPOCHS)
    newest.write_text(newest.read_text()[:20])
    assert latest_checkpoint(checkpoints)["epoch"] == EPOCHS - 1
    # Truncated weights of that one too: nothing intact is left.
    weights = checkpoints / f"epoch-{EPOCHS - 1:06d}.weights.h5"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="No intact checkpoint") as info:
        latest_checkpoint(checkpoints)
    message = str(info.value)
    assert "cut short" in message and "unreadable manifest" in message
    assert "\n" not in message


def _cli(args, env):
    return subprocess.run(
        [sys.executable, str(WORKER), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _snapshot(run_dir):
    return {
        p.relative_to(run_dir): (p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(run_dir.rglob("*"))
        if p.is_file() and p.name != ".lock"  # the owner's pid
    }


def test_resume_with_other_settings_is_refused_before_writing(
    reference, tmp_path
):
    import shutil

    home, images, ref = reference
    run = tmp_path / "run"
    shutil.copytree(ref, run)
    before = _snapshot(run)
    other = tmp_path / "other-images"
    shutil.copytree(images, other)
    args = _args(other, run, "--resume", "--epochs", str(EPOCHS + 2))
    args += ["--seed", "5", "--method", "static", "--dim", "8"]
    result = _cli(args, _env(home))
    assert result.returncode == 2, result.stderr[-3000:]
    (err,) = [x for x in result.stderr.splitlines() if "error:" in x]
    for named in ("seed: 3 -> 5", "method: 'dl2pa' -> 'static'", "dim: "):
        assert named in err, err
    assert "image_dir" in err and "epochs" not in err.split("Only")[0]
    assert _snapshot(run) == before  # nothing in the directory written


@pytest.mark.large
def test_a_run_directory_with_a_flat_config_json_resumes(reference, tmp_path):
    """Run directories written before the config was nested hold a flat
    `config.json` (every field at top level): they resume, and the
    resumed run writes the nested one."""
    import shutil

    from keras_dlpa.training.config import flat_config

    home, images, ref = reference
    run = tmp_path / "run"
    shutil.copytree(ref, run)
    path = run / "config.json"
    nested = json.loads(path.read_text())
    assert nested["optimisation"]["epochs"] == EPOCHS
    path.write_text(json.dumps(flat_config(nested)))
    refused = _cli(_args(images, run, "--resume", "--seed", "4"), _env(home))
    assert refused.returncode == 2 and "seed: 3 -> 4" in refused.stderr
    more = str(EPOCHS + 1)
    _run(_args(images, run, "--resume", "--epochs", more), _env(home))
    assert [r["epoch"] for r in _rows(run)] == list(range(EPOCHS + 1))
    assert json.loads(path.read_text())["optimisation"]["epochs"] == EPOCHS + 1
