"""Hyperspherical prototypes: estimation (`estimate`) and files (`storage`)."""

from keras_dlpa.prototypes.estimate import EstimationOptions
from keras_dlpa.prototypes.estimate import estimate_prototypes
from keras_dlpa.prototypes.estimate import prototype_quality
from keras_dlpa.prototypes.estimate import simplex_etf
from keras_dlpa.prototypes.estimate import uniformity_loss
from keras_dlpa.prototypes.storage import cache_path
from keras_dlpa.prototypes.storage import cached_prototypes
from keras_dlpa.prototypes.storage import load_prototypes
from keras_dlpa.prototypes.storage import save_prototypes

__all__ = [
    "EstimationOptions",
    "cache_path",
    "cached_prototypes",
    "estimate_prototypes",
    "load_prototypes",
    "prototype_quality",
    "save_prototypes",
    "simplex_etf",
    "uniformity_loss",
]
