"""Per-epoch metrics of a run: `metrics.json` and `metrics.csv`."""

from __future__ import annotations

import csv
import io
import json
import math
import time
from pathlib import Path

import keras
import numpy as np

from keras_dlpa.training.checkpoint import atomic_write_text

METRIC_KEYS = (
    "epoch",
    "loss",
    "accuracy",
    "top5",
    "val_top1",
    "val_top5",
    "val_many",
    "val_medium",
    "val_few",
    "val_balanced",
    "learning_rate",
)
DL2PA_KEYS = ("assignment_changed", "assignment_cost")


def json_value(value):
    """A JSON-safe scalar: numpy scalars to Python, non-finite to `None`."""
    if isinstance(value, (np.floating, np.integer)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: Path, value) -> None:
    """Writes `value` as indented JSON, atomically."""
    atomic_write_text(Path(path), json.dumps(value, indent=2) + "\n")


def read_metrics(run_dir, before: int | None = None) -> list[dict]:
    """Rows of `run_dir/metrics.json` (with `epoch < before` if given)."""
    path = Path(run_dir) / "metrics.json"
    if not path.is_file():
        return []
    rows = json.loads(path.read_text(encoding="utf-8"))
    if before is not None:
        rows = [r for r in rows if r["epoch"] < before]
    return rows


class RunLogger(keras.callbacks.Callback):
    """Writes one row per epoch to `metrics.json` and `metrics.csv`.

    Both files are rewritten atomically at every epoch end (Keras'
    `CSVLogger` appends in place, so a kill can leave a half-written row,
    and it cannot drop the rows of epochs that a resumed run repeats). On
    resume it keeps the rows of the epochs before `initial_epoch`, so the
    files continue without duplicate or missing epochs. Place it after
    `ReassignCallback` and `EvaluationCallback` (it logs their keys) and
    before `RunCheckpoint`. Rows are 0-based epochs.

    Args:
        run_dir: the run directory.
        initial_epoch: first epoch of this `fit` call.
        schedule: the optimizer's learning-rate schedule; `learning_rate`
            is logged as its value at the epoch's last step.
    """

    def __init__(self, run_dir, initial_epoch: int = 0, schedule=None):
        super().__init__()
        self.schedule = schedule
        self.run_dir = Path(run_dir)
        self.initial_epoch = int(initial_epoch)
        self.rows = read_metrics(self.run_dir, before=self.initial_epoch)

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        optimizer = self.model.optimizer
        iterations = int(keras.ops.convert_to_numpy(optimizer.iterations))
        if self.schedule is not None:
            lr = self.schedule(max(iterations - 1, 0))
        else:
            lr = optimizer.learning_rate
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(lr))
        row = {"epoch": int(epoch)}
        keys = [k for k in METRIC_KEYS if k != "epoch"]
        keys += [k for k in DL2PA_KEYS if k in logs]
        keys += sorted(k for k in logs if k not in keys)
        for key in keys:
            row[key] = json_value(logs.get(key))
        row["epoch_time_s"] = round(time.perf_counter() - self._start, 3)
        self.rows = [r for r in self.rows if r["epoch"] < epoch] + [row]
        self._write()

    def _write(self):
        write_json(self.run_dir / "metrics.json", self.rows)
        columns = []
        for row in self.rows:
            columns += [k for k in row if k not in columns]
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow(
                {k: "" if row.get(k) is None else row[k] for k in columns}
            )
        atomic_write_text(self.run_dir / "metrics.csv", text.getvalue())
