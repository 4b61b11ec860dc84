"""A run directory has one owner and one configuration.

`RunDirLock` holds an exclusive `flock` on `RUN_DIR/.lock` for the whole
run: a second process on the same directory is refused at once with one
line, and the lock goes away with its process however it ends (a killed
run leaves no stale lock: the kernel drops it; the pid in the file is only
for the message). `check_resume` compares the settings of a resumed run
with its `config.json` before anything in the directory is written.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from keras_dlpa.training.config import flat_config

LOCK_FILE = ".lock"

# Settings that may differ when a run is resumed: they do not change what
# is trained (length, deadline, logging, input executor, compilation,
# where TFDS looks for its files). Everything else defines the run.
RESUMABLE_SETTINGS = (
    "epochs",
    "deadline",
    "resume",
    "verbose",
    "report",
    "executor",
    "data_workers",
    "eval_batch_size",
    "jit_compile",
    "deterministic",
    "checkpoint_every",
    "download",
    "data_dir",
    "manual_dir",
    "out",
)


class RunSettingsError(ValueError):
    """The settings of a run conflict with its run directory (a resume
    with other settings, or nothing to resume): a usage error."""


class RunDirInUse(RuntimeError):
    """Another live process holds the run directory."""


class RunDirLock:
    """Exclusive lock of a run directory (POSIX `flock`).

    Args:
        run_dir: the run directory (created if missing).

    Example:

    ```python
    with RunDirLock("runs/a"):
        ...  # a second process gets RunDirInUse until this block ends
    ```
    """

    def __init__(self, run_dir):
        self.run_dir = Path(run_dir)
        self._fd = None

    def acquire(self) -> RunDirLock:
        import fcntl

        self.run_dir.mkdir(parents=True, exist_ok=True)
        path = self.run_dir / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 64, 0).decode(errors="replace").strip()
            os.close(fd)
            raise RunDirInUse(
                f"Run directory {self.run_dir} is in use by another "
                f"process (pid {owner or '?'}). Wait for it to finish, "
                "or choose another `out` (--out)."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        import fcntl

        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def _comparable(value):
    """JSON form (tuples as lists) so stored and new values compare."""
    return json.loads(json.dumps(value, default=str))


def resume_differences(config, stored: dict) -> list[str]:
    """`"name: stored -> new"` for each run-defining setting of `config`
    (an `ExperimentConfig`) that differs from a `config.json` (either
    layout): its settings as given, in older ones the resolved fields."""
    stored = flat_config(stored.get("settings", stored))
    differences = []
    for name, value in config.flat().items():
        if name in RESUMABLE_SETTINGS or name not in stored:
            continue
        new = _comparable(value)
        old = _comparable(stored[name])
        if new != old:
            differences.append(f"{name}: {old!r} -> {new!r}")
    return differences


def check_resume(config, run_dir) -> None:
    """Refuses (`RunSettingsError`, one line) to resume `run_dir` with settings
    that differ from its `config.json`; see `RESUMABLE_SETTINGS`."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        return
    stored = json.loads(path.read_text(encoding="utf-8"))
    differences = resume_differences(config, stored)
    if differences:
        raise RunSettingsError(
            f"Cannot resume {run_dir} with other settings than it was "
            f"started with: {'; '.join(differences)}. Use the run's own "
            "settings (its config.json), or start a new run in another "
            "`out` (--out). Only these may change on resume: "
            f"{', '.join(RESUMABLE_SETTINGS)}."
        )
