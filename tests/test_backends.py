"""One training path on every backend: the recipes on TensorFlow, on JAX (in
a process where `import tensorflow` fails) and on PyTorch (where neither
TensorFlow nor JAX can be imported); `.keras` files across backends and the
ONNX export of a torch-trained run."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from conftest import backend_env
from conftest import xla_flags
from test_resume import WORKER
from test_resume import _images
from test_resume import _kill_when
from test_resume import _manifest

RUN_FILES = (
    "config.json",
    "metrics.csv",
    "metrics.json",
    "evaluation.json",
    "model.keras",
    "best.keras",
    "final_state.npz",
    "checkpoints/epoch-000002.json",
)


def _args(images, out, *extra):
    return [
        "--image-dir", str(images), "--out", str(out),
        "--depth", "8", "--width", "1", "--epochs", "2",
        "--batch-size", "8", "--warmup-epochs", "1", "--milestones", "1",
        "--imbalance", "0.5", "--val-fraction", "0.25", "--seed", "5",
        "--verbose", "2", "--deterministic", *extra,
    ]  # fmt: skip


def _run(args, env):
    result = subprocess.run(
        [sys.executable, str(WORKER), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _killed_resumes_exactly(images, init, env, full, cut, *resume_extra):
    """A run into `cut`, SIGKILLed after its first epoch's checkpoint and
    resumed (`--resume`, `resume_extra`), ends as the full run `full`."""
    args = _args(images, cut, *init)
    _kill_when(args, env, lambda: _manifest(cut, 1).is_file())
    _run([*args, "--resume", *resume_extra], env)
    a, b = np.load(full / "final_state.npz"), np.load(cut / "final_state.npz")
    for key in ("assignment", "representatives", "observed"):
        np.testing.assert_array_equal(a[key], b[key], key)
    rows = [json.loads((d / "metrics.json").read_text()) for d in (full, cut)]
    assert [r["epoch"] for r in rows[1]] == [0, 1]
    assert [r["loss"] for r in rows[0]] == [r["loss"] for r in rows[1]]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return _images(tmp_path_factory.mktemp("backends") / "images")


@pytest.fixture(scope="module")
def start(images, tmp_path_factory):
    """Initial weights built on TensorFlow, and a full JAX run from them
    in a process where TensorFlow cannot be imported."""
    from keras_dlpa.cli.train import build_parser
    from keras_dlpa.cli.train import config_from_args
    from keras_dlpa.data.stats import channel_stats
    from keras_dlpa.methods import get_method
    from keras_dlpa.training.builder import build_model
    from keras_dlpa.training.sources import load_data
    from keras_dlpa.training.sources import make_splits

    tmp_path = tmp_path_factory.mktemp("start")
    os.environ["KERAS_DLPA_CACHE"] = str(tmp_path / "cache")
    args = build_parser("cifar10_lt").parse_args(
        _args(images, tmp_path / "unused")
    )
    config = config_from_args("cifar10_lt", args)
    train, _ = make_splits(load_data(config)[0], config)
    mean, std = channel_stats(train.images)
    method = get_method(config.model.method)
    # The same initial weights whatever ran before in this worker.
    keras.utils.set_random_seed(config.run.seed)
    model = build_model(
        config, method, train.num_classes, mean, std, train.image_shape
    )
    weights = tmp_path / "init.weights.h5"
    model.save_weights(weights)
    init = ("--init-weights", str(weights))
    env = backend_env("jax", tmp_path / "cache")
    check = subprocess.run(
        [sys.executable, "-c", "import tensorflow"], env=env, text=True,
        capture_output=True,
    )  # fmt: skip
    assert check.returncode != 0 and "blocked" in check.stderr
    full = tmp_path / "jax_full"
    result = _run(_args(images, full, *init), env)
    return tmp_path, init, full, result.stdout


@pytest.fixture(scope="module")
def tf_run(images, start):
    """A TensorFlow run from `start`'s weights."""
    tmp_path, init, _, _ = start
    out = tmp_path / "tensorflow"
    _run(
        _args(images, out, *init, "--no-report"),
        backend_env("tensorflow", tmp_path / "cache"),
    )
    return out


