"""`atomic_write`: the library's one crash-safe file write (readers see the
old file or the complete new one, never a partial file)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(path, write) -> Path:
    """Writes `path` through a temporary file that replaces it atomically.

    `write(tmp)` fills `tmp`, a `.tmp-*` file in the same directory with the
    same suffixes as `path` (so `model.save` and `np.savez` accept it); it
    is then fsynced, made `0o644`, renamed over `path` and the directory
    fsynced. If `write` raises, `tmp` is removed and `path` left as it was;
    a killed process can leave a `.tmp-*` file, never a partial `path`.

    Args:
        path: the destination; its directory is created if missing.
        write: `write(tmp: Path)`, writing the whole content to `tmp`.

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
