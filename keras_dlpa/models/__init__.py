"""Feature backbones: images -> features `(B, d)` for the prototype head."""

from keras_dlpa.models.cifar_resnet import OptionAShortcut
from keras_dlpa.models.cifar_resnet import basic_block
from keras_dlpa.models.cifar_resnet import cifar_resnet
from keras_dlpa.models.cifar_resnet import cifar_resnet32
from keras_dlpa.models.imagenet_resnet import resnet50_backbone
from keras_dlpa.models.per_channel_normalization import CIFAR10_MEAN
from keras_dlpa.models.per_channel_normalization import CIFAR10_STD
from keras_dlpa.models.per_channel_normalization import CIFAR100_MEAN
from keras_dlpa.models.per_channel_normalization import CIFAR100_STD
from keras_dlpa.models.per_channel_normalization import IMAGENET_MEAN
from keras_dlpa.models.per_channel_normalization import IMAGENET_STD
from keras_dlpa.models.per_channel_normalization import PerChannelNormalization
from keras_dlpa.models.presets import BACKBONE_PRESETS
from keras_dlpa.models.presets import backbone_from_preset

__all__ = [
    "BACKBONE_PRESETS",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CIFAR100_MEAN",
    "CIFAR100_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "OptionAShortcut",
    "PerChannelNormalization",
    "backbone_from_preset",
    "basic_block",
    "cifar_resnet",
    "cifar_resnet32",
    "resnet50_backbone",
]
