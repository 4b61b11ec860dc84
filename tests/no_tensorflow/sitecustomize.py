"""Makes `import tensorflow` fail, as on a machine without TensorFlow.

Put this directory first on PYTHONPATH of a subprocess: Python imports
`sitecustomize` at start-up, and this one installs a meta-path finder that
refuses TensorFlow and the packages that need it.

`KERAS_DLPA_BLOCK_IMPORTS=keras,jax` (comma-separated top-level names)
refuses those too, e.g. to show that a code path needs neither Keras nor
JAX.
"""

import importlib.abc
import os
import sys

BLOCKED = ("tensorflow", "tf2onnx", "tensorflow_datasets", "tf_keras")
EXTRA_ENV = "KERAS_DLPA_BLOCK_IMPORTS"
EXTRA = tuple(
    name.strip()
    for name in os.environ.get(EXTRA_ENV, "").split(",")
    if name.strip()
)


class _BlockTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        top = fullname.split(".")[0]
        if top in BLOCKED or top in EXTRA:
            why = "no TensorFlow" if top in BLOCKED else EXTRA_ENV
            raise ModuleNotFoundError(
                f"No module named {fullname!r} (blocked: {why})",
                name=fullname,
            )
        return None


sys.meta_path.insert(0, _BlockTensorFlow())
