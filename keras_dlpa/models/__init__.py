"""Feature backbones: images -> features `(B, d)` for the prototype head."""

from keras_dlpa.models.cifar_resnet import OptionAShortcut
from keras_dlpa.models.cifar_resnet import basic_block
from keras_dlpa.models.cifar_resnet import cifar_resnet
from keras_dlpa.models.cifar_resnet import cifar_resnet32
from keras_dlpa.models.fine_tuning import discriminative_optimizer
from keras_dlpa.models.fine_tuning import get_trunk
from keras_dlpa.models.fine_tuning import set_trunk_trainable
from keras_dlpa.models.fine_tuning import split_trainable_variables
from keras_dlpa.models.imagenet_preprocessing import ImageNetPreprocessing
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
from keras_dlpa.models.pretrained_backbone import APPLICATIONS
from keras_dlpa.models.pretrained_backbone import TRUNK_NAME
from keras_dlpa.models.pretrained_backbone import pretrained_backbone
from keras_dlpa.models.projection import project_features

__all__ = [
    "APPLICATIONS",
    "ImageNetPreprocessing",
    "BACKBONE_PRESETS",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CIFAR100_MEAN",
    "CIFAR100_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "OptionAShortcut",
    "PerChannelNormalization",
    "TRUNK_NAME",
    "backbone_from_preset",
    "basic_block",
    "cifar_resnet",
    "cifar_resnet32",
    "discriminative_optimizer",
    "get_trunk",
    "pretrained_backbone",
    "project_features",
    "resnet50_backbone",
    "set_trunk_trainable",
    "split_trainable_variables",
]
