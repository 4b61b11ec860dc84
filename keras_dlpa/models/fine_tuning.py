"""Fine-tuning helpers for models with a pretrained `"trunk"` layer.

The typical schedule (a frozen-trunk warm-up, then the whole model with a
lower learning rate on the trunk) is in docs/backbones.md.
"""

import re

import keras

from keras_dlpa.models.pretrained_backbone import TRUNK_NAME


def get_trunk(model: keras.Model) -> keras.Layer:
    """The layer named `"trunk"` of `model` (a `pretrained_backbone` or a
    functional model built on it, e.g. a `PrototypeClassifier`)."""
    for layer in model.layers:
        if layer.name == TRUNK_NAME:
            return layer
    raise ValueError(
        f"Model {model.name!r} has no layer named {TRUNK_NAME!r}. Expected "
        "a `keras_dlpa.models.pretrained_backbone(...)` or a model built "
        "on it. Received layers: "
        f"{[layer.name for layer in model.layers]}"
    )


def set_trunk_trainable(
    model: keras.Model, trainable: bool, freeze_batchnorm: bool = False
) -> keras.Layer:
    """Freezes or unfreezes the pretrained trunk of `model`.

    A frozen trunk's BatchNorm layers run in inference mode; layers outside
    it keep training. Saved in the configs; call `model.compile()` again.

    Args:
        model: a model with a `"trunk"` layer (`get_trunk`).
        trainable: whether the trunk's weights train.
        freeze_batchnorm: with `trainable=True`, keep the trunk's
            BatchNormalization layers frozen and in inference mode (common
            when fine-tuning with small batches).

    Returns:
        The trunk layer.
    """
    trunk = get_trunk(model)
    trunk.trainable = bool(trainable)
    if trainable and freeze_batchnorm:
        for layer in _sublayers(trunk):
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
    return trunk


def _sublayers(layer):
    for sub in getattr(layer, "layers", ()):
        yield sub
        yield from _sublayers(sub)


def split_trainable_variables(model: keras.Model) -> tuple:
    """`(trunk_variables, head_variables)`: `model.trainable_variables`
    split between the `"trunk"` layer and all other layers."""
    trunk_ids = {id(v) for v in get_trunk(model).trainable_variables}
    trunk, head = [], []
    for variable in model.trainable_variables:
        (trunk if id(variable) in trunk_ids else head).append(variable)
    return trunk, head


def discriminative_optimizer(
    model: keras.Model,
    head_optimizer: keras.optimizers.Optimizer,
    trunk_optimizer: keras.optimizers.Optimizer,
) -> keras.optimizers.MultiOptimizer:
    """One optimizer with its own settings for the trunk and for the head.

    A Keras `MultiOptimizer` mapping each trainable trunk variable (by
    `path`) to `trunk_optimizer`, the others to `head_optimizer`. Build it
    after `set_trunk_trainable`; it has no `learning_rate` of its own (put
    schedules on the inner optimizers, docs/backbones.md).

    Args:
        model: a model with a `"trunk"` layer (`get_trunk`).
        head_optimizer: optimizer for every non-trunk variable.
        trunk_optimizer: optimizer for the trunk's variables.

    Returns:
        A `keras.optimizers.MultiOptimizer`.
    """
    for arg, value in (
        ("head_optimizer", head_optimizer),
        ("trunk_optimizer", trunk_optimizer),
    ):
        if not isinstance(value, keras.optimizers.Optimizer):
            raise ValueError(
                f"`{arg}` must be a keras.optimizers.Optimizer instance. "
                f"Received: {arg}={value!r}"
            )
    if head_optimizer is trunk_optimizer:
        raise ValueError(
            "`head_optimizer` and `trunk_optimizer` must be two different "
            "optimizer instances."
        )
    trunk_variables, head_variables = split_trainable_variables(model)
    trunk_paths = [v.path for v in trunk_variables]
    clashes = sorted(set(trunk_paths) & {v.path for v in head_variables})
    if len(set(trunk_paths)) != len(trunk_paths) or clashes:
        raise ValueError(
            "Variable paths must be unique to map them to optimizers; "
            f"shared by the trunk and the head: {clashes[:5]}. Rename the "
            "head layers."
        )
    optimizer_map = keras.optimizers.OptimizerMap(head_optimizer)
    for path in trunk_paths:
        # Keys are regular expressions (matched in full); escape the path.
        optimizer_map[re.escape(path)] = trunk_optimizer
    return keras.optimizers.MultiOptimizer(optimizer_map)