@pytest.fixture(scope="module")
def torch_run(images, start):
    """A full torch run from `start`'s weights, in a process where neither
    TensorFlow nor JAX can be imported."""
    pytest.importorskip("torch")
    tmp_path, init, _, _ = start
    full = tmp_path / "torch_full"
    result = _run(
        _args(images, full, *init), backend_env("torch", tmp_path / "cache")
    )
    return full, result


_PREDICT = """
import sys
import keras
import numpy as np
import keras_dlpa  # registers the classes of model.keras
images, out, *models = sys.argv[1:]
x = np.load(images)
logits = {}
for i, path in enumerate(models):
    model = keras.saving.load_model(path, compile=False)
    logits[str(i)] = keras.ops.convert_to_numpy(model(x, training=False))
np.savez(out, backend=keras.backend.backend(), **logits)
"""


def _predict_on(backend, tmp_path, x, *models):
    """Logits of each `.keras` file loaded in a `backend` process."""
    images = tmp_path / "predict_images.npy"
    np.save(images, x)
    out = tmp_path / f"predict_{backend}.npz"
    result = subprocess.run(
        [sys.executable, "-c", _PREDICT, str(images), str(out)]
        + [str(m) for m in models],
        env=backend_env(backend, tmp_path / "cache"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    saved = np.load(out)
    assert str(saved["backend"]) == backend
    return [saved[str(i)] for i in range(len(models))]


@pytest.mark.large
def test_recipe_on_jax_without_tensorflow_resumes_exactly(images, start):
    tmp_path, init, full, stdout = start
    env = backend_env("jax", tmp_path / "cache")
    assert "Epoch 1/2" in stdout  # per-epoch progress lines
    for name in RUN_FILES:
        assert (full / name).is_file(), name
    assert list((full / "plots").glob("*.png"))
    config = json.loads((full / "config.json").read_text())
    assert config["backend"] == "jax" and config["run"]["executor"] == "grain"
    # Keras runs JAX steps eagerly else.
    assert config["run"]["jit_compile"] is True
    assert "tensorflow_version" not in config
    # Killed after the first epoch's checkpoint, then resumed.
    _killed_resumes_exactly(images, init, env, full, tmp_path / "cut")


@pytest.mark.large
def test_tf_and_jax_from_the_same_weights_agree(start, tf_run):
    _, _, full, _ = start
    out = tf_run
    tf_rows = json.loads((out / "metrics.json").read_text())
    jax_rows = json.loads((full / "metrics.json").read_text())
    assert len(tf_rows) == len(jax_rows) == 2
    # float32 round-off of the two backends grows with each step: over
    # five initial weights the first epoch's losses agreed within 1e-6,
    # the second's within 1.4e-4 (and once 2.2e-3 in CI).
    for (a, b), rel in zip(zip(tf_rows, jax_rows), (1e-4, 1e-2)):
        assert a["loss"] == pytest.approx(b["loss"], rel=rel)
        assert a["assignment_changed"] == b["assignment_changed"]
    configs = [json.loads((d / "config.json").read_text()) for d in (out, full)]
    assert [c["run"]["executor"] for c in configs] == ["tf", "grain"]
    assert [c["run"]["jit_compile"] for c in configs] == [False, True]
    for key in ("train_counts", "channel_mean", "steps_per_epoch"):
        assert configs[0][key] == configs[1][key]


@pytest.mark.large
def test_strategy_flag_maps_to_data_parallel_on_jax(images, tmp_path):
    env = backend_env("jax", tmp_path / "cache")
    env["XLA_FLAGS"] = xla_flags("--xla_force_host_platform_device_count=2")
    out = tmp_path / "dp"
    args = _args(images, out, "--strategy", "mirrored", "--no-report")
    args[args.index("--epochs") + 1] = "1"
    _run(args, env)
    config = json.loads((out / "config.json").read_text())
    assert config["num_replicas"] == 2 and config["backend"] == "jax"
    state = np.load(out / "final_state.npz")
    assert sorted(state["assignment"]) == list(range(6))
    # An uneven split of the global batch is a one-line error.
    bad = _args(images, tmp_path / "bad", "--strategy", "mirrored")
    bad[bad.index("--batch-size") + 1] = "7"
    result = subprocess.run(
        [sys.executable, str(WORKER), *bad],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 1
    assert "divisible by the number of replicas (2)" in result.stderr


@pytest.mark.large
def test_recipe_on_torch_without_tf_and_jax_resumes_exactly(
    images, start, torch_run
):
    tmp_path, init, _, _ = start
    full, result = torch_run
    env = backend_env("torch", tmp_path / "cache")
    assert "Epoch 1/2" in result.stdout
    # grain's import-time probe of the JAX profiler is silenced.
    assert "jax profiler" not in result.stderr, result.stderr[-2000:]
    for name in RUN_FILES:
        assert (full / name).is_file(), name
    assert list((full / "plots").glob("*.png"))
    config = json.loads((full / "config.json").read_text())
    assert config["backend"] == "torch" and config["run"]["executor"] == "grain"
    assert config["run"]["jit_compile"] is False  # torch.compile: opt-in
    assert "tensorflow_version" not in config
    # Killed after the first epoch's checkpoint, then resumed (with a
    # deadline far away: the DeadlineCallback runs and lets it finish).
    cut = tmp_path / "torch_cut"
    deadline = ("--time-limit", "3600")
    _killed_resumes_exactly(images, init, env, full, cut, *deadline)
    evaluation = json.loads((cut / "evaluation.json").read_text())
    assert evaluation["completed"] is True


@pytest.mark.large
def test_keras_files_cross_backends_and_torch_run_exports(
    images, start, tf_run, torch_run, capsys
):
    """TF -> torch and torch -> JAX for a recipe run's `model.keras`
    (torch -> torch is the round trip), then the torch-trained run exported
    to ONNX from this TensorFlow process and run with onnxruntime."""
    import keras
    import onnxruntime as ort

    from keras_dlpa_cli import main as cli_main

    tmp_path = start[0]
    full, _ = torch_run
    x = np.random.default_rng(7).uniform(0, 255, (6, 16, 16, 3))
    x = x.astype("float32")

    def here(path):  # this process: TensorFlow
        model = keras.saving.load_model(path, compile=False)
        return keras.ops.convert_to_numpy(model(x, training=False))

    tf_logits, torch_on_tf = (
        here(tf_run / "model.keras"),
        here(full / "model.keras"),
    )
    on_torch = _predict_on(
        "torch", tmp_path, x, tf_run / "model.keras", full / "model.keras"
    )
    (torch_on_jax,) = _predict_on("jax", tmp_path, x, full / "model.keras")
    np.testing.assert_allclose(on_torch[0], tf_logits, atol=1e-4)
    np.testing.assert_allclose(torch_on_jax, on_torch[1], atol=1e-4)
    np.testing.assert_allclose(torch_on_tf, on_torch[1], atol=1e-4)
    # Export needs TensorFlow (tf2onnx): `keras-dlpa export RUN_DIR` in a
    # TensorFlow process reads the backend-neutral model.keras.
    out = tmp_path / "torch_export"
    rc = cli_main(["export", str(full), "--out", str(out), "--format", "onnx"])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    assert "parity: PASSED" in printed
    session = ort.InferenceSession(
        str(out / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    (name,) = [i.name for i in session.get_inputs()]
    logits = dict(zip(
        [o.name for o in session.get_outputs()], session.run(None, {name: x})
    ))["logits"]  # fmt: skip
    np.testing.assert_allclose(logits, on_torch[1], atol=1e-4)


@pytest.mark.large
def test_torch_refuses_strategy_and_export_with_one_line(
    images, start, torch_run
):
    """`--strategy mirrored` names the backends that can; `keras-dlpa
    export` names the TensorFlow backend it needs."""
    tmp_path, init, _, _ = start
    env = backend_env("torch", tmp_path / "cache")
    args = _args(images, tmp_path / "torch_mirrored", "--strategy", "mirrored")
    export = ["-m", "keras_dlpa_cli", "export", str(torch_run[0])]
    for command, expected in (
        ([str(WORKER), *args], "supported on the TensorFlow and JAX backends"),
        (export + ["--out", str(tmp_path / "no_export")], "KERAS_BACKEND=te"),
    ):
        result = subprocess.run(
            [sys.executable, *command],
            env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert result.returncode in (1, 2), result.stderr[-2000:]
        lines = result.stderr.strip().splitlines()
        assert expected in lines[-1], lines
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "no_export").exists()
