"""`keras_dlpa.atomic_write`: readers see the old file or the new one."""

import os

import pytest

from keras_dlpa.atomic_write import atomic_write


def test_writes_through_a_temporary_file_with_the_same_suffixes(tmp_path):
    path = tmp_path / "sub" / "epoch-000001.weights.h5"
    seen = []

    def write(tmp):
        seen.append(tmp)
        assert tmp.parent == path.parent and tmp.name.startswith(".tmp-")
        assert tmp.name.endswith(".weights.h5") and not path.exists()
        tmp.write_bytes(b"new")

    assert atomic_write(str(path), write) == path
    assert path.read_bytes() == b"new" and not seen[0].exists()
    assert os.stat(path).st_mode & 0o777 == 0o644
    assert os.listdir(path.parent) == [path.name]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "protos.npz"
    path.write_bytes(b"old")

    def write(tmp):
        tmp.write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, write)
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["protos.npz"]
