"""Compatibility entry point: the runner lives in `keras_dlpa.training`."""

from keras_dlpa.training import ExperimentConfig
from keras_dlpa.training import checkpoint_epoch
from keras_dlpa.training import read_metrics
from keras_dlpa.training import run_experiment
from keras_dlpa.training.sources import load_data
from keras_dlpa.training.sources import make_splits

__all__ = [
    "ExperimentConfig",
    "checkpoint_epoch",
    "load_data",
    "make_splits",
    "read_metrics",
    "run_experiment",
]
