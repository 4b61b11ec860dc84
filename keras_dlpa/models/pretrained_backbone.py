"""Pretrained feature backbones: `keras.applications` and keras-hub trunks.

Model layout (layer names): `"images"` (the `Input`); `"preprocessing"`
(`ImageNetPreprocessing(mode)` for families without built-in
preprocessing, or a `Rescaling` with a keras-hub preset converter's scale
and offset); `"trunk"` (the nested pretrained model, see
`set_trunk_trainable`); `"avg_pool"` (keras-hub only); with `dim`,
`"feature_projection"` and `"projection_bn"` (`project_features`).
"""

from __future__ import annotations

import copy
import os
from typing import Optional

import keras

from keras_dlpa.checks import check_int
from keras_dlpa.checks import check_number
from keras_dlpa.models.imagenet_preprocessing import ImageNetPreprocessing
from keras_dlpa.models.per_channel_normalization import check_image_shape
from keras_dlpa.models.projection import project_features
from keras_dlpa.models.regularization import coupled_l2

TRUNK_NAME = "trunk"
KERAS_HUB_PREFIX = "keras_hub:"

# `keras.applications` constructor -> preprocessing its ImageNet weights
# expect on raw 0-255 RGB input. `None`: built into the model
# (`include_preprocessing=True` for EfficientNetV2, ConvNeXt, MobileNetV3).
_FAMILIES = {
    "caffe": ("ResNet50", "ResNet101", "ResNet152"),
    "tf": ("ResNet50V2", "ResNet101V2", "ResNet152V2", "MobileNetV2"),
    "torch": ("DenseNet121", "DenseNet169", "DenseNet201"),
    None: (
        *(f"EfficientNetV2{s}" for s in "B0 B1 B2 B3 S M L".split()),
        *(f"ConvNeXt{s}" for s in "Tiny Small Base Large XLarge".split()),
        *(f"MobileNetV3{s}" for s in ("Small", "Large")),
    ),
}
APPLICATIONS = {
    constructor: mode
    for mode, constructors in _FAMILIES.items()
    for constructor in constructors
}
_WEIGHT_FILE_SUFFIXES = (".weights.h5", ".h5", ".keras")


def _canonical(name: str) -> str:
    """`name` lower-cased without `_` and `-`."""
    return name.lower().replace("_", "").replace("-", "")


_BY_KEY = {_canonical(name): name for name in APPLICATIONS}


def application_name(architecture: str) -> str:
    """The `keras.applications` constructor name for `architecture`.

    Matching ignores case, `_` and `-`: `"resnet50"`, `"ResNet50"`,
    `"convnext_tiny"`, `"efficientnetv2-b0"` all resolve.
    """
    if isinstance(architecture, str):
        found = _BY_KEY.get(_canonical(architecture))
        if found is not None:
            return found
    raise ValueError(
        "`architecture` must be a supported keras.applications model or "
        f"'{KERAS_HUB_PREFIX}<preset>'. Received: "
        f"architecture={architecture!r}. Expected one of "
        f"{sorted(APPLICATIONS)} (case, '_' and '-' are ignored)."
    )


def _check_weights(weights):
    """`weights` as `"imagenet"`, `"none"`, `"preset"` or an existing path."""
    if weights is None:
        return "none"
    if isinstance(weights, (str, os.PathLike)):
        weights = os.fspath(weights)
        if weights in ("imagenet", "none", "preset"):
            return weights
    named = isinstance(weights, str) and weights.endswith(_WEIGHT_FILE_SUFFIXES)
    if not named:
        raise ValueError(
            '`weights` must be "imagenet", "none" or a path ending in '
            f"{', '.join(_WEIGHT_FILE_SUFFIXES)}. Received: "
            f"weights={weights!r}"
        )
    if not os.path.isfile(weights):
        raise FileNotFoundError(
            f"`weights` file not found. Received: weights={weights!r}"
        )
    return weights


def _add_weight_decay(config, weight_decay: float):
    """Sets coupled L2 on every `*_regularizer` of every layer in `config`."""
    if isinstance(config, dict):
        layer_config = config.get("config")
        if "class_name" in config and isinstance(layer_config, dict):
            keys = [k for k in layer_config if k.endswith("_regularizer")]
            for key in set(keys) - {"activity_regularizer"}:
                l2 = coupled_l2(weight_decay)
                layer_config[key] = keras.regularizers.serialize(l2)
        for value in config.values():
            _add_weight_decay(value, weight_decay)
    elif isinstance(config, list):
        for value in config:
            _add_weight_decay(value, weight_decay)


