"""Backbone presets: plain config dicts with a description, in one place."""

import copy

import keras

from keras_dlpa.checks import check_choice
from keras_dlpa.models.cifar_resnet import cifar_resnet
from keras_dlpa.models.imagenet_resnet import resnet50_backbone
from keras_dlpa.models.per_channel_normalization import CIFAR10_MEAN
from keras_dlpa.models.per_channel_normalization import CIFAR10_STD
from keras_dlpa.models.per_channel_normalization import CIFAR100_MEAN
from keras_dlpa.models.per_channel_normalization import CIFAR100_STD
from keras_dlpa.models.per_channel_normalization import IMAGENET_MEAN
from keras_dlpa.models.per_channel_normalization import IMAGENET_STD
from keras_dlpa.models.pretrained_backbone import pretrained_backbone

_BUILDERS = {
    "cifar_resnet": cifar_resnet,
    "resnet50_backbone": resnet50_backbone,
    "pretrained_backbone": pretrained_backbone,
}
_CIFAR10 = (CIFAR10_MEAN, CIFAR10_STD)
_CIFAR100 = (CIFAR100_MEAN, CIFAR100_STD)
_IMAGENET = (IMAGENET_MEAN, IMAGENET_STD)


def _cifar(settings, description):
    """A `cifar_resnet` preset from (depth, variant, width, wd, statistics)."""
    keys = ("depth", "variant", "width", "weight_decay", "input_statistics")
    config = dict(zip(keys, settings))
    return {
        "description": description,
        "builder": "cifar_resnet",
        "config": config,
    }


def _pretrained(architecture, description):
    return {
        "description": (
            f"{description} Raw 0-255 RGB input (the application's own "
            "preprocessing is inside), global average pooling, no "
            "projection unless `dim` is given. Random init unless "
            "weights='imagenet' (downloaded) or a file path."
        ),
        "builder": "pretrained_backbone",
        "config": {
            "architecture": architecture,
            "weights": "none",
            "input_shape": (224, 224, 3),
            "dim": None,
            "weight_decay": 0.0,
            "trainable": True,
        },
    }


BACKBONE_PRESETS = {
    "resnet32_lt_cifar10": _cifar(
        (32, "long_tailed", 16, 2e-4, _CIFAR10),
        "ResNet-32 16/32/64, option-A shortcuts, BatchNorm feature head, "
        "d = 64; CIFAR-10-LT recipe (wd 2e-4, CIFAR-10 statistics).",
    ),
    "resnet32_lt_cifar100": _cifar(
        (32, "long_tailed", 32, 2e-4, _CIFAR100),
        "ResNet-32 32/64/128, option-A shortcuts, BatchNorm feature head, "
        "d = 128; CIFAR-100-LT recipe (wd 2e-4, CIFAR-100 statistics).",
    ),
    "resnet32_cifar100": _cifar(
        (32, "balanced", 16, 1e-4, _CIFAR100),
        "ResNet-32 16/32/64, conv shortcuts, Dense(64 -> dim) with bias; "
        "balanced CIFAR-100 recipe (wd 1e-4, CIFAR-100 statistics). "
        "Pass dim (10/25/50/100 in the paper).",
    ),
    "resnet50_imagenet": {
        "description": (
            "ResNet-50 (keras.applications, random init) + Dense(2048 -> "
            "512, no bias); ImageNet recipe (wd 2e-5, ImageNet statistics)."
        ),
        "builder": "resnet50_backbone",
        "config": {
            "dim": 512,
            "input_shape": (224, 224, 3),
            "weights": None,
            "weight_decay": 2e-5,
            "input_statistics": _IMAGENET,
        },
    },
    "resnet8_tiny": _cifar(
        (8, "long_tailed", 8, 2e-5, _IMAGENET),
        "CIFAR-style ResNet-8, widths 8/16/32, BatchNorm feature head, "
        "d = 32; the small backbone of the ImageNet recipes' --quick runs "
        "(any image size; ImageNet statistics).",
    ),
    "resnet50_keras_applications": _pretrained(
        "ResNet50",
        "keras.applications.ResNet50 (Keras BatchNorm settings), "
        "d = 2048; caffe-style preprocessing.",
    ),
    "efficientnetv2b0": _pretrained(
        "EfficientNetV2B0", "keras.applications.EfficientNetV2B0, d = 1280."
    ),
    "efficientnetv2s": _pretrained(
        "EfficientNetV2S",
        "keras.applications.EfficientNetV2S, d = 1280 (ImageNet "
        "weights trained at 384 x 384).",
    ),
    "mobilenetv3small": _pretrained(
        "MobileNetV3Small",
        "keras.applications.MobileNetV3Small, d = 576 (quick runs and tests).",
    ),
    "convnext_tiny": _pretrained(
        "ConvNeXtTiny", "keras.applications.ConvNeXtTiny, d = 768."
    ),
}


def backbone_from_preset(preset: str, **overrides) -> keras.Model:
    """Builds the backbone registered as `preset` in `BACKBONE_PRESETS`.

    Args:
        preset: a key of `BACKBONE_PRESETS`.
        **overrides: builder arguments that replace the preset's values
            (e.g. `dim=50`, `weight_decay=0.0`, `input_statistics=None`;
            `mean=..., std=...` stand for `input_statistics=(mean, std)`,
            `mean=None, std=None` for None), and `name` (default: the
            preset's name).

    Returns:
        The functional backbone, images `(B, H, W, C)` -> features `(B, d)`.
    """
    check_choice("preset", preset, sorted(BACKBONE_PRESETS))
    entry = BACKBONE_PRESETS[preset]
    config = copy.deepcopy(entry["config"])
    name = overrides.pop("name", preset)
    if "mean" in overrides or "std" in overrides:
        statistics = (overrides.pop("mean", None), overrides.pop("std", None))
        overrides["input_statistics"] = (
            None if statistics == (None, None) else statistics
        )
    config.update(overrides)
    model = _BUILDERS[entry["builder"]](**config)
    model.name = name
    return model
