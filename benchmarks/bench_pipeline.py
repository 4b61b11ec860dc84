"""Throughput of the two plan executors, tf.data and grain (images/s).

Usage:
    python benchmarks/bench_pipeline.py [--real] [--batch-size 128]
        [--num-images 50000] [--threads 2] [--backend-subprocess]
        [--out FILE]

Iterates one full epoch per repeat over 32x32 images (synthetic uint8 by
default, the shared CIFAR-10 JPEG archive with `--real`) for: plain (no
augmentation), augmented (crop + flip), augmented + mixup and
class-balanced (crop + flip, long-tailed input, imbalance 0.01), each
with the tf.data executor and the grain executor (same plans, the same
batches bit for bit).

`--backend-subprocess` adds, in the same run, rows for the grain executor
read the way `fit` reads it on each Keras backend (TensorFlow, JAX,
PyTorch): through Keras' grain data adapter (`get_tf_dataset`,
`get_jax_iterator`, `get_torch_dataloader`) to backend tensors, one
backend per subprocess; the JSON holds every row.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
# The repo root first: the editable install may resolve `keras_dlpa` as a
# namespace package when run from elsewhere.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from _common import CIFAR10_JPEG  # noqa: E402
from _common import print_table  # noqa: E402
from _common import write_results  # noqa: E402

from keras_dlpa.data import from_arrays  # noqa: E402
from keras_dlpa.data import load_image_folder  # noqa: E402
from keras_dlpa.data import make_long_tailed  # noqa: E402
from keras_dlpa.data.grain_executor import grain_train_dataset  # noqa: E402
from keras_dlpa.data.plan import Augmentation  # noqa: E402
from keras_dlpa.data.plan import TrainingInput  # noqa: E402


def _epoch_rate(dataset) -> tuple[float, int]:
    start = time.perf_counter()
    count = 0
    for images, _ in dataset:
        count += int(images.shape[0])
    return count / (time.perf_counter() - start), count


BACKENDS = ("tensorflow", "jax", "torch")


def _keras_batches(dataset, steps):
    """`dataset`'s batches as the Keras trainer of this process's backend
    reads a grain dataset in `fit`, converted to backend tensors."""
    import keras
    from keras.src.trainers.data_adapters import get_data_adapter

    adapter = get_data_adapter(dataset, steps_per_epoch=steps, shuffle=False)
    backend = keras.backend.backend()
    if backend == "tensorflow":
        batches = adapter.get_tf_dataset()
    elif backend == "jax":
        batches = adapter.get_jax_iterator()
    else:
        batches = adapter.get_torch_dataloader()
    for images, labels, *_ in batches:
        yield keras.ops.convert_to_tensor(images), labels


def _backend_rows(argv, out):
    """Runs this script once per backend (`--keras-adapter`), returns the
    rows of all of them."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for backend in BACKENDS:
            path = Path(tmp) / f"{backend}.json"
            cmd = [sys.executable, str(Path(__file__).resolve()), *argv]
            cmd += ["--keras-adapter", "--out", str(path)]
            env = dict(os.environ, KERAS_BACKEND=backend)
            print(f"== KERAS_BACKEND={backend}: {' '.join(cmd)}", flush=True)
            subprocess.run(cmd, env=env, check=True)
            rows += json.loads(path.read_text())["results"]
    return rows


def _argv_without(argv, *names):
    rest, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg.split("=")[0] in names:
            skip = "=" not in arg and arg != "--backend-subprocess"
        else:
            rest.append(arg)
    return rest


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", action="store_true")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--num-images", type=int, default=50000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--backend-subprocess",
        action="store_true",
        help="also time grain through Keras' data adapter on TensorFlow, "
        "JAX and PyTorch, each in its own process",
    )
    parser.add_argument(
        "--keras-adapter",
        action="store_true",
        help="(one backend's subprocess) time only grain through Keras' "
        "data adapter on this process's backend",
    )
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if not args.keras_adapter:
        import tensorflow as tf

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
            from keras_dlpa.data.pipeline import epoch_keyed_pipeline

            dataset, _ = epoch_keyed_pipeline(source, one_epoch)
            return dataset
        dataset, steps = grain_train_dataset(
            source, one_epoch, num_threads=args.threads
        )
        if executor == "grain":
            return dataset
        return _keras_batches(dataset, steps)

    if args.keras_adapter:
        import keras

        executors, backend = ("grain+keras",), keras.backend.backend()
    else:
        executors, backend = ("tf", "grain"), None
    rows = []
    for name, (source, aug) in configs.items():
        for executor in executors:
            _epoch_rate(executor_epoch(executor, source, aug, 0))  # warm-up
            rates = [
                _epoch_rate(executor_epoch(executor, source, aug, 1 + r))
                for r in range(args.repeats)
            ]
            rows.append(
                {
                    "pipeline": name,
                    "executor": executor,
                    **({"backend": backend} if backend else {}),
                    "images_per_epoch": rates[0][1],
                    "images_per_s_median": float(
                        np.median([r for r, _ in rates])
                    ),
                    "images_per_s_min": float(min(r for r, _ in rates)),
                }
            )
    if args.backend_subprocess:
        argv = _argv_without(sys.argv[1:], "--backend-subprocess", "--out")
        rows += _backend_rows(argv, args.out)
    columns = ["pipeline", "executor", "backend", "images_per_epoch"]
    columns += ["images_per_s_median", "images_per_s_min"]
    print_table(rows, columns if args.backend_subprocess else None)
    write_results(
        "bench_pipeline",
        {
            "config": {**vars(args), "source_load_s": load_s},
            "command": "python "
            + " ".join([f"benchmarks/{Path(__file__).name}"] + sys.argv[1:]),
            "results": rows,
        },
        args.out,
    )


if __name__ == "__main__":
    main()
