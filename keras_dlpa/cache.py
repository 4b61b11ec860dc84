"""The on-disk cache shared by prototypes and decoded image archives."""

import os
from pathlib import Path


def cache_root() -> Path:
    """`$KERAS_DLPA_CACHE` if set, else `~/.cache/keras_dlpa`."""
    env = os.environ.get("KERAS_DLPA_CACHE")
    if env:
        return Path(env)
    return Path.home() / ".cache" / "keras_dlpa"
