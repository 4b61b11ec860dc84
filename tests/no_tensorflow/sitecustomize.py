"""Makes `import tensorflow` fail, as on a machine without TensorFlow.

Put this directory first on PYTHONPATH of a subprocess: Python imports
`sitecustomize` at start-up, and this one installs a meta-path finder that
refuses TensorFlow and the packages that need it.
"""

import importlib.abc
import sys

BLOCKED = ("tensorflow", "tf2onnx", "tensorflow_datasets", "tf_keras")


class _BlockTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(
                f"No module named {fullname!r} (blocked: no TensorFlow)",
                name=fullname,
            )
        return None


sys.meta_path.insert(0, _BlockTensorFlow())
