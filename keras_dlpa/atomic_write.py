"""`atomic_write`: the one crash-safe file write of the library.

Prototype files, decoded-image caches, checkpoints, run logs and prepared
splits are all written this way, so a reader never sees a partial file:
it finds the old file or the complete new one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(path, write) -> Path:
    """Writes `path` through a temporary file that replaces it atomically.

    `write(tmp)` fills a temporary file `tmp` (a `Path` in the same
    directory, named `.tmp-*` with the same suffixes as `path`, so
    `model.save` and `np.savez` accept it). The file is then fsynced,
    made world-readable (`0o644`), renamed over `path` with `os.replace`
    and the directory fsynced. If `write` raises (or the process is
    interrupted in Python), the temporary file is removed and `path` is
    left as it was. A process killed mid-write can leave a `.tmp-*` file
    behind; `path` is never partial.

    Args:
        path: the destination; its directory is created if missing.
        write: `write(tmp: Path)`, which writes the whole content to `tmp`.

    Returns:
        `path` as a `Path`.

    Example:

    >>> atomic_write("run/summary.json", lambda tmp: tmp.write_text("{}"))
    PosixPath('run/summary.json')
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes[-2:])
    fd, name = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:  # e.g. Windows: directories cannot be opened
        return path
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return path