def _load_trunk_weights(trunk: keras.Model, path: str, architecture: str):
    """Loads `path` into `trunk`: a weights file or a saved `.keras` model."""
    if path.endswith(".keras"):
        source = keras.models.load_model(path, compile=False)
        if any(layer.name == TRUNK_NAME for layer in source.layers):
            source = source.get_layer(TRUNK_NAME)
        values = source.get_weights()
        expected = [tuple(v.shape) for v in trunk.weights]
        received = [tuple(v.shape) for v in values]
        if expected != received:
            raise ValueError(
                f"`weights`={path!r} holds a model ({source.name!r}, "
                f"{len(received)} weights) that does not match the "
                f"{architecture} trunk ({len(expected)} weights) built for "
                "this input shape. Pass a `.keras` file of the same "
                "architecture (a backbone with a 'trunk' layer, or the "
                "keras.applications model itself)."
            )
        trunk.set_weights(values)
        return
    try:
        trunk.load_weights(path)
    except Exception as error:
        raise ValueError(
            f"Could not load `weights`={path!r} into the {architecture} "
            f"trunk: {error}. A weights file must hold the weights of the "
            f"keras.applications.{architecture} model without its top "
            "(`include_top=False`), e.g. the Keras ImageNet '*_notop.h5' "
            "file or `backbone.get_layer('trunk').save_weights(...)`."
        ) from error


def _application_trunk(
    architecture: str,
    weights: str,
    input_shape: tuple,
    weight_decay: float,
    name: str = TRUNK_NAME,
    batch_norm: dict | None = None,
) -> keras.Model:
    """The `keras.applications` trunk, pooled, renamed `name`; with
    `weight_decay` or `batch_norm` (overrides of every BatchNormalization
    config) rebuilt from its config so both survive `.keras` save/load."""
    constructor = getattr(keras.applications, architecture)
    built_in = APPLICATIONS[architecture] is None
    kwargs = {"include_preprocessing": True} if built_in else {}
    try:
        base = constructor(
            include_top=False,
            weights="imagenet" if weights == "imagenet" else None,
            input_shape=input_shape,
            pooling="avg",
            **kwargs,
        )
    except Exception as error:
        if isinstance(error, ValueError) or weights != "imagenet":
            raise
        raise RuntimeError(
            f"Could not get the ImageNet weights of {architecture} "
            f"(keras.applications downloads them on first use): {error}. "
            "Download the '*_notop.h5' file on a machine with network "
            "access (Keras caches it in ~/.keras/models/) and pass "
            'weights="/path/to/file.h5", or use weights="none".'
        ) from error
    if weight_decay or batch_norm:
        config = copy.deepcopy(base.get_config())
        config["name"] = name
        if weight_decay:
            _add_weight_decay(config["layers"], weight_decay)
        for layer in config["layers"]:
            if layer["class_name"] == "BatchNormalization":
                layer["config"].update(batch_norm or {})
        trunk = keras.Model.from_config(config)
        trunk.set_weights(base.get_weights())
    else:
        trunk = base
        trunk.name = name
    if weights not in ("imagenet", "none"):
        _load_trunk_weights(trunk, weights, architecture)
    return trunk


def _hub_trunk(preset: str, weights: str, weight_decay: float):
    """`(preprocessing, trunk)` from a keras-hub preset (directory/handle)."""
    try:
        import keras_hub
    except ImportError as error:
        raise ImportError(
            "keras-hub backbones need the optional `keras-hub` package: "
            "`pip install keras-hub` (tested with keras-hub 0.32.0)."
        ) from error
    if weight_decay:
        raise ValueError(
            "`weight_decay` (coupled L2) is not supported for keras-hub "
            f"backbones. Received: weight_decay={weight_decay!r}. Use 0.0 "
            "and an optimizer with weight decay (e.g. `AdamW`)."
        )
    try:
        converter = keras_hub.layers.ImageConverter.from_preset(preset)
    except FileNotFoundError as error:
        raise ValueError(
            f"The keras-hub preset {preset!r} has no image converter to map "
            "raw 0-255 pixels to the trunk's input range; save one with "
            f"`ImageConverter(...).save_to_preset(dir)`. Cause: {error}"
        ) from error
    # The converter's scale/offset only: in Keras 3.15.1 its `Resizing`
    # defaults to `training=True` and, in a model called without
    # `training`, puts the BatchNorm layers after it into training mode.
    config = converter.get_config()
    scale, offset = config.get("scale"), config.get("offset")
    preprocessing = keras.layers.Rescaling(
        1.0 if scale is None else scale,
        0.0 if offset is None else offset,
        name="preprocessing",
    )
    trunk = keras_hub.models.Backbone.from_preset(
        preset, load_weights=weights in ("imagenet", "preset"), name=TRUNK_NAME
    )
    if weights not in ("imagenet", "preset", "none"):
        _load_trunk_weights(trunk, weights, f"keras-hub preset {preset!r}")
    return preprocessing, trunk


