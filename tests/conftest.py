"""Shared test helpers."""

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Small matrices: multithreaded BLAS is slower and less reproducible.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JAX_CACHE = "JAX_COMPILATION_CACHE_DIR"
# First on a subprocess' PYTHONPATH: `import tensorflow` fails there
# (no_tensorflow/sitecustomize.py; KERAS_DLPA_BLOCK_IMPORTS refuses more).
NO_TF = Path(__file__).with_name("no_tensorflow")
SHARED_DATA = os.path.join(REPO_ROOT, "..", "shared", "data")
# The CIFAR-10 JPEG training split (`train/<class>/*.jpg`, 50,000 images).
CIFAR10_JPEG = Path(SHARED_DATA) / "cifar10-jpeg-train.tar.gz"
# The CIFAR-100 PNG training split (`train/<class>/*.png`, 50,000 images).
CIFAR100_PNG = Path(SHARED_DATA) / "cifar100-png-train.tar.gz"


def _decoded_archive(tmp_path_factory, worker_id, archive, name):
    """A `KERAS_DLPA_CACHE` folder holding `archive` decoded (the library's
    own cache layout), shared by the tests of every xdist worker of the
    session: decoded once, under a file lock."""
    import fcntl

    from keras_dlpa.data import load_image_folder

    assert archive.is_file(), f"shared data missing: {archive}"
    root = tmp_path_factory.getbasetemp()
    if worker_id != "master":  # the workers' temp folders share a parent
        root = root.parent
    folder = root / name
    folder.mkdir(exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("KERAS_DLPA_CACHE", str(folder))
            data = load_image_folder(archive)
    assert len(data) == 50_000
    return folder


@pytest.fixture(scope="session")
def cifar100_cache(tmp_path_factory, worker_id):
    """A `KERAS_DLPA_CACHE` folder holding the decoded CIFAR-100 archive
    (its 50,000 PNGs decode in about 17 s)."""
    return _decoded_archive(
        tmp_path_factory, worker_id, CIFAR100_PNG, "cifar100-cache"
    )


@pytest.fixture(scope="session")
def cifar10_cache(tmp_path_factory, worker_id):
    """A `KERAS_DLPA_CACHE` folder holding the decoded CIFAR-10 archive
    (its 50,000 JPEGs decode in about 20 s)."""
    return _decoded_archive(
        tmp_path_factory, worker_id, CIFAR10_JPEG, "cifar10-cache"
    )


def backend_env(backend="tensorflow", cache=None, **extra):
    """The environment of a subprocess on Keras backend `backend`: a JAX or
    PyTorch one cannot import TensorFlow, as where it is not installed, and
    a PyTorch one not JAX either. `cache`: its `KERAS_DLPA_CACHE`."""
    env = dict(os.environ, **extra)
    env["KERAS_BACKEND"] = backend
    paths = [REPO_ROOT]
    if backend in ("jax", "torch"):
        paths.insert(0, str(NO_TF))
    if backend == "torch":
        env["KERAS_DLPA_BLOCK_IMPORTS"] = "jax,jaxlib"
    if cache is not None:
        env["KERAS_DLPA_CACHE"] = str(cache)
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def free_ports(count: int) -> list[int]:
    """`count` distinct free TCP ports on 127.0.0.1 (for worker clusters)."""
    import socket

    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def image_folder(
    root, num_classes, per_class, size=32, ext="png", seed=0, counts=None
):
    """Writes `root/classKK/III.ext`: noisy single-colour images, one
    colour per class; `counts` (one per class) overrides `per_class`."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    counts = [per_class] * num_classes if counts is None else counts
    for k, count in enumerate(counts):
        folder = root / f"class{k:02d}"
        folder.mkdir(parents=True)
        colour = rng.uniform(30, 220, size=3)
        for i in range(count):
            pixels = colour + rng.normal(0, 25, size=(size, size, 3))
            image = Image.fromarray(np.clip(pixels, 0, 255).astype("uint8"))
            image.save(folder / f"{i:03d}.{ext}")
    return root


def unit_rows(num_rows: int, dim: int, seed: int = 0) -> np.ndarray:
    """Random unit vectors `(num_rows, dim)` float32."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(num_rows, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype("float32")


def gradient(fn, x):
    """d sum(fn(x)) / dx with the active Keras backend, as numpy."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.reduce_sum(fn(x))
        return tape.gradient(y, x).numpy()
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        return np.asarray(jax.grad(lambda v: jnp.sum(fn(v)))(jnp.asarray(x)))
    if backend == "torch":
        import torch

        x = torch.tensor(np.asarray(x), requires_grad=True)
        (grad,) = torch.autograd.grad(torch.sum(fn(x)), x)
        return grad.detach().cpu().numpy()
    pytest.skip(f"no gradient helper for backend {backend}")


# The slowest test files first (measured with `--durations`): with one file
# per xdist worker (`--dist loadfile --no-loadscope-reorder`: xdist would
# otherwise order files by their number of tests, and a long file with few
# tests would start last while the other worker idles), the two workers
# finish at about the same time.
_SLOW_FILES_FIRST = (
    "test_jax_backend.py",
    "test_backends.py",
    "test_streaming.py",
    "test_resume.py",
    "test_recipes.py",
    "test_gpu_campaign.py",
    "test_reproduce.py",
    "test_multihost.py",
    "test_executors.py",
    "test_applications.py",
    "test_wheel_install.py",
    "test_quickstart.py",
    "test_torch_backend.py",
    "test_run_safety.py",
    "test_reassign_callback.py",
    "test_distribute.py",
    "test_table8_methods.py",
    "test_data_sources.py",
    "test_prototype_classifier.py",
    "test_predict.py",
)


def xla_flags(*flags: str) -> str:
    """The session's `XLA_FLAGS` (`pytest_configure`) with `flags` added."""
    return " ".join([os.environ.get("XLA_FLAGS", ""), *flags]).strip()


def pytest_configure(config):
    """One JAX compilation cache for the session's JAX processes: the
    recipe runs, kill/resume runs and workers compile the same train steps
    and initialisers (one initialiser compiles in up to 2 s on CPU). Set
    by the controller; xdist workers and subprocesses inherit it. A
    `JAX_COMPILATION_CACHE_DIR` set beforehand is used and kept.

    XLA's CPU backend compiles without LLVM optimisation
    (`--xla_backend_optimization_level=0`, unless `XLA_FLAGS` sets a
    level): the tests' tiny models spend far longer compiling than running
    (the JAX core run: 180 -> 116 s CPU). The HLO passes and their results'
    semantics are the same; the benchmarks and the GPU box use XLA's
    defaults."""
    if hasattr(config, "workerinput"):
        return
    if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = xla_flags(
            "--xla_backend_optimization_level=0"
        )
    # Cache every compilation, not only those over a second.
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    if JAX_CACHE not in os.environ:
        import tempfile

        config._jax_cache = tempfile.mkdtemp(prefix="keras-dlpa-jax-cache-")
        os.environ[JAX_CACHE] = config._jax_cache


def pytest_unconfigure(config):
    folder = getattr(config, "_jax_cache", None)
    if folder:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop(JAX_CACHE, None)


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(_SLOW_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
