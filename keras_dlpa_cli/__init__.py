"""The `keras-dlpa` console script: a dispatcher outside `keras_dlpa`.

`import keras_dlpa` imports Keras (it registers the library's layers so
that `keras.saving.load_model` needs no `custom_objects`), and importing
any `keras_dlpa.*` module runs it first. The console script therefore
lives in this separate top-level package, which imports nothing heavy:

- `keras-dlpa predict MODEL IMAGES...` with an ONNX model (a `.onnx` file
  or a Triton model folder) runs `keras_dlpa/export/onnx_client.py`,
  loaded by file path like `export/onnx_predict.py` does: numpy, pillow
  and onnxruntime only, neither Keras nor TensorFlow nor JAX;
- everything else (other commands and model kinds, `--help`, command
  lines that do not parse) goes to `keras_dlpa.cli.main`, unchanged.

`python -m keras_dlpa_cli` is the same; `python -m keras_dlpa` runs the
package's `__init__` first, so it always imports Keras.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from pathlib import Path


class _NotFastPath(Exception):
    """The command line is not one the Keras-free path takes."""


class _Parser(argparse.ArgumentParser):
    """Raises instead of printing usage and exiting: the full CLI then
    parses the same command line and reports the error itself."""

    def error(self, message):
        raise _NotFastPath(message)


def _module(name: str):
    """`keras_dlpa.<name>`, without running `keras_dlpa/__init__.py`.

    When `keras_dlpa` is already imported (e.g. `main` called from Python),
    the package's own module is used; otherwise the file is loaded by path
    under a private name. Only for modules that import no `keras_dlpa`.
    """
    if "keras_dlpa" in sys.modules:
        return importlib.import_module(f"keras_dlpa.{name}")
    private = "_keras_dlpa_cli_" + name.replace(".", "_")
    if private in sys.modules:
        return sys.modules[private]
    spec = importlib.util.find_spec("keras_dlpa")  # locates, imports nothing
    if spec is None or not spec.submodule_search_locations:
        raise _NotFastPath("keras_dlpa not found")
    root = Path(list(spec.submodule_search_locations)[0])
    path = root.joinpath(*name.split(".")).with_suffix(".py")
    file_spec = importlib.util.spec_from_file_location(private, path)
    module = importlib.util.module_from_spec(file_spec)
    sys.modules[private] = module  # dataclasses look their module up
    try:
        file_spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[private]
        raise
    return module


def _onnx_predict(argv: list[str]) -> int | None:
    """Runs `predict` on an ONNX model Keras-free; None when not that."""
    traceback = argv[:1] == ["--traceback"]
    rest = argv[1:] if traceback else argv
    if rest[:1] != ["predict"]:
        return None
    try:
        client = _module("export.onnx_client")
        parser = _Parser(prog="keras-dlpa predict", add_help=False)
        parser.add_argument("model")
        client.add_arguments(parser)
        args = parser.parse_args(rest[1:])
        kind, _ = client.resolve_model_path(args.model)
    except (_NotFastPath, FileNotFoundError, ValueError, ImportError):
        return None  # the full CLI reports it (or runs the other kinds)
    if kind != "onnx":
        return None
    errors = _module("cli.errors")
    if traceback:
        os.environ[errors.TRACEBACK_ENV] = "1"
    return errors.run_command(client.run, args, client.load_onnx)


def main(argv: list[str] | None = None) -> int:
    """The `keras-dlpa` console script (see the module docstring)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    code = _onnx_predict(argv)
    if code is not None:
        return code
    from keras_dlpa.cli import main as cli_main

    return cli_main(argv)
