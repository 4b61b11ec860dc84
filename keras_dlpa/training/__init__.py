"""Training runner: config, data of a run, model, checkpoints, logging.

Backend-agnostic (TensorFlow and JAX): TensorFlow is imported only for the
tf.data executor, tf.distribute and TF op determinism, when used.
"""

from keras_dlpa.training.checkpoint import CheckpointError
from keras_dlpa.training.checkpoint import RunCheckpoint
from keras_dlpa.training.checkpoint import latest_checkpoint
from keras_dlpa.training.config import DataConfig
from keras_dlpa.training.config import ExperimentConfig
from keras_dlpa.training.config import ModelConfig
from keras_dlpa.training.config import OptimisationConfig
from keras_dlpa.training.config import RunConfig
from keras_dlpa.training.recipes import RECIPES
from keras_dlpa.training.run_logger import RunLogger
from keras_dlpa.training.run_logger import read_metrics
from keras_dlpa.training.runner import checkpoint_epoch
from keras_dlpa.training.runner import run_experiment

__all__ = [
    "RECIPES",
    "CheckpointError",
    "DataConfig",
    "ExperimentConfig",
    "ModelConfig",
    "OptimisationConfig",
    "RunCheckpoint",
    "RunConfig",
    "RunLogger",
    "checkpoint_epoch",
    "latest_checkpoint",
    "read_metrics",
    "run_experiment",
]
