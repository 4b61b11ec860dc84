"""ImageNet-scale input: peak RSS of a streamed --quick run, decode speed.

# generated JPEG tree: ROOT/<class>/NNNN.JPEG, 256 px
python benchmarks/bench_imagenet_input.py make-tree ROOT CLASSES PER
# peak RSS (the run and its decode workers) of a 1-epoch --quick run
python benchmarks/bench_imagenet_input.py rss ROOT OUT.json
# decode + augment images/s at 224 px (1 process, grain workers)
python benchmarks/bench_imagenet_input.py speed ROOT OUT.json
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def make_tree(root, classes, per_class, size=256):
    from PIL import Image

    rng = np.random.default_rng(0)
    for k in range(classes):
        folder = Path(root) / f"n{k:08d}"
        folder.mkdir(parents=True, exist_ok=True)
        colour = rng.uniform(30, 220, size=3)
        for i in range(per_class):
            height = size + int(rng.integers(0, size // 4))
            pixels = colour + rng.normal(0, 25, size=(height, size, 3))
            Image.fromarray(np.clip(pixels, 0, 255).astype("uint8")).save(
                folder / f"{i:04d}.JPEG", quality=85
            )


def _tree_rss(pid):
    """Resident set size (bytes) of `pid` and all its descendants."""
    total = 0
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    stack, main = [pid], 0
    while stack:
        current = stack.pop()
        try:
            with open(f"/proc/{current}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss = int(line.split()[1]) * 1024
                        total += rss
                        main = rss if current == pid else main
        except OSError:
            continue
        stack.extend(children.get(current, []))
    return total, main


def rss(root, out):
    run_dir = Path(tempfile.mkdtemp(prefix="bench-imagenet-")) / "run"
    args = [
        sys.executable, str(REPO / "recipes" / "imagenet_lt.py"),
        "--image-dir", str(root), "--quick", "--epochs", "1",
        "--batch-size", "32", "--workers", "2", "--verbose", "2",
        "--no-report", "--out", str(run_dir),
    ]  # fmt: skip
    load_before = open("/proc/loadavg").read().split()[:3]
    start = time.perf_counter()
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    peak_tree = peak_main = 0
    while process.poll() is None:
        tree, main = _tree_rss(process.pid)
        peak_tree, peak_main = max(peak_tree, tree), max(peak_main, main)
        time.sleep(0.2)
    images = sum(1 for _ in Path(root).rglob("*.JPEG"))
    result = {
        "command": " ".join(args[1:]),
        "images": images,
        "returncode": process.returncode,
        "wall_s": round(time.perf_counter() - start, 1),
        "peak_rss_tree_mb": round(peak_tree / 2**20, 1),
        "peak_rss_main_mb": round(peak_main / 2**20, 1),
        "loadavg_before": load_before,
        "loadavg_after": open("/proc/loadavg").read().split()[:3],
    }
    Path(out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def speed(root, out, images=512):
    from keras_dlpa.data.labelled_paths import load_labelled_paths
    from keras_dlpa.data.stream_plan import StreamAugmentation
    from keras_dlpa.data.streaming import StreamBatchMaker
    from keras_dlpa.data.streaming import grain_stream_dataset

    data = load_labelled_paths(root)
    data = data.subset(np.arange(min(len(data), 4 * images)))
    aug = StreamAugmentation(224, auto_augment="trivial", random_erasing=0.1)
    load = open("/proc/loadavg").read().split()[:3]
    maker = StreamBatchMaker(data, 64, 0, aug)
    steps = images // 64
    start = time.perf_counter()
    for i in range(steps):
        maker(i)
    single = steps * 64 / (time.perf_counter() - start)
    dataset, _ = grain_stream_dataset(data, 64, 0, 0, 1, aug, workers=2)
    iterator = iter(dataset)
    next(iterator)  # worker start-up
    start = time.perf_counter()
    for _ in range(steps - 1):
        next(iterator)
    workers = (steps - 1) * 64 / (time.perf_counter() - start)
    result = {
        "command": f"bench_imagenet_input.py speed {root}",
        "image_size": 224,
        "augmentation": "RRC + flip + TrivialAugment + erasing 0.1",
        "images_per_s_one_process": round(single, 1),
        "images_per_s_grain_2_workers": round(workers, 1),
        "cpu_cores": os.cpu_count(),
        "loadavg_before": load,
        "loadavg_after": open("/proc/loadavg").read().split()[:3],
    }
    Path(out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "make-tree":
        make_tree(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif mode == "rss":
        rss(sys.argv[2], sys.argv[3])
    else:
        speed(sys.argv[2], sys.argv[3])
