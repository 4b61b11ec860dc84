"""The model and the learning-rate schedule of a run."""

from __future__ import annotations

import contextlib

import keras

from keras_dlpa.methods import Method
from keras_dlpa.models import BACKBONE_PRESETS
from keras_dlpa.models import backbone_from_preset
from keras_dlpa.models.projection import project_features
from keras_dlpa.prototype_classifier import PrototypeClassifier
from keras_dlpa.schedules import FrozenThenScaled
from keras_dlpa.schedules import WarmupCosine
from keras_dlpa.schedules import WarmupMultiStep
from keras_dlpa.training.config import ExperimentConfig

_POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16"}


@contextlib.contextmanager
def precision_policy(precision: str):
    """Sets the Keras dtype policy of `precision` while building a model.

    `"bfloat16"` is Keras' `mixed_bfloat16` (bfloat16 compute, float32
    variables); layers created with `dtype="float32"` (the prototype head,
    the softmax logits) stay float32. The previous policy is restored.
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(_POLICIES[precision])
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def build_model(
    config: ExperimentConfig,
    method: Method,
    num_classes: int,
    mean,
    std,
    image_shape,
) -> keras.Model:
    """A `PrototypeClassifier`: the `config.model.backbone` preset and the
    head of `method` (`config.model.method`, resolved once by the runner)."""
    sync, decay = config.run.sync_batch_norm, config.optimisation.weight_decay
    config = config.model
    preset = BACKBONE_PRESETS[config.backbone]
    overrides = {
        "input_shape": tuple(int(s) for s in image_shape),
        "weight_decay": decay,
    }
    weights = config.weights
    if preset["builder"] == "pretrained_backbone":
        # The trunk's own preprocessing is inside: raw 0-255 input.
        if weights is not None:
            overrides["weights"] = weights
        if config.dim is not None:
            overrides["dim"] = config.dim
        if sync:
            raise ValueError(
                "`sync_batch_norm` is not supported with the pretrained "
                f"backbone {config.backbone!r}."
            )
    else:
        overrides["mean"] = tuple(float(v) for v in mean)
        overrides["std"] = tuple(float(v) for v in std)
        if preset["builder"] == "resnet50_backbone":
            if weights is not None:
                overrides["weights"] = None if weights == "none" else weights
        elif weights not in (None, "none"):
            raise ValueError(
                f"`weights` must be None or 'none' for the backbone "
                f"{config.backbone!r} (no pretrained weights; use "
                f"`init_weights`). Received: weights={weights!r}"
            )
    if sync:
        overrides["synchronized_batch_norm"] = True
    project_to = None
    if preset["builder"] == "cifar_resnet":
        if config.depth is not None:
            overrides["depth"] = config.depth
        if config.width is not None:
            overrides["width"] = config.width
        width = overrides.get("width", preset["config"]["width"])
        variant = preset["config"]["variant"]
        if variant == "long_tailed":
            if config.dim is not None and config.dim != 4 * width:
                project_to = config.dim
        else:
            overrides["dim"] = config.dim or preset["config"].get("dim")
    elif config.dim is not None and preset["builder"] != "pretrained_backbone":
        overrides["dim"] = config.dim
    backbone = backbone_from_preset(config.backbone, **overrides)
    if project_to is not None:
        features = project_features(
            backbone.outputs[0],
            project_to,
            decay,
            synchronized_batch_norm=sync,
        )
        backbone = keras.Model(backbone.input, features, name=backbone.name)
    dim = int(backbone.outputs[0].shape[-1])
    return PrototypeClassifier(
        backbone,
        num_classes,
        method=method.name,
        prototypes=method.prototypes(
            num_classes,
            dim,
            config.prototype_seed,
            softmax_run=config.softmax_run,
        ),
        weight_decay=decay,
        seed=config.prototype_seed,
    )


def make_schedule(config: ExperimentConfig, steps_per_epoch: int):
    """The learning-rate schedule of `config` (driven by iterations)."""
    config = config.optimisation
    if config.lr_decay == "cosine":
        return WarmupCosine(
            config.learning_rate,
            steps_per_epoch,
            config.epochs,
            warmup_epochs=config.warmup_epochs,
        )
    return WarmupMultiStep(
        config.learning_rate,
        steps_per_epoch,
        warmup_epochs=config.warmup_epochs,
        milestones=config.milestones,
        gamma=config.gamma,
    )


def make_optimizer(
    config: ExperimentConfig, model: keras.Model, schedule, steps_per_epoch
):
    """SGD (momentum, no Nesterov) on `schedule`.

    With `freeze_epochs` or `trunk_lr_scale` (models with a pretrained
    `"trunk"`), a `discriminative_optimizer`: the trunk runs on
    `FrozenThenScaled(schedule, trunk_lr_scale or 1, freeze_epochs *
    steps_per_epoch)`, i.e. rate 0 during the frozen warm-up, then a
    fraction of the head's rate.
    """

    momentum, config = config.optimisation.momentum, config.model

    def sgd(rate):
        return keras.optimizers.SGD(
            learning_rate=rate, momentum=momentum, nesterov=False
        )

    if not config.freeze_epochs and config.trunk_lr_scale is None:
        return sgd(schedule)
    from keras_dlpa.models.fine_tuning import discriminative_optimizer

    trunk_rate = FrozenThenScaled(
        schedule,
        config.trunk_lr_scale or 1.0,
        config.freeze_epochs * steps_per_epoch,
    )
    return discriminative_optimizer(model, sgd(schedule), sgd(trunk_rate))
