"""Fine-tuning helpers for models with a pretrained `"trunk"` layer.

Typical schedule: a frozen-trunk warm-up (only the projection and the head
learn), then the whole model with a lower learning rate on the trunk:

```python
backbone = pretrained_backbone("ResNet50", weights="imagenet", dim=128)
model = keras_dlpa.PrototypeClassifier(backbone, num_classes)
set_trunk_trainable(model, False)
model.compile(optimizer=keras.optimizers.SGD(0.1), loss=...)
model.fit(..., epochs=warmup_epochs)
set_trunk_trainable(model, True)
model.compile(  # Keras needs compile() after a trainable change.
    optimizer=discriminative_optimizer(
        model,
        head_optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
        trunk_optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
    ),
    loss=...,
)
model.fit(..., initial_epoch=warmup_epochs, epochs=total_epochs)
```
"""

import re

import keras

from keras_dlpa.models.pretrained_backbone import TRUNK_NAME


def get_trunk(model: keras.Model) -> keras.Layer:
    """The pretrained trunk of `model`: its layer named `"trunk"`.

    Works on a `pretrained_backbone` and on any functional model built on
    it (e.g. `keras_dlpa.PrototypeClassifier(backbone, ...)`).
    """
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

    A frozen trunk (`trainable=False`) has no trainable weights and its
    BatchNormalization layers run in inference mode (Keras does this for
    `trainable=False` BatchNorm), so neither weights nor moving statistics
    change; layers outside the trunk (projection, head) keep training.
    `freeze_batchnorm=True` with `trainable=True` unfreezes the trunk but
    keeps its BatchNorm layers frozen and in inference mode (common when
    fine-tuning with small batches). The setting is part of the layer
    configs, so it survives `.keras` save/load. Call `model.compile()`
    again after changing it.

    Args:
        model: a model with a `"trunk"` layer (`get_trunk`).
        trainable: whether the trunk's weights train.
        freeze_batchnorm: with `trainable=True`, keep the trunk's
            BatchNormalization layers frozen.

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
    """`(trunk_variables, head_variables)`: `model.trainable_variables` split.

    Trunk variables belong to the `"trunk"` layer; head variables are all
    others (projection, prototypes or logits). Use them for custom training
    loops or optimizer maps.
    """
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

    Discriminative learning rates (e.g. the trunk at a tenth of the head's
    rate) with Keras' `MultiOptimizer`: an `OptimizerMap` sends each of the
    trunk's trainable variables (by its `path`) to `trunk_optimizer` and
    everything else to `head_optimizer`. Each inner optimizer keeps its
    own learning rate or schedule, momentum and weight decay; the result
    serialises with the model. Build it after `set_trunk_trainable` (only
    the variables trainable then are mapped) and pass it to `compile`.
    `MultiOptimizer` has no `learning_rate` attribute, so Keras callbacks
    that set it (`LearningRateScheduler`, `ReduceLROnPlateau`) do not
    apply; use `LearningRateSchedule`s on the inner optimizers.

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
