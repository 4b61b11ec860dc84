"""Crash-safe checkpoints of a run: weights, optimizer, state and best model.

Keras' `BackupAndRestore` and `ModelCheckpoint` write in place, so a kill
during a write loses the run; `RunCheckpoint` writes every file atomically
and a manifest (with the weights' SHA-256) last. Layout and guarantees:
`docs/distributed.md` ("Fault tolerance: checkpoints").
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import shutil
import time
import warnings
from pathlib import Path

import keras

from keras_dlpa.atomic_write import atomic_write
from keras_dlpa.checks import check_int

logger = logging.getLogger(__name__)

_MANIFEST = re.compile(r"^epoch-(\d{6})\.json$")
_DATA = re.compile(r"^(?:epoch-(\d{6})\.weights\.h5|best-(\d{6})\.keras)$")
_FORMAT = 1
# Fault injection for the kill tests: seconds to sleep between writing a
# checkpoint's weights and committing it (0 in normal use).
SLOW_WRITE_ENV = "KERAS_DLPA_SLOW_CHECKPOINT_S"


class CheckpointError(RuntimeError):
    """No intact checkpoint could be restored."""


def atomic_write_text(path: Path, text: str) -> None:
    """Writes `text` to `path` with `keras_dlpa.atomic_write`."""
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_copy(source: Path, path: Path) -> None:
    """Copies `source` to `path` with `keras_dlpa.atomic_write`."""
    atomic_write(path, lambda tmp: shutil.copyfile(source, tmp))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _manifests(directory: Path) -> list[tuple[int, Path]]:
    """`(epoch, manifest path)`, newest first."""
    if not directory.is_dir():
        return []
    matches = [(_MANIFEST.match(p.name), p) for p in directory.iterdir()]
    return sorted(((int(m[1]), p) for m, p in matches if m), reverse=True)


def _verify(directory: Path, manifest: Path) -> dict:
    """The parsed manifest if it and its files are intact, else raises."""
    try:
        meta = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"unreadable manifest ({error})") from None
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
        raise ValueError("not a keras-dlpa checkpoint manifest")
    weights = directory / str(meta.get("weights"))
    if not weights.is_file():
        raise ValueError(f"weights file {weights.name} is missing")
    if weights.stat().st_size != meta.get("size"):
        raise ValueError(
            f"{weights.name} has {weights.stat().st_size} bytes, the "
            f"manifest says {meta.get('size')} (cut short)"
        )
    if _sha256(weights) != meta.get("sha256"):
        raise ValueError(f"{weights.name} does not match its SHA-256")
    best = meta.get("best") or {}
    if best.get("file") and not (directory / best["file"]).is_file():
        raise ValueError(f"best model {best['file']} is missing")
    return meta


def latest_checkpoint(directory) -> dict | None:
    """The newest intact checkpoint's manifest in `directory`, or `None`.

    The manifest dict has `epoch` (epochs completed), `weights` (a path),
    and `best` (`file` path or `None`, `epoch`, `value`). Damaged newer
    checkpoints are skipped with a warning.

    Raises:
        CheckpointError: checkpoints exist but none is intact.
    """
    directory = Path(directory)
    problems = []
    for _, manifest in _manifests(directory):
        try:
            meta = _verify(directory, manifest)
        except ValueError as error:
            problems.append(f"{manifest}: {error}")
            logger.warning(
                "Skipping damaged checkpoint %s: %s", manifest, error
            )
            continue
        meta["weights"] = str(directory / meta["weights"])
        best = meta["best"] = dict(meta.get("best") or {})
        if best.get("file"):
            best["file"] = str(directory / best["file"])
        return meta
    if problems:
        raise CheckpointError(
            f"No intact checkpoint in {directory}: "
            + "; ".join(problems)
            + ". Delete the damaged files to start the run again, or "
            "restore the directory from a backup."
        )
    return None


def restore_weights(model: keras.Model, path) -> None:
    """Loads model AND optimizer variables from a `.weights.h5` file; a
    partial load raises `CheckpointError`."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and not optimizer.built:
        # Else load_weights silently skips its variables (step, momentum).
        optimizer.build(model.trainable_variables)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*Skipping variable loading")
        try:
            model.load_weights(path)
        except UserWarning as warning:
            raise CheckpointError(
                f"Checkpoint {path} does not match the model: {warning}. "
                "Resume with the same recipe and flags as the run."
            ) from None