def pretrained_backbone(
    architecture: str,
    weights: Optional[str] = "none",
    input_shape: tuple = (224, 224, 3),
    dim: Optional[int] = None,
    weight_decay: float = 0.0,
    trainable: bool = True,
    name: Optional[str] = None,
) -> keras.Model:
    """Builds a pretrained feature backbone: raw images -> features `(B, d)`.

    The trunk (a `keras.applications` model with `pooling="avg"`, or a
    keras-hub `Backbone` + global average pooling) has its input
    preprocessing inside the model, so it takes raw RGB pixels in
    `[0, 255]` (docs/backbones.md; keras-hub images must arrive at
    `input_shape`). With `dim`, `project_features` maps the pooled
    features to `d`; otherwise `d` is the trunk's width (e.g. 2048 for
    ResNet50).

    Args:
        architecture: a constructor name from `APPLICATIONS` (case, `_` and
            `-` ignored: `"resnet50"`, `"convnext_tiny"`), or
            `"keras_hub:<preset>"` (a keras-hub preset directory or handle;
            keras-hub is optional).
        weights: `"imagenet"` (downloaded by Keras on first use; keras-hub:
            `"imagenet"` or `"preset"`, the preset's weights), `"none"` (or
            None: random init), or a path: a `.h5` / `.weights.h5` file of
            the trunk's weights (e.g. a Keras `*_notop.h5`) or a `.keras`
            model holding a `"trunk"` layer or the application model.
        input_shape: `(H, W, 3)`. keras.applications need H, W >= 32.
        dim: projection size `d`; None keeps the trunk's width.
        weight_decay: PyTorch SGD weight decay as coupled L2 (Keras factor
            `weight_decay / 2`) on every trunk weight whose layer takes a
            regularizer (not ConvNeXt's layer-scale factors) and on the
            projection. Not supported for keras-hub trunks.
        trainable: False freezes the trunk (its BatchNorm layers then run
            in inference mode); the projection stays trainable.
        name: model name; default `f"{architecture}_backbone"`.

    Returns:
        A functional `keras.Model`, images `(B, H, W, 3)` -> `(B, d)`, with
        the trunk as the nested layer `"trunk"`.
    """
    weights = _check_weights(weights)
    input_shape = check_image_shape(input_shape, channels=3)
    dim = check_int("dim", dim, allow_none=True)
    check_number("weight_decay", weight_decay, closed=True)
    inputs = keras.Input(shape=input_shape, name="images")
    if isinstance(architecture, str) and architecture.startswith(
        KERAS_HUB_PREFIX
    ):
        preset = architecture[len(KERAS_HUB_PREFIX) :]
        preprocessing, trunk = _hub_trunk(preset, weights, weight_decay)
        x = trunk(preprocessing(inputs))
        if len(x.shape) == 4:
            x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        elif len(x.shape) == 3:
            x = keras.layers.GlobalAveragePooling1D(name="avg_pool")(x)
        default_name = preset.rstrip("/").split("/")[-1]
    else:
        if weights == "preset":
            raise ValueError(
                'weights="preset" is for keras-hub backbones. Use '
                '"imagenet", "none" or a path for keras.applications.'
            )
        architecture = application_name(architecture)
        trunk = _application_trunk(
            architecture, weights, input_shape, weight_decay
        )
        x = inputs
        mode = APPLICATIONS[architecture]
        if mode is not None:
            x = ImageNetPreprocessing(mode, name="preprocessing")(x)
        x = trunk(x)
        default_name = architecture
    trunk.trainable = bool(trainable)
    if dim is not None:
        x = project_features(x, dim, weight_decay)
    name = name or f"{_canonical(default_name)}_backbone"
    return keras.Model(inputs, x, name=name)
