"""Makes `import tensorflow` fail, as on a machine without TensorFlow.

Put this directory first on PYTHONPATH of a subprocess: Python imports
`sitecustomize` at start-up, and this one installs a meta-path finder that
refuses TensorFlow and the packages that need it.

`KERAS_DLPA_BLOCK_IMPORTS=keras,jax` (comma-separated top-level names)
refuses those too, e.g. to show that a code path needs neither Keras nor
JAX.

`KERAS_DLPA_MODULE_AUDIT=DIR` writes the top-level names of the modules
the process loaded to `DIR/<pid>.txt` at exit (what must travel to a
machine; tests/test_gpu_campaign.py).
"""

import importlib.abc
import importlib.util
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


def _find_spec(name, package=None, _find_spec=importlib.util.find_spec):
    """`importlib.util.find_spec` answers None for a blocked package, as
    for one that is not installed (torch._dynamo probes TensorFlow so at
    import; the finder above would raise there)."""
    top = name.split(".")[0]
    if top in BLOCKED or top in EXTRA:
        return None
    return _find_spec(name, package)


importlib.util.find_spec = _find_spec


AUDIT_ENV = "KERAS_DLPA_MODULE_AUDIT"
if os.environ.get(AUDIT_ENV):
    import atexit

    def _audit(folder=os.environ[AUDIT_ENV]):
        names = sorted({name.split(".")[0] for name in list(sys.modules)})
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"{os.getpid()}.txt")
        with open(path, "w") as handle:
            handle.write("\n".join(names) + "\n")

    atexit.register(_audit)
