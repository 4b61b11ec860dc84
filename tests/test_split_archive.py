"""benchmarks/split_archive.py: parts under a size limit, joined exactly."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO_ROOT


def _module():
    path = Path(REPO_ROOT) / "benchmarks" / "split_archive.py"
    spec = importlib.util.spec_from_file_location("split_archive", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_split_then_join_is_exact(tmp_path):
    tool = _module()
    data = np.random.default_rng(0).bytes(2_500_000)
    source = tmp_path / "archive.tar.gz"
    source.write_bytes(data)
    parts = tool.split(source, tmp_path / "parts", part_mib=1.0)
    assert len(parts) == 3
    assert all(p.stat().st_size <= 1 << 20 for p in parts)
    assert len({p.parent for p in parts}) == 3  # one folder per transfer
    joined = tool.join(tmp_path / "parts", tmp_path / "joined.tar.gz")
    assert joined.read_bytes() == data
    parts[1].write_bytes(parts[1].read_bytes()[:-1] + b"x")
    with pytest.raises(ValueError, match="manifest"):
        tool.join(tmp_path / "parts", tmp_path / "bad.tar.gz")
    assert not (tmp_path / "bad.tar.gz").exists()
