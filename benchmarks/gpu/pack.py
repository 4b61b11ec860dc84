"""Packs a campaign's results into at most 8 files of at most 15 MiB.

    python benchmarks/gpu/pack.py SWEEP_DIR OUT_DIR

`OUT_DIR/results.tar.gz`: the sweep's `report.md` / `report.json`, its
logs, and each run's `config.json`, `metrics.json`, `metrics.csv`,
`evaluation.json` and `final_state.npz`; `OUT_DIR/models-K.tar`: every
run's `model.keras` (as `runs/NAME/model.keras`), as few tarballs as the
size limit allows. Prints one line per file; exits 1 if the results do
not fit (the device returns at most 8 files of 16 MB).
"""

import sys
import tarfile
from pathlib import Path

MAX_FILES = 8
MAX_BYTES = 15 * 2**20
RUN_FILES = (
    "config.json",
    "metrics.json",
    "metrics.csv",
    "evaluation.json",
    "final_state.npz",
)


def pack(sweep: Path, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    small = [sweep / n for n in ("report.md", "report.json")]
    small += sorted((sweep / "logs").glob("*.log"))
    models = []
    for run in sorted((sweep / "runs").glob("*")):
        small += [run / n for n in RUN_FILES]
        models.append(run / "model.keras")
    written = [out / "results.tar.gz"]
    with tarfile.open(written[0], "w:gz") as tar:
        for path in small:
            if path.is_file():
                tar.add(path, arcname=str(path.relative_to(sweep)))
    bins, size = [[]], 0
    for path in (p for p in models if p.is_file()):
        if bins[-1] and size + path.stat().st_size > MAX_BYTES:
            bins.append([])
            size = 0
        bins[-1].append(path)
        size += path.stat().st_size
    for k, paths in enumerate(b for b in bins if b):
        written.append(out / f"models-{k}.tar")
        with tarfile.open(written[-1], "w") as tar:
            for path in paths:
                tar.add(path, arcname=str(path.relative_to(sweep)))
    return written


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: pack.py SWEEP_DIR OUT_DIR", file=sys.stderr)
        return 2
    out = Path(argv[1])
    written = pack(Path(argv[0]), out)
    for path in written:
        print(f"{path}: {path.stat().st_size / 2**20:.2f} MiB")
    files = [p for p in out.iterdir() if p.is_file()]
    too_big = [p.name for p in files if p.stat().st_size > 16 * 10**6]
    if len(files) > MAX_FILES or too_big:
        print(
            f"{out} holds {len(files)} files (at most {MAX_FILES}), too "
            f"big: {too_big or 'none'}; the device would not return them all",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
