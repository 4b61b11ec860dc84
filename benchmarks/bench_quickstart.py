"""The quickstart recipe with each head: accuracy and wall time.

Runs `recipes/quickstart.py --method M --no-export --out RUN_DIR/M` once
per method, each in its own process, and collects the last and the best
(by validation top-1) epoch of its `evaluation.json` (fractions 0-1,
0-based epochs) with the process's wall time and the load average before
and after. The runs are seeded: the accuracies are the same on every run
of the same versions on the same machine; the wall times depend on the
load of the machine.

    python benchmarks/bench_quickstart.py \
        --out benchmarks/results/quickstart.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import write_results  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
METRICS = ("epoch", "top1", "top5", "many", "medium", "few")


def run_method(method: str, run_dir: Path) -> dict:
    """Runs the quickstart with `method`; returns its row of the table."""
    command = [
        sys.executable,
        str(ROOT / "recipes" / "quickstart.py"),
        "--method",
        method,
        "--no-export",
        "--out",
        str(run_dir),
    ]
    load_before = list(os.getloadavg())
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT)
    wall = time.perf_counter() - start
    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    row = {"method": method, "wall_time_s": round(wall, 1)}
    for which in ("last", "best"):
        entry = evaluation.get(which) or {}
        for key in METRICS:
            row[f"{which}_{key}"] = entry.get(key)
    row["loadavg_before"] = load_before
    row["loadavg_after"] = list(os.getloadavg())
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--methods",
        default="dl2pa,static,softmax",
        help="Comma-separated quickstart methods.",
    )
    parser.add_argument("--run-dir", default="runs/bench-quickstart")
    parser.add_argument("--out", default=None, help="JSON output path.")
    args = parser.parse_args(argv)
    command = "python benchmarks/bench_quickstart.py" + "".join(
        f" {a}" for a in (argv if argv is not None else sys.argv[1:])
    )
    rows = []
    for method in args.methods.split(","):
        rows.append(run_method(method, Path(args.run_dir) / method))
        print(json.dumps(rows[-1]))
    write_results(
        "quickstart",
        {
            "command": command,
            "note": (
                "Accuracies are fractions 0-1, epochs 0-based; the runs "
                "are seeded (deterministic); wall times depend on load."
            ),
            "rows": rows,
        },
        args.out,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
