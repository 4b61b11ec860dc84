"""Prototype files and the on-disk cache of `estimate_prototypes`."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
import zipfile
from pathlib import Path

import numpy as np

from keras_dlpa.atomic_write import atomic_write
from keras_dlpa.cache import cache_root
from keras_dlpa.prototypes.estimate import ALGORITHM_VERSION
from keras_dlpa.prototypes.estimate import _check_options
from keras_dlpa.prototypes.estimate import _check_sizes
from keras_dlpa.prototypes.estimate import _resolve_method
from keras_dlpa.prototypes.estimate import _resolve_optimizer
from keras_dlpa.prototypes.estimate import estimate_prototypes
from keras_dlpa.prototypes.estimate import prototype_quality

logger = logging.getLogger(__name__)

_FORMAT = "keras_dlpa.prototypes/1"


def _version():
    from importlib import metadata

    try:
        return metadata.version("keras-dlpa")
    except Exception:  # noqa: BLE001 - not installed: still save
        return "unknown"


def save_prototypes(path, prototypes, **metadata) -> Path:
    """Writes prototypes and JSON metadata to one `.npz` file, atomically.

    Args:
        path: destination file.
        prototypes: array `(c, d)`, stored as float32.
        **metadata: extra JSON-serialisable fields, added to `format`,
            `num_classes`, `dim`, `library_version` and `quality`.

    Returns:
        The path written.
    """
    p = np.asarray(prototypes, dtype=np.float32)
    if p.ndim != 2 or p.shape[0] < 2 or not np.all(np.isfinite(p)):
        raise ValueError(
            "`prototypes` must be a finite 2-D array (num_classes >= 2, "
            f"dim). Received: shape={p.shape}"
        )
    meta = {
        "format": _FORMAT,
        "num_classes": int(p.shape[0]),
        "dim": int(p.shape[1]),
        "library_version": _version(),
        "quality": prototype_quality(p),
        **metadata,
    }
    try:
        text = json.dumps(meta, sort_keys=True)
    except TypeError as e:
        raise ValueError(
            f"Prototype metadata must be JSON-serialisable: {e}."
        ) from e

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, prototypes=p, metadata=np.array(text))

    return atomic_write(path, write)


def load_prototypes(path) -> tuple[np.ndarray, dict]:
    """Reads a file written by `save_prototypes`.

    Returns:
        `(prototypes, metadata)`: float32 `(c, d)` array and dict.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is corrupt, truncated, not a prototype file,
            or its array shape disagrees with its metadata.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No prototype file at {str(path)!r}.")
    try:
        # Our own handle: np.load leaks its file when the zip is corrupt.
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as data:
            prototypes = np.asarray(data["prototypes"])
            meta = json.loads(str(data["metadata"]))
    # json.JSONDecodeError is a ValueError.
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(
            f"{str(path)!r} is not a readable prototype file (corrupt, "
            f"truncated or another format): {type(e).__name__}: {e}. "
            "Delete it and estimate the prototypes again."
        ) from e
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
        raise ValueError(
            f"{str(path)!r} is not a prototype file: expected metadata "
            f"format {_FORMAT!r}."
        )
    expected = (meta.get("num_classes"), meta.get("dim"))
    if prototypes.ndim != 2 or tuple(prototypes.shape) != expected:
        raise ValueError(
            f"{str(path)!r} holds an array of shape {prototypes.shape}, "
            f"but its metadata says (num_classes, dim) = {expected}. The "
            "file is corrupt; delete it and estimate again."
        )
    return prototypes.astype(np.float32), meta


def cached_prototypes(
    num_classes: int,
    dim: int,
    method: str = "auto",
    seed: int = 0,
    options=None,
    cache_dir=None,
    verbose: bool = False,
) -> np.ndarray:
    """`estimate_prototypes`, computed once per key and cached on disk.

    The key holds the arguments and settings that change the result and
    `ALGORITHM_VERSION`; an unreadable cache file is recomputed.

    Args:
        num_classes, dim, method, seed, options, verbose: as in
            `estimate_prototypes`.
        cache_dir: directory (default `cache_root() / "prototypes"`).

    Returns:
        float32 array `(num_classes, dim)` with unit rows.
    """
    path, key = _cache_entry(num_classes, dim, method, seed, options, cache_dir)
    if path.is_file():
        try:
            prototypes, meta = load_prototypes(path)
            if meta.get("key") == key:
                return prototypes
        except ValueError as e:
            logger.warning("Recomputing unreadable cache file: %s", e)
    start = time.perf_counter()
    prototypes = estimate_prototypes(
        num_classes, dim, method, seed, options, verbose=verbose
    )
    seconds = round(time.perf_counter() - start, 3)
    save_prototypes(path, prototypes, key=key, seconds=seconds, **key)
    return prototypes


def cache_path(
    num_classes: int,
    dim: int,
    method: str = "auto",
    seed: int = 0,
    options=None,
    cache_dir=None,
) -> Path:
    """The file `cached_prototypes` uses for these arguments."""
    return _cache_entry(num_classes, dim, method, seed, options, cache_dir)[0]


def _cache_entry(num_classes, dim, method, seed, options, cache_dir):
    c, d, seed = _check_sizes(num_classes, dim, seed)
    method = _resolve_method(c, d, method)
    key = {"num_classes": c, "dim": d, "method": method, "seed": seed}
    if method == "uniformity":
        options = _check_options(options)
        key.update(dataclasses.asdict(options))
        key["optimizer"] = _resolve_optimizer(c, d, options.optimizer)
        key["algorithm_version"] = ALGORITHM_VERSION
    # The JSON of the key (tuples as lists) is the cache key on disk.
    key = json.loads(json.dumps(key))
    text = json.dumps(key, sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    root = cache_root() / "prototypes" if cache_dir is None else cache_dir
    path = Path(root) / f"c{c}_d{d}_{method}_seed{seed}_{digest}.npz"
    return path, key
