"""Throughput of the keras_dlpa.data training pipelines (images/s).

Usage:
    python benchmarks/bench_pipeline.py [--real] [--batch-size 128]
        [--num-images 50000] [--threads 2] [--out FILE]

Iterates one full epoch per repeat over 32x32 images (synthetic uint8 by
default, the shared CIFAR-10 JPEG archive with `--real`) for: plain (no
augmentation), augmented (crop + flip), augmented + mixup and
class-balanced (crop + flip, long-tailed input, imbalance 0.01).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from _common import CIFAR10_JPEG  # noqa: E402
from _common import print_table  # noqa: E402
from _common import write_results  # noqa: E402

from keras_dlpa.data import from_arrays  # noqa: E402
from keras_dlpa.data import load_image_folder  # noqa: E402
from keras_dlpa.data import make_long_tailed  # noqa: E402
from keras_dlpa.data import train_pipeline  # noqa: E402


def _epoch_rate(dataset) -> tuple[float, int]:
    start = time.perf_counter()
    count = 0
    for images, _ in dataset:
        count += int(images.shape[0])
    return count / (time.perf_counter() - start), count


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", action="store_true")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--num-images", type=int, default=50000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)

    if args.real:
        start = time.perf_counter()
        data = load_image_folder(CIFAR10_JPEG)
        load_s = time.perf_counter() - start
    else:
        rng = np.random.default_rng(0)
        images = rng.integers(
            0, 256, (args.num_images, 32, 32, 3), dtype=np.uint8
        )
        data = from_arrays(images, np.arange(args.num_images) % 10)
        load_s = 0.0
    long_tailed = make_long_tailed(data, 0.01, seed=0)

    configs = {
        "plain": (data, dict(crop_padding=0, flip=False)),
        "augmented": (data, {}),
        "augmented+mixup": (data, dict(mixup_alpha=1.0)),
        "class_balanced": (long_tailed, dict(class_balanced=True)),
    }
    rows = []
    for name, (source, kwargs) in configs.items():
        dataset = train_pipeline(source, args.batch_size, seed=0, **kwargs)
        _epoch_rate(dataset.take(20))  # warm-up: tracing, threads
        rates = [_epoch_rate(dataset) for _ in range(args.repeats)]
        rows.append(
            {
                "pipeline": name,
                "images_per_epoch": rates[0][1],
                "images_per_s_median": float(np.median([r for r, _ in rates])),
                "images_per_s_min": float(min(r for r, _ in rates)),
            }
        )
    print_table(rows)
    write_results(
        "bench_pipeline",
        {
            "config": {**vars(args), "source_load_s": load_s},
            "results": rows,
        },
        args.out,
    )


if __name__ == "__main__":
    main()
