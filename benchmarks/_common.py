"""Shared helpers for benchmark scripts: machine record, timing, JSON output."""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

RESULTS_DIR = Path(__file__).parent / "results"
# The shared CIFAR-10 JPEG training split (`train/<class>/*.jpg`).
CIFAR10_JPEG = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "cifar10-jpeg-train.tar.gz"
)

_PACKAGES = (
    "keras",
    "tensorflow-cpu",
    "tensorflow",
    "jax",
    "numpy",
    "scipy",
    "onnxruntime",
    "tf2onnx",
)


def cpu_model() -> str:
    """The CPU's model name (`/proc/cpuinfo`), as recorded by `machine_info`."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _gpus() -> list[str]:
    try:
        import jax

        return [str(d) for d in jax.devices() if d.platform == "gpu"]
    except Exception:  # noqa: BLE001 - any failure means "no GPU visible"
        return []


def machine_info() -> dict:
    """Describes the machine a benchmark ran on (CPU, cores, GPU, versions)."""
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "hostname": platform.node(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "keras_backend": os.environ.get("KERAS_BACKEND", "tensorflow"),
        "gpus": _gpus(),
        "loadavg_1_5_15": list(os.getloadavg()),
        "versions": versions,
    }


def time_call(fn: Callable[[], object], repeats: int = 5, warmup: int = 1):
    """Runs `fn` `warmup + repeats` times; returns (median_s, all_times_s)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def print_table(rows: list[dict], columns: list[str] | None = None) -> None:
    """Prints `rows` (dicts) as an aligned text table."""
    if not rows:
        return
    columns = columns or list(rows[0])

    def fmt(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    widths = [
        max(len(c), *(len(fmt(r.get(c, ""))) for r in rows)) for c in columns
    ]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for r in rows:
        print(
            "  ".join(
                fmt(r.get(c, "")).ljust(w) for c, w in zip(columns, widths)
            )
        )


def write_results(name: str, results: dict, out: str | None = None) -> Path:
    """Writes `{"machine": ..., **results}` as JSON; returns the path."""
    path = Path(out) if out else RESULTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "machine": machine_info(), **results}
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    print(f"wrote {path}")
    return path
