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

`--warm-start` times the epoch-to-epoch case instead: solve once on the
statistics (cold, filling a `SparseWarmStart` cache), add small noise
(`--warm-noise`, relative to the statistics' scale: "previous epoch's
statistics + small noise"), then time the warm solve from the previous
assignment and, unless `--no-verify`, a cold solve of the same problem,
checking that both give the same assignment and cost.

    python benchmarks/bench_reassign.py --warm-start --sizes 10000 \
        --stats near --skip-100k
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

    return solve_assignment(_normalize(stats), prototypes, current, method)


def _normalize(stats):
    norms = np.linalg.norm(stats, axis=1, keepdims=True)
    return np.divide(stats, norms, out=np.zeros_like(stats), where=norms > 0)


def _warm_worker(c, d, kind, noise, verify):
    from keras_dlpa.matching import SparseWarmStart
    from keras_dlpa.matching import solve_assignment

    stats, w, current, perm = _make_case(c, d, kind)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cache = SparseWarmStart()
    start = time.perf_counter()
    previous, _ = solve_assignment(
        _normalize(stats), w, current, "sparse", warm_start=cache
    )
    first_s = time.perf_counter() - start
    rng = np.random.default_rng(1)
    scale = np.linalg.norm(stats, axis=1, keepdims=True) / np.sqrt(d)
    q = _normalize(stats + noise * scale * rng.standard_normal((c, d)))
    start, start_cpu = time.perf_counter(), time.process_time()
    warm, warm_cost = solve_assignment(
        q, w, previous, "sparse", warm_start=cache
    )
    row = {
        "classes": c,
        "dim": d,
        "stats": kind,
        "method": "sparse",
        "mode": "warm",
        "noise": noise,
        "first_solve_s": first_s,
        "median_s": time.perf_counter() - start,
        "median_cpu_s": time.process_time() - start_cpu,
        "warm_solves": cache.warm_solves,
        "priced_rows": cache.last_priced_rows,
        "cost": warm_cost,
        "changed_vs_previous": float(np.mean(warm != previous)),
        "planted_recovered": (
            None if perm is None else float(np.mean(warm == perm))
        ),
    }
    if verify:
        start = time.perf_counter()
        cold, cold_cost = solve_assignment(q, w, previous, "sparse")
        row["cold_s"] = time.perf_counter() - start
        row["identical_to_cold"] = bool(np.array_equal(cold, warm))
        row["cost_gap_vs_cold"] = warm_cost - cold_cost
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    row["peak_rss_mb"] = round(peak, 1)
    row["input_rss_mb"] = round(rss_before, 1)
    return row


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


def _run_case(c, d, kind, method, repeats, warmup, timeout, warm=None):
    if warm is None:
        job = ["--worker", json.dumps([c, d, kind, method, repeats, warmup])]
    else:
        job = ["--warm-worker", json.dumps([c, d, kind, *warm])]
    cmd = [sys.executable, __file__, *job]
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
    parser.add_argument(
        "--warm-start",
        action="store_true",
        help="time a warm-started re-solve after small noise (sparse)",
    )
    parser.add_argument(
        "--warm-noise",
        type=float,
        default=0.05,
        help="noise std per coordinate, relative to the statistics' "
        "scale (default 0.05)",
    )
    parser.add_argument(
        "--no-verify",
        action="store_true",
        help="--warm-start: skip the cold solve that checks the result",
    )
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--warm-worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(*json.loads(args.worker))))
        return
    if args.warm_worker:
        print(json.dumps(_warm_worker(*json.loads(args.warm_worker))))
        return
    if args.warm_start:
        return _main_warm(args)

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


def _main_warm(args):
    sizes = [(int(s), args.dim) for s in args.sizes.split(",") if s]
    if not args.skip_100k:
        sizes.append((args.big_classes, args.big_dim))
    warm = [args.warm_noise, not args.no_verify]
    rows = []
    for c, d in sizes:
        for kind in args.stats.split(","):
            row = _run_case(c, d, kind, "sparse", 1, 0, args.timeout, warm)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print_table(
        rows,
        [
            "classes",
            "dim",
            "stats",
            "noise",
            "first_solve_s",
            "median_s",
            "cold_s",
            "priced_rows",
            "identical_to_cold",
            "cost_gap_vs_cold",
            "peak_rss_mb",
            "error",
        ],
    )
    write_results(
        "bench_reassign_warm",
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
