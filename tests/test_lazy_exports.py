"""The lazy package namespaces resolve every name to the object, never to a
submodule of the same name (which Python would bind on import)."""

import importlib
import pkgutil
import types

import pytest


@pytest.mark.parametrize("package", ["keras_dlpa.data", "keras_dlpa.export"])
def test_exports_resolve_to_objects(package):
    module = importlib.import_module(package)
    submodules = {info.name for info in pkgutil.iter_modules(module.__path__)}
    assert not set(module._EXPORTS) & submodules
    for name, source in module._EXPORTS.items():
        importlib.import_module(f"{package}.{source}")
        value = getattr(module, name)
        assert not isinstance(value, types.ModuleType), name
        assert value is getattr(
            importlib.import_module(f"{package}.{source}"), name
        )
