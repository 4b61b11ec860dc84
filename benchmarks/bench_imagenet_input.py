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


def speed(root, out, images=512, repeats=3):
    """Decode + augment images/s at 224 px: one process, then grain with
    2 worker processes; median of `repeats` passes over `images`."""
    import statistics

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import machine_info

    from keras_dlpa.data.labelled_paths import load_labelled_paths
    from keras_dlpa.data.plan import TrainingInput
    from keras_dlpa.data.stream_plan import StreamAugmentation
    from keras_dlpa.data.streaming import StreamBatchMaker
    from keras_dlpa.data.streaming import grain_stream_dataset

    data = load_labelled_paths(root)
    data = data.subset(np.arange(min(len(data), 4 * images)))
    aug = StreamAugmentation(224, auto_augment="trivial", random_erasing=0.1)
    load = open("/proc/loadavg").read().split()[:3]
    maker = StreamBatchMaker(data, 64, 0, aug)
    steps = images // 64
    single = []
    for r in range(repeats):
        start = time.perf_counter()
        for i in range(steps):
            maker(r * steps + i)
        single.append(steps * 64 / (time.perf_counter() - start))
    per_epoch = max(len(data) // 64, 1)
    epochs = -(-(1 + repeats * steps) // per_epoch)  # enough batches
    dataset, _ = grain_stream_dataset(
        data, TrainingInput(64, 0, 0, epochs, aug), workers=2
    )
    iterator = iter(dataset)
    next(iterator)  # worker start-up
    workers = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            next(iterator)
        workers.append(steps * 64 / (time.perf_counter() - start))
    result = {
        "command": f"python benchmarks/bench_imagenet_input.py speed {root} "
        f"{out}",
        "machine": machine_info(),
        "image_size": 224,
        "augmentation": "RRC + flip + TrivialAugment + erasing 0.1",
        "images_per_pass": steps * 64,
        "repeats": repeats,
        "images_per_s_one_process": round(statistics.median(single), 1),
        "images_per_s_grain_2_workers": round(statistics.median(workers), 1),
        "samples_one_process": [round(v, 1) for v in single],
        "samples_grain_2_workers": [round(v, 1) for v in workers],
        "cpu_cores": os.cpu_count(),
        "loadavg_before": load,
        "loadavg_after": open("/proc/loadavg").read().split()[:3],
    }
    Path(out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    tree = sub.add_parser("make-tree", help="generate a JPEG tree")
    tree.add_argument("root")
    tree.add_argument("classes", type=int)
    tree.add_argument("per_class", type=int)
    for name, text in (
        ("rss", "peak RSS of a --quick run"),
        ("speed", "decode + augment images/s"),
    ):
        mode = sub.add_parser(name, help=text)
        mode.add_argument("root", help="a tree written by make-tree")
        mode.add_argument("out", help="JSON output file")
    args = parser.parse_args(argv)
    if args.mode == "make-tree":
        make_tree(args.root, args.classes, args.per_class)
        return 0
    if not Path(args.root).is_dir():
        parser.error(
            f"ROOT must be a directory written by make-tree. Received: "
            f"{args.root!r}"
        )
    (rss if args.mode == "rss" else speed)(args.root, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
