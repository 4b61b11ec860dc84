"""`--precision bfloat16`: mixed precision with a float32 head, loss and
statistics."""

import keras
import numpy as np
import pytest

from keras_dlpa import IPMLoss
from keras_dlpa import find_prototype_layer
from keras_dlpa.methods import get_method
from keras_dlpa.training.builder import build_model
from keras_dlpa.training.builder import precision_policy
from keras_dlpa.training.config import ExperimentConfig


@pytest.mark.core
@pytest.mark.parametrize("method", ["dl2pa", "softmax"])
def test_bfloat16_backbone_float32_head(method, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_DLPA_CACHE", str(tmp_path))
    config = ExperimentConfig.from_dict(dict(
        backbone="resnet32_lt_cifar10", depth=8, width=2, method=method,
        precision="bfloat16", dim=None,
    ))  # fmt: skip
    before = keras.config.dtype_policy().name
    with precision_policy(config.run.precision):
        model = build_model(
            config, get_method(method), 10, [120.0] * 3, [60.0] * 3, (16, 16, 3)
        )
    assert keras.config.dtype_policy().name == before  # restored
    convs = [
        layer
        for layer in model.layers
        if isinstance(layer, keras.layers.Conv2D)
    ]
    assert convs and all(c.compute_dtype == "bfloat16" for c in convs)
    assert all(c.variable_dtype == "float32" for c in convs)
    head = model.layers[-1]
    assert head.compute_dtype == "float32"
    x = np.random.default_rng(0).uniform(0, 255, (8, 16, 16, 3))
    y = np.arange(8) % 10
    outputs = model(x.astype("float32"), training=False)
    assert keras.backend.standardize_dtype(outputs.dtype) == "float32"
    if method == "dl2pa":
        layer = find_prototype_layer(model)
        for variable in (layer.prototypes, layer.representatives):
            assert variable.dtype == "float32"
        model.compile(keras.optimizers.SGD(0.1), loss=IPMLoss())
    else:
        model.compile(
            keras.optimizers.SGD(0.1),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
    loss = model.train_on_batch(x.astype("float32"), y)
    assert np.isfinite(float(np.asarray(loss).reshape(-1)[0]))
