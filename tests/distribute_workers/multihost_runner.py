"""One process of a (multi-host) streamed `run_experiment`, counting reads.

Usage: python multihost_runner.py CONFIG.json OUT.npz

`CONFIG.json` holds `ExperimentConfig` fields; the backend comes from
`KERAS_BACKEND`, the cluster from `TF_CONFIG` (TensorFlow) or the
`KERAS_DISTRIBUTION_*` variables (JAX). Every image this process reads is
recorded (decode in this process: `data_workers=0`). Writes the saved
model's weights, `final_state.npz`, the recorded `input_shard` and
`num_replicas` of the run directory (`out`, or `out/worker-k` for worker
`k > 0`) and the reads.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(os.path.dirname(HERE))]

import _tiny  # noqa: E402
import numpy as np  # noqa: E402

from keras_dlpa.training import ExperimentConfig  # noqa: E402
from keras_dlpa.training import run_experiment  # noqa: E402


def _load(run_dir, name):
    with open(os.path.join(run_dir, name), encoding="utf-8") as f:
        return json.load(f)


def main():
    config_path, out = sys.argv[1], sys.argv[2]
    with open(config_path, encoding="utf-8") as f:
        config = ExperimentConfig.from_dict(json.load(f))
    reads = _tiny.count_reads()
    run_experiment(config)
    import keras

    index = _tiny.process_index()
    run_dir = config.run.out
    if index > 0:  # workers other than the chief write a subdirectory
        run_dir = os.path.join(config.run.out, f"worker-{index}")
    resolved = _load(run_dir, "config.json")
    evaluation = _load(run_dir, "evaluation.json")
    model = keras.saving.load_model(
        os.path.join(run_dir, "model.keras"), compile=False
    )
    np.savez(
        out,
        reads=np.asarray(reads, dtype=str),
        weights=np.concatenate([w.ravel() for w in model.get_weights()]),
        input_shard=np.asarray(resolved["input_shard"]),
        num_replicas=resolved["num_replicas"],
        val_top1=evaluation["last"]["top1"],
        **dict(np.load(os.path.join(run_dir, "final_state.npz"))),
    )


if __name__ == "__main__":
    main()
