"""GPU driver: CIFAR-10-LT (and low-dimensional CIFAR-10) through the recipes.

A thin driver over `keras_dlpa.sweep`: one `cifar10_lt` recipe process
per method on one GPU (long-tailed: dl2pa/etf/softmax; `--low-dim`: the
same recipe on balanced CIFAR-10, `--imbalance 1 --mixup 0 --dim D`, which
adds a `Dense(D)` + BatchNorm projection, dl2pa/static), each with the
same `--deadline`, then one JSON of their `evaluation.json` files. It
holds no data, model or training code: everything is the library's runner
(data core, grain executor on JAX, crash-safe checkpoints, resume,
best-by-validation), so rerunning the same command resumes what a
deadline stopped.

    KERAS_BACKEND=jax python benchmarks/gpu_cifar10_lt.py \\
        --data .data/cifar10-jpeg-train.tar.gz --runs-dir .runs \\
        --deadline $(( $(date +%s) + 400 )) --out OUT.json

CPU smoke run: add `--quick` (the recipes' `--quick` settings).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).parent))

from _common import CIFAR10_JPEG  # noqa: E402

from keras_dlpa.sweep import Job  # noqa: E402
from keras_dlpa.sweep import run_jobs  # noqa: E402

LONG_TAILED = ("dl2pa", "etf", "softmax")
LOW_DIM = ("dl2pa", "static")


def jobs_for(args) -> list[Job]:
    """One `cifar10_lt` recipe job per method."""
    methods = args.methods.split(",") if args.methods else None
    common = ["--image-dir", str(args.data), "--seed", str(args.seed)]
    common += ["--verbose", "2"]
    if args.quick:
        common.append("--quick")
    if args.epochs:
        common += ["--epochs", str(args.epochs)]
    if args.precision != "float32":
        common += ["--precision", args.precision]
    if args.low_dim:
        methods = methods or list(LOW_DIM)
        # Balanced CIFAR-10, ResNet-32 + Dense(64 -> d) projection.
        common += ["--imbalance", "1", "--mixup", "0", "--dim", str(args.dim)]
        tag = f"lowdim-d{args.dim}"
    else:
        methods = methods or list(LONG_TAILED)
        tag = "lt"
    runs = Path(args.runs_dir)
    return [
        Job(
            name=f"{tag}-{method}",
            recipe="cifar10_lt",
            args=common + ["--method", method],
            out=str(runs / f"{tag}-{method}-seed{args.seed}"),
        )
        for method in methods
    ]


def _summary(name: str, result: dict) -> dict:
    evaluation = result["evaluation"] or {}
    keep = ("top1", "top5", "many", "medium", "few", "epoch")
    return {
        "job": name,
        "returncode": result["returncode"],
        "status": result["status"],
        "out": result["out"],
        "completed": evaluation.get("completed"),
        "epochs_done": evaluation.get("epochs_done"),
        "train_images_per_s": evaluation.get("train_images_per_s"),
        "wall_time_s": evaluation.get("wall_time_s"),
        "backend": evaluation.get("backend"),
        "last": {k: (evaluation.get("last") or {}).get(k) for k in keep},
        "best": {k: (evaluation.get("best") or {}).get(k) for k in keep},
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--data", type=Path, default=CIFAR10_JPEG)
    add("--runs-dir", default="runs/gpu")
    add("--methods", default=None, help="comma-separated")
    add("--low-dim", action="store_true")
    add("--dim", type=int, default=3)
    add("--epochs", type=int, default=None)
    add("--seed", type=int, default=0)
    add("--quick", action="store_true")
    add("--precision", default="float32", choices=("float32", "bfloat16"))
    add("--parallel", type=int, default=None, help="default: all at once")
    add("--deadline", type=float, default=None, help="Unix time")
    add("--out", default=None, help="summary JSON")
    args = parser.parse_args(argv)
    jobs = jobs_for(args)
    started = time.time()
    results = run_jobs(
        jobs,
        Path(args.runs_dir) / "logs",
        parallel=args.parallel or len(jobs),
        deadline=args.deadline,
    )
    summary = {
        "mode": "low_dim" if args.low_dim else "long_tailed",
        "command": sys.argv,
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "loadavg": os.getloadavg(),
        },
        "wall_s": round(time.time() - started, 1),
        "runs": {name: _summary(name, r) for name, r in results.items()},
    }
    text = json.dumps(summary, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0 if all(r["returncode"] == 0 for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
