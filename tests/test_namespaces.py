"""One namespace rule: explicit imports in every `__init__`, nothing lazy.

Each package `__init__` imports its public names from their modules
(keras-hub style); no module is loaded by file path and no package has a
PEP 562 `__getattr__`. What must stay importable without a heavy
dependency is so because of where it lives:

- `keras_dlpa`, `keras_dlpa.data` and `keras_dlpa.training` import no
  TensorFlow (the tf.data executors are imported from their modules);
- `keras_dlpa_serving` (the ONNX client) and `keras_dlpa_cli` (the console
  script's dispatcher) import neither Keras, TensorFlow nor JAX.
"""

import ast
import importlib
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
from conftest import NO_TF
from conftest import REPO_ROOT

PACKAGES = ("keras_dlpa", "keras_dlpa_cli", "keras_dlpa_serving")


def _python(code, block=""):
    """Runs `code` where importing TensorFlow (and `block`) raises."""
    env = dict(os.environ, KERAS_BACKEND="jax")
    env["PYTHONPATH"] = os.pathsep.join([str(NO_TF), REPO_ROOT])
    env["KERAS_DLPA_BLOCK_IMPORTS"] = block
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
    )


def test_the_blocker_refuses_tensorflow_and_the_named_packages():
    proc = _python("import tensorflow")
    assert proc.returncode != 0 and "blocked: no TensorFlow" in proc.stderr
    proc = _python("import keras", block="keras")
    assert proc.returncode != 0 and "KERAS_DLPA_BLOCK_IMPORTS" in proc.stderr


def test_library_namespaces_import_without_tensorflow():
    code = (
        "import sys\n"
        "import keras_dlpa, keras_dlpa.data, keras_dlpa.training\n"
        "import keras_dlpa_cli, keras_dlpa_serving\n"
        "loaded = [m for m in ('tensorflow', 'keras_dlpa.data.pipeline') "
        "if m in sys.modules]\n"
        "assert not loaded, loaded\n"
        "print(len(keras_dlpa.data.__all__))\n"
    )
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert int(proc.stdout) > 0


def test_serving_client_and_dispatcher_import_without_keras():
    code = (
        "import sys\n"
        "import keras_dlpa_serving, keras_dlpa_cli, keras_dlpa_cli.errors\n"
        "loaded = [m for m in ('keras', 'keras_dlpa', 'jax', 'tensorflow') "
        "if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    proc = _python(code, block="keras,jax")
    assert proc.returncode == 0, proc.stderr[-3000:]


def _package_files():
    root = Path(REPO_ROOT)
    files = [p for name in PACKAGES for p in (root / name).rglob("*.py")]
    assert len(files) > 20  # the scan sees the packages
    return files


def _module_getattr(tree):
    """Module-level definitions of `__getattr__`/`__dir__` (PEP 562)."""
    found = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            found.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = getattr(node, "targets", None) or [node.target]
            found += [
                name.id
                for target in targets
                for name in ast.walk(target)
                if isinstance(name, ast.Name)
            ]
    return [name for name in found if name in ("__getattr__", "__dir__")]


def test_no_module_is_loaded_by_path_or_resolved_lazily():
    offenders = []
    for path in _package_files():
        text = path.read_text()
        relative = path.relative_to(REPO_ROOT)
        for marker in ("spec_from_file_location", "exec_module"):
            if marker in text:
                offenders.append(f"{relative}: {marker}")
        for name in _module_getattr(ast.parse(text)):
            offenders.append(f"{relative}: module-level {name}")
    assert not offenders, offenders


@pytest.mark.parametrize(
    "package",
    [
        "keras_dlpa",
        "keras_dlpa.data",
        "keras_dlpa.export",
        "keras_dlpa.models",
        "keras_dlpa.training",
        "keras_dlpa_serving",
    ],
)
def test_every_exported_name_is_imported_by_the_package(package):
    module = importlib.import_module(package)
    missing = [name for name in module.__all__ if name not in vars(module)]
    assert not missing, missing
    assert len(set(module.__all__)) == len(module.__all__)
    for name in module.__all__:
        if name != "models":  # keras_dlpa.models is a subpackage
            value = vars(module)[name]
            assert not isinstance(value, types.ModuleType), name
