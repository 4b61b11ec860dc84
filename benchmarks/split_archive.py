"""Split a file into parts that fit one device transfer, and join them.

The GPU machine takes at most 64 MiB of files with one command, and the
CIFAR-100 PNG archive is 110 MB. Split it here into parts of at most
`--part-mib` MiB, each in its own folder (`DIR/part-00/`, ...), with a
manifest (size and SHA-256 of the whole file); carry one folder per
command while the machine stays up, then join there: the joined file is
checked against the manifest, so not a byte (or pixel) changes.

    python benchmarks/split_archive.py split FILE DIR [--part-mib 60]
    python benchmarks/split_archive.py join DIR OUT_FILE
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def split(source: Path, out: Path, part_mib: float = 60.0) -> list[Path]:
    """Writes `out/part-NN/SOURCE.partNN` files + `out/part-00/manifest`."""
    size = int(part_mib * (1 << 20))
    if size < 1:
        raise ValueError(f"--part-mib must be > 0. Received: {part_mib}")
    parts = []
    with open(source, "rb") as f:
        index = 0
        while chunk := f.read(size):
            folder = out / f"part-{index:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{source.name}.part{index:02d}"
            path.write_bytes(chunk)
            parts.append(path)
            index += 1
    manifest = {
        "name": source.name,
        "size": source.stat().st_size,
        "sha256": _sha256(source),
        "parts": [p.name for p in parts],
    }
    (out / "part-00" / "manifest.json").write_text(json.dumps(manifest))
    return parts


def join(directory: Path, target: Path) -> Path:
    """Joins the parts under `directory` into `target` and verifies it."""
    manifest = json.loads((directory / "part-00" / "manifest.json").read_text())
    with open(target, "wb") as out:
        for index, name in enumerate(manifest["parts"]):
            part = directory / f"part-{index:02d}" / name
            if not part.is_file():
                raise FileNotFoundError(
                    f"Missing part {part}: carry every part folder first."
                )
            out.write(part.read_bytes())
    if target.stat().st_size != manifest["size"] or (
        _sha256(target) != manifest["sha256"]
    ):
        target.unlink()
        raise ValueError(
            f"Joined {target} does not match the manifest (size/SHA-256)."
        )
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("split")
    s.add_argument("file", type=Path)
    s.add_argument("dir", type=Path)
    s.add_argument("--part-mib", type=float, default=60.0)
    j = sub.add_parser("join")
    j.add_argument("dir", type=Path)
    j.add_argument("file", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "split":
            for part in split(args.file, args.dir, args.part_mib):
                print(part, part.stat().st_size)
        else:
            print(join(args.dir, args.file))
    except (OSError, ValueError) as error:
        print(f"split_archive: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
