"""`synchronized_batch_norm=True` (TensorFlow only: Keras refuses the
option on other backends, so these tests are not in the JAX core run)."""

import keras
import pytest
from test_models import _batch_norms

from keras_dlpa.models import cifar_resnet


@pytest.mark.parametrize(
    "variant, dim", [("long_tailed", None), ("balanced", 8)]
)
def test_synchronized_batch_norm_option_is_saved(tmp_path, variant, dim):
    from keras_dlpa.models import project_features

    default = cifar_resnet(8, variant, dim=dim)
    assert not any(bn.synchronized for bn in _batch_norms(default))
    model = cifar_resnet(8, variant, dim=dim, synchronized_batch_norm=True)
    features = project_features(
        model.outputs[0], 6, synchronized_batch_norm=True
    )
    model = keras.Model(model.inputs, features)
    norms = _batch_norms(model)
    names = {bn.name for bn in norms}
    assert {"stem_bn", "projection_bn"} <= names
    # The feature BatchNorm is the long-tailed variant's head.
    assert ("feature_bn" in names) == (variant == "long_tailed")
    assert all(bn.synchronized for bn in norms)
    path = tmp_path / "sync.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert len(_batch_norms(loaded)) == len(norms)
    assert all(bn.synchronized for bn in _batch_norms(loaded))


def test_resnet50_synchronized_batch_norm():
    from keras_dlpa.models import resnet50_backbone

    model = resnet50_backbone(
        dim=None, input_shape=(32, 32, 3), synchronized_batch_norm=True
    )
    # The trunk is rebuilt from its config, so the option is in the config.
    norms = _batch_norms(model)
    assert len(norms) == 53 and all(bn.synchronized for bn in norms)
    trunk = model.get_layer("resnet50").get_config()["layers"]
    assert all(
        layer["config"]["synchronized"]
        for layer in trunk
        if layer["class_name"] == "BatchNormalization"
    )