class RunCheckpoint(keras.callbacks.Callback):
    """Crash-safe per-epoch checkpoint and best-model keeper (see module).

    Place it after the callbacks that change state or write logs
    (`ReassignCallback`, `EvaluationCallback`, the run logger).

    Args:
        directory: the checkpoint directory (created).
        best_path: where the best model is copied (e.g. `run_dir /
            "best.keras"`); `None` keeps no best model.
        monitor: log key of the best model (higher is better).
        keep: checkpoints kept (>= 1).
        restore: a manifest from `latest_checkpoint` to restore when
            training begins (`None`: start fresh).
        every: checkpoint every this many epochs (and after the last epoch
            `fit` runs).
    """

    def __init__(
        self,
        directory,
        best_path=None,
        monitor: str = "val_top1",
        keep: int = 2,
        restore: dict | None = None,
        every: int = 1,
    ):
        super().__init__()
        check_int("keep", keep)
        check_int("every", every)
        self.every = int(every)
        self._pending = None  # an improved epoch not yet written
        self.directory = Path(directory)
        self.best_path = None if best_path is None else Path(best_path)
        self.monitor = monitor
        self.keep = int(keep)
        self.restore = restore
        best = (restore or {}).get("best") or {}
        self.best = {key: best.get(key) for key in ("file", "epoch", "value")}

    def on_train_begin(self, logs=None):
        self.directory.mkdir(parents=True, exist_ok=True)
        for leftover in self.directory.glob(".tmp-*"):
            leftover.unlink(missing_ok=True)  # from a killed write
        if self.restore is not None:
            restore_weights(self.model, self.restore["weights"])
            self._publish_best()

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        best = (self._pending or self.best)["value"]
        if (
            self.best_path is not None
            and value is not None
            and math.isfinite(float(value))
            and (best is None or value > best)
        ):
            # Kept on the host until the next checkpoint writes it.
            self._pending = {
                "epoch": int(epoch),
                "value": float(value),
                "weights": self._host_weights(),
            }
        done = int(epoch) + 1
        last = done >= (self.params or {}).get("epochs", done)
        stopping = bool(getattr(self.model, "stop_training", False))
        if done % self.every and not (last or stopping):
            return
        self._write(done)

    def _host_weights(self):
        return [
            keras.ops.convert_to_numpy(v).copy() for v in self.model.weights
        ]

    def _write_best(self) -> bool:
        """Writes the pending best model; True if there was one."""
        pending, self._pending = self._pending, None
        if pending is None:
            return False
        best_file = self.directory / f"best-{pending['epoch'] + 1:06d}.keras"
        variables, current = self.model.weights, self._host_weights()
        try:
            for variable, saved in zip(variables, pending["weights"]):
                variable.assign(saved)
            atomic_write(best_file, self.model.save)
        finally:
            for variable, saved in zip(variables, current):
                variable.assign(saved)
        self.best = {
            "file": str(best_file),
            "epoch": pending["epoch"],
            "value": pending["value"],
        }
        return True

    def _write(self, done: int) -> None:
        improved = self._write_best()
        weights = self.directory / f"epoch-{done:06d}.weights.h5"

        def write_weights(tmp):
            self.model.save_weights(tmp)
            time.sleep(max(0.0, float(os.environ.get(SLOW_WRITE_ENV) or 0)))

        atomic_write(weights, write_weights)
        best_file = self.best["file"]
        manifest = {
            "format": _FORMAT,
            "epoch": done,
            "weights": weights.name,
            "size": weights.stat().st_size,
            "sha256": _sha256(weights),
            "best": {
                **self.best,
                "file": None if best_file is None else Path(best_file).name,
            },
        }
        atomic_write_text(
            self.directory / f"epoch-{done:06d}.json",
            json.dumps(manifest, indent=2) + "\n",
        )
        if improved:
            self._publish_best()
        self._prune()

    def _publish_best(self):
        if self.best_path is not None and self.best["file"]:
            atomic_copy(Path(self.best["file"]), self.best_path)

    def _prune(self):
        kept = _manifests(self.directory)[: self.keep]
        needed = set()
        for _, path in kept:
            try:
                meta = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                continue
            best = (meta.get("best") or {}).get("file")
            needed |= {meta.get("weights"), best}
        if not kept:
            return
        oldest, newest = kept[-1][0], kept[0][0]
        for path in self.directory.iterdir():
            if match := _MANIFEST.match(path.name):
                stale = int(match[1]) < oldest
            elif match := _DATA.match(path.name):
                # A file newer than the newest manifest is being written.
                number = int(match[1] or match[2])
                stale = path.name not in needed and number <= newest
            else:
                continue
            if stale:
                path.unlink(missing_ok=True)
