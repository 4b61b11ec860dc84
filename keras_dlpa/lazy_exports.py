"""Lazy package namespaces (PEP 562), so importing a package stays cheap."""

from __future__ import annotations

import importlib


def lazy_exports(package: str, exports: dict[str, str]):
    """`(__getattr__, __dir__)` for `package` exporting `name -> module`.

    `exports` maps each public name to the submodule (relative to
    `package`) that defines it; the submodule is imported on first access,
    so, e.g., a TensorFlow-only submodule is loaded only when used.
    """
    names = sorted(exports)

    def __getattr__(name):
        if name not in exports:
            raise AttributeError(
                f"module {package!r} has no attribute {name!r}"
            )
        module = importlib.import_module(f"{package}.{exports[name]}")
        return getattr(module, name)

    def __dir__():
        return names

    return __getattr__, __dir__
