"""Benchmark of the reassignment path (DL2PA Eq. 9), dense vs sparse.

Path timed: class statistics (c, d) -> row L2-normalisation (zero rows stay
zero) -> cost + matching (`keras_dlpa.matching.solve_assignment`) -> new
assignment. Each case runs in its own subprocess so that the peak resident
memory (`ru_maxrss`) belongs to that case alone.

Statistics: "near" = permuted prototypes + noise (near-converged training,
cosine to the planted prototype ~0.9), "random" = Gaussian (start of
training, the hardest case for the matching).

    python benchmarks/bench_reassign.py                      # full run
    python benchmarks/bench_reassign.py --sizes 100,1000 --skip-100k
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from _common import print_table  # noqa: E402
from _common import write_results  # noqa: E402


def _make_case(c, d, kind, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((c, d), dtype=np.float32).astype(np.float64)
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    current = rng.permutation(c)
    if kind == "near":
        perm = rng.permutation(c)
        stats = w[perm] + 0.5 / np.sqrt(d) * rng.standard_normal((c, d))
    else:
        perm = None
        stats = rng.standard_normal((c, d))
    return stats, w, current, perm


def _reassign(stats, prototypes, current, method):
    from keras_dlpa.matching import solve_assignment

    norms = np.linalg.norm(stats, axis=1, keepdims=True)
    q = np.divide(stats, norms, out=np.zeros_like(stats), where=norms > 0)
    return solve_assignment(q, prototypes, current, method)


def _worker(c, d, kind, method, repeats, warmup):
    stats, w, current, perm = _make_case(c, d, kind)
    import keras_dlpa.matching  # noqa: F401 - import before the baseline

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for _ in range(warmup):
        _reassign(stats, w, current, method)
    times, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        assignment, cost = _reassign(stats, w, current, method)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "classes": c,
        "dim": d,
        "stats": kind,
        "method": method,
        "median_s": float(np.median(times)),
        "times_s": times,
        # CPU seconds (all threads): robust to other load on the machine.
        "median_cpu_s": float(np.median(cpu)),
        "peak_rss_mb": round(peak, 1),
        "input_rss_mb": round(rss_before, 1),
        "cost": cost,
        "planted_recovered": (
            None if perm is None else float(np.mean(assignment == perm))
        ),
        "kept_current": float(np.mean(assignment == current)),
    }


def _run_case(c, d, kind, method, repeats, warmup, timeout):
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        json.dumps([c, d, kind, method, repeats, warmup]),
    ]
    try:
        out = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, check=True
        )
    except subprocess.TimeoutExpired:
        return {"classes": c, "dim": d, "stats": kind, "method": method,
                "error": f"timeout after {timeout} s"}  # fmt: skip
    except subprocess.CalledProcessError as e:
        return {"classes": c, "dim": d, "stats": kind, "method": method,
                "error": e.stderr[-500:]}  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,5000,10000")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--methods", default="dense,sparse")
    parser.add_argument("--stats", default="near,random")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-100k", action="store_true")
    parser.add_argument("--big-classes", type=int, default=100_000)
    parser.add_argument("--big-dim", type=int, default=128)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--out", default=None)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(*json.loads(args.worker))))
        return

    cases = []
    for c in (int(s) for s in args.sizes.split(",") if s):
        for kind in args.stats.split(","):
            for method in args.methods.split(","):
                small = c <= 1000
                cases.append(
                    (c, args.dim, kind, method, args.repeats, int(small))
                )
    if not args.skip_100k:
        for kind in args.stats.split(","):
            cases.append((args.big_classes, args.big_dim, kind, "sparse", 1, 0))

    rows = []
    for case in cases:
        row = _run_case(*case, timeout=args.timeout)
        rows.append(row)
        print(json.dumps(row), flush=True)
    # Same data for dense and sparse: the costs must agree.
    dense = {
        (r["classes"], r["stats"]): r["cost"]
        for r in rows
        if r.get("method") == "dense" and "cost" in r
    }
    for r in rows:
        key = (r["classes"], r["stats"])
        if r.get("method") == "sparse" and key in dense and "cost" in r:
            r["cost_gap_vs_dense"] = r["cost"] - dense[key]
    print_table(
        rows,
        [
            "classes",
            "dim",
            "stats",
            "method",
            "median_s",
            "median_cpu_s",
            "peak_rss_mb",
            "input_rss_mb",
            "cost",
            "cost_gap_vs_dense",
            "planted_recovered",
            "error",
        ],
    )
    write_results(
        "bench_reassign",
        {"args": vars(args), "rows": rows, "machine_load": _load()},
        args.out,
    )


def _load():
    try:
        return Path("/proc/loadavg").read_text().split()[:3]
    except OSError:
        return None


if __name__ == "__main__":
    main()
