"""The `keras-dlpa` console script: a dispatcher outside `keras_dlpa`.

`import keras_dlpa` imports Keras (it registers the library's layers so
that `keras.saving.load_model` needs no `custom_objects`), and importing
any `keras_dlpa.*` module runs it first. The console script therefore
lives in this separate top-level package, which imports nothing heavy:

- `keras-dlpa predict MODEL IMAGES...` with an ONNX model (a `.onnx` file
  or a Triton model folder) runs `keras_dlpa_serving.onnx_client`, like
  `export/onnx_predict.py` does: numpy, pillow and onnxruntime only,
  neither Keras nor TensorFlow nor JAX;
- everything else (other commands and model kinds, `--help`, command
  lines that do not parse) goes to `keras_dlpa.cli.main`, unchanged.

`errors` (one line instead of a traceback, exit codes) is shared by both
paths: `keras_dlpa.cli` imports it from here.

`python -m keras_dlpa_cli` is the same; `python -m keras_dlpa` runs the
package's `__init__` first, so it always imports Keras.
"""

from __future__ import annotations

import argparse
import os
import sys

from keras_dlpa_cli import errors
from keras_dlpa_serving import onnx_client


class _NotFastPath(Exception):
    """The command line is not one the Keras-free path takes."""


class _Parser(argparse.ArgumentParser):
    """Raises instead of printing usage and exiting: the full CLI then
    parses the same command line and reports the error itself."""

    def error(self, message):
        raise _NotFastPath(message)


def _onnx_predict(argv: list[str]) -> int | None:
    """Runs `predict` on an ONNX model Keras-free; None when not that."""
    traceback = argv[:1] == ["--traceback"]
    rest = argv[1:] if traceback else argv
    if rest[:1] != ["predict"]:
        return None
    try:
        parser = _Parser(prog="keras-dlpa predict", add_help=False)
        parser.add_argument("model")
        onnx_client.add_arguments(parser)
        args = parser.parse_args(rest[1:])
        kind, _ = onnx_client.resolve_model_path(args.model)
    except (_NotFastPath, FileNotFoundError, ValueError):
        return None  # the full CLI reports it (or runs the other kinds)
    if kind != "onnx":
        return None
    if traceback:
        os.environ[errors.TRACEBACK_ENV] = "1"
    return errors.run_command(onnx_client.run, args, onnx_client.load_onnx)


def main(argv: list[str] | None = None) -> int:
    """The `keras-dlpa` console script (see the module docstring)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    code = _onnx_predict(argv)
    if code is not None:
        return code
    from keras_dlpa.cli import main as cli_main

    return cli_main(argv)
