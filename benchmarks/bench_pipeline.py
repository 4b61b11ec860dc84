"""Throughput of the two plan executors, tf.data and grain (images/s).

Usage:
    python benchmarks/bench_pipeline.py [--real] [--batch-size 128]
        [--num-images 50000] [--threads 2] [--out FILE]

Iterates one full epoch per repeat over 32x32 images (synthetic uint8 by
default, the shared CIFAR-10 JPEG archive with `--real`) for: plain (no
augmentation), augmented (crop + flip), augmented + mixup and
class-balanced (crop + flip, long-tailed input, imbalance 0.01), each
with the tf.data executor and the grain executor (same plans, the same
batches bit for bit).
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
from keras_dlpa.data.grain_executor import grain_train_dataset  # noqa: E402
from keras_dlpa.data.pipeline import epoch_keyed_pipeline  # noqa: E402
from keras_dlpa.data.plan import Augmentation  # noqa: E402
from keras_dlpa.data.plan import TrainingInput  # noqa: E402


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
        "plain": (data, Augmentation(0, False)),
        "augmented": (data, Augmentation()),
        "augmented+mixup": (data, Augmentation(mixup_alpha=1.0)),
        "class_balanced": (long_tailed, Augmentation(class_balanced=True)),
    }

    def executor_epoch(executor, source, aug, epoch):
        one_epoch = TrainingInput(args.batch_size, 0, epoch, epoch + 1, aug)
        if executor == "tf":
            dataset, _ = epoch_keyed_pipeline(source, one_epoch)
        else:
            dataset, _ = grain_train_dataset(
                source, one_epoch, num_threads=args.threads
            )
        return dataset

    rows = []
    for name, (source, aug) in configs.items():
        for executor in ("tf", "grain"):
            _epoch_rate(executor_epoch(executor, source, aug, 0))  # warm-up
            rates = [
                _epoch_rate(executor_epoch(executor, source, aug, 1 + r))
                for r in range(args.repeats)
            ]
            rows.append(
                {
                    "pipeline": name,
                    "executor": executor,
                    "images_per_epoch": rates[0][1],
                    "images_per_s_median": float(
                        np.median([r for r, _ in rates])
                    ),
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
