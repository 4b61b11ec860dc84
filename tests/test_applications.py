"""Tests for pretrained backbones (keras.applications / keras-hub trunks).

Offline: every model is built with `weights="none"` at 32 x 32 and compared
against the `keras.applications` model itself fed with the family's own
`preprocess_input`.
"""

import os
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest
from conftest import REPO_ROOT

from keras_dlpa import IPMLoss
from keras_dlpa import PrototypeClassifier
from keras_dlpa.models import APPLICATIONS
from keras_dlpa.models import BACKBONE_PRESETS
from keras_dlpa.models import ImageNetPreprocessing
from keras_dlpa.models import backbone_from_preset
from keras_dlpa.models import discriminative_optimizer
from keras_dlpa.models import get_trunk
from keras_dlpa.models import pretrained_backbone
from keras_dlpa.models import set_trunk_trainable
from keras_dlpa.models import split_trainable_variables

SHAPE = (32, 32, 3)

# Each constructor's own module in keras.applications (where its
# `preprocess_input` lives), written out independently of the library.
_MODULES = {
    "ResNet50": "resnet50",
    "ResNet101": "resnet",
    "ResNet152": "resnet",
    "ResNet50V2": "resnet_v2",
    "ResNet101V2": "resnet_v2",
    "ResNet152V2": "resnet_v2",
    "MobileNetV2": "mobilenet_v2",
    "DenseNet121": "densenet",
    "DenseNet169": "densenet",
    "DenseNet201": "densenet",
    "EfficientNetV2B0": "efficientnet_v2",
    "EfficientNetV2B1": "efficientnet_v2",
    "EfficientNetV2B2": "efficientnet_v2",
    "EfficientNetV2B3": "efficientnet_v2",
    "EfficientNetV2S": "efficientnet_v2",
    "EfficientNetV2M": "efficientnet_v2",
    "EfficientNetV2L": "efficientnet_v2",
    "ConvNeXtTiny": "convnext",
    "ConvNeXtSmall": "convnext",
    "ConvNeXtBase": "convnext",
    "ConvNeXtLarge": "convnext",
    "ConvNeXtXLarge": "convnext",
    "MobileNetV3Small": "mobilenet_v3",
    "MobileNetV3Large": "mobilenet_v3",
}


def _images(batch, size=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, (batch, size, size, 3)).astype("float32")


def _reference_features(architecture, trunk, x):
    """The keras.applications model with `trunk`'s weights, on its own
    `preprocess_input(x)`: what the backbone must compute."""
    reference = getattr(keras.applications, architecture)(
        include_top=False, weights=None, input_shape=SHAPE, pooling="avg"
    )
    reference.set_weights(trunk.get_weights())
    module = getattr(keras.applications, _MODULES[architecture])
    return np.asarray(reference(module.preprocess_input(x.copy())))


@pytest.mark.core
@pytest.mark.parametrize(
    "mode, module",
    [("caffe", "resnet50"), ("tf", "resnet_v2"), ("torch", "densenet")],
)
def test_preprocessing_layer_matches_keras(mode, module):
    x = _images(3, size=5, seed=1)
    expected = getattr(keras.applications, module).preprocess_input(x.copy())
    out = np.asarray(ImageNetPreprocessing(mode)(x))
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-5)
    restored = ImageNetPreprocessing.from_config(
        ImageNetPreprocessing(mode).get_config()
    )
    assert restored.mode == mode


@pytest.mark.core
def test_table_matches_each_family_preprocess_input():
    """Every architecture gets exactly its family's `preprocess_input`:
    an `ImageNetPreprocessing` layer that reproduces it, or none when the
    family's `preprocess_input` is the identity (preprocessing built in)."""
    assert set(APPLICATIONS) == set(_MODULES)
    x = _images(2, size=4, seed=2)
    for architecture, mode in APPLICATIONS.items():
        module = getattr(keras.applications, _MODULES[architecture])
        expected = module.preprocess_input(x.copy())
        if mode is None:
            np.testing.assert_array_equal(expected, x, err_msg=architecture)
        else:
            np.testing.assert_allclose(
                np.asarray(ImageNetPreprocessing(mode)(x)),
                expected,
                rtol=1e-6,
                atol=1e-5,
                err_msg=architecture,
            )


@pytest.fixture(scope="module")
def resnet50():
    keras.utils.set_random_seed(0)
    return pretrained_backbone(
        "resnet50", input_shape=SHAPE, dim=16, weight_decay=1e-4
    )


@pytest.mark.parametrize(
    "architecture", ["ResNet50", "EfficientNetV2B0", "ConvNeXtTiny"]
)
def test_raw_pixels_give_the_application_features(architecture, resnet50):
    """backbone(raw x) == keras.applications model(preprocess_input(x))."""
    if architecture == "ResNet50":
        trunk = get_trunk(resnet50)
        # The pooled features, before the projection.
        pooled = resnet50.get_layer("feature_projection").input
        model = keras.Model(resnet50.input, pooled)
    else:
        model = pretrained_backbone(architecture, input_shape=SHAPE)
        trunk = get_trunk(model)
    assert trunk.name == "trunk"
    x = _images(2, seed=3)
    np.testing.assert_allclose(
        np.asarray(model(x)),
        _reference_features(architecture, trunk, x),
        rtol=1e-4,
        atol=1e-4,
    )


def test_projection_and_layers(resnet50):
    assert resnet50.output_shape == (None, 16)
    assert [layer.name for layer in resnet50.layers] == [
        "images",
        "preprocessing",
        "trunk",
        "feature_projection",
        "projection_bn",
    ]
    assert resnet50.get_layer("feature_projection").kernel.shape == (2048, 16)
    assert not resnet50.get_layer("feature_projection").use_bias
    assert resnet50.name == "resnet50_backbone"
    plain = pretrained_backbone("EfficientNetV2B0", input_shape=SHAPE)
    assert plain.output_shape == (None, 1280)


def test_weight_decay_on_every_regularisable_weight(resnet50):
    weights = resnet50.trainable_weights
    assert len(resnet50.losses) == len(weights)
    expected = (
        1e-4 / 2 * sum(np.sum(np.asarray(w, "float64") ** 2) for w in weights)
    )
    total = float(sum(np.asarray(loss) for loss in resnet50.losses))
    np.testing.assert_allclose(total, expected, rtol=1e-5)


def test_weight_decay_convnext_skips_only_layer_scale():
    model = pretrained_backbone(
        "ConvNeXtTiny", input_shape=SHAPE, weight_decay=2e-4
    )
    decayed = [
        w for w in model.trainable_weights if "layer_scale" not in w.path
    ]
    assert len(decayed) < len(model.trainable_weights)
    assert len(model.losses) == len(decayed)
    expected = (
        2e-4 / 2 * sum(np.sum(np.asarray(w, "float64") ** 2) for w in decayed)
    )
    total = float(sum(np.asarray(loss) for loss in model.losses))
    np.testing.assert_allclose(total, expected, rtol=1e-5)


@pytest.fixture(scope="module")
def mobilenet_source():
    keras.utils.set_random_seed(1)
    return pretrained_backbone("MobileNetV3Small", input_shape=SHAPE, dim=8)


@pytest.mark.parametrize("suffix", [".weights.h5", ".h5", ".keras"])
def test_weights_from_a_local_file(suffix, mobilenet_source, tmp_path):
    trunk = get_trunk(mobilenet_source)
    path = str(tmp_path / f"trunk{suffix}")
    if suffix == ".weights.h5":
        trunk.save_weights(path)
    elif suffix == ".h5":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Keras: "legacy HDF5 format".
            trunk.save(path)
    else:
        mobilenet_source.save(path)  # A whole backbone with its "trunk".
    keras.utils.set_random_seed(2)
    loaded = pretrained_backbone(
        "mobilenetv3small", weights=path, input_shape=SHAPE, dim=8
    )
    fresh = get_trunk(
        pretrained_backbone("MobileNetV3Small", input_shape=SHAPE)
    ).get_weights()
    expected = trunk.get_weights()
    received = get_trunk(loaded).get_weights()
    assert len(received) == len(expected)
    for got, want in zip(received, expected):
        np.testing.assert_array_equal(got, want)
    assert any(not np.array_equal(a, b) for a, b in zip(fresh, expected))


def test_weights_file_of_another_architecture_is_refused(
    mobilenet_source, tmp_path
):
    path = str(tmp_path / "mobilenet.weights.h5")
    get_trunk(mobilenet_source).save_weights(path)
    with pytest.raises(ValueError, match="MobileNetV2"):
        pretrained_backbone("MobileNetV2", weights=path, input_shape=SHAPE)


def _fit_one_step(model, optimizer, x, y):
    model.compile(optimizer=optimizer, loss=IPMLoss())
    history = model.fit(x, y, batch_size=len(x), epochs=1, verbose=0)
    return history.history["loss"][0]


def _values(variables):
    return [np.array(v) for v in variables]


def test_dl2pa_head_trains_and_frozen_trunk_stays():
    keras.utils.set_random_seed(3)
    backbone = pretrained_backbone("MobileNetV3Small", input_shape=SHAPE, dim=8)
    model = PrototypeClassifier(backbone, 4)
    x = _images(8, seed=4)
    y = np.arange(8) % 4
    trunk = set_trunk_trainable(model, False)
    assert trunk.trainable_weights == []
    bn = next(
        layer
        for layer in trunk.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    )
    trunk_before = _values(trunk.weights)  # incl. BatchNorm statistics
    kernel = model.get_layer("feature_projection").kernel
    kernel_before = np.array(kernel)
    loss = _fit_one_step(model, keras.optimizers.SGD(0.1), x, y)
    assert np.isfinite(loss)
    for before, after in zip(trunk_before, trunk.weights):
        np.testing.assert_array_equal(before, np.asarray(after))
    assert not np.allclose(kernel_before, np.asarray(kernel))
    # Unfrozen: the trunk's weights and BatchNorm statistics move.
    set_trunk_trainable(model, True)
    trainable_before = _values(trunk.trainable_weights)
    moving_before = np.array(bn.moving_mean)
    _fit_one_step(model, keras.optimizers.SGD(0.1), x, y)
    assert not np.array_equal(moving_before, np.asarray(bn.moving_mean))
    assert all(
        not np.array_equal(b, np.asarray(a))
        for b, a in zip(trainable_before, trunk.trainable_weights)
        if b.size > 1
    )
    # freeze_batchnorm: the other trunk weights train, BatchNorm does not.
    set_trunk_trainable(model, True, freeze_batchnorm=True)
    assert bn.trainable_weights == []
    bn_before = _values(bn.weights)
    trainable_before = _values(trunk.trainable_weights)
    _fit_one_step(model, keras.optimizers.SGD(0.1), x, y)
    for before, after in zip(bn_before, bn.weights):
        np.testing.assert_array_equal(before, np.asarray(after))
    assert any(
        not np.array_equal(b, np.asarray(a))
        for b, a in zip(trainable_before, trunk.trainable_weights)
    )


def test_discriminative_optimizer_scales_the_trunk_step():
    """One SGD step with lr 0.01 on the trunk and 0.1 on the head moves the
    trunk a tenth as far as one SGD(0.1) step, and the head as far."""
    keras.utils.set_random_seed(5)
    backbone = pretrained_backbone("MobileNetV3Small", input_shape=SHAPE, dim=8)
    model = PrototypeClassifier(backbone, 4)
    set_trunk_trainable(model, True, freeze_batchnorm=True)
    x = _images(8, seed=6)
    y = np.arange(8) % 4
    trunk_vars, head_vars = split_trainable_variables(model)
    assert trunk_vars and head_vars
    assert len(trunk_vars) + len(head_vars) == len(model.trainable_variables)
    start = model.get_weights()

    by_path = dict(zip([v.path for v in model.weights], start))

    def deltas(optimizer):
        model.set_weights(start)
        _fit_one_step(model, optimizer, x, y)
        return (
            [np.asarray(v) - by_path[v.path] for v in trunk_vars],
            [np.asarray(v) - by_path[v.path] for v in head_vars],
        )

    trunk_single, head_single = deltas(keras.optimizers.SGD(0.1))
    optimizer = discriminative_optimizer(
        model,
        head_optimizer=keras.optimizers.SGD(0.1),
        trunk_optimizer=keras.optimizers.SGD(0.01),
    )
    assert isinstance(optimizer, keras.optimizers.MultiOptimizer)
    trunk_multi, head_multi = deltas(optimizer)
    assert max(float(np.abs(d).max()) for d in trunk_single) > 0
    for single, multi in zip(trunk_single, trunk_multi):
        np.testing.assert_allclose(multi, 0.1 * single, rtol=1e-3, atol=1e-7)
    for single, multi in zip(head_single, head_multi):
        np.testing.assert_allclose(multi, single, rtol=1e-3, atol=1e-7)


def test_presets_build_pretrained_backbones():
    for preset in (
        "resnet50_keras_applications",
        "efficientnetv2b0",
        "efficientnetv2s",
        "convnext_tiny",
    ):
        entry = BACKBONE_PRESETS[preset]
        assert entry["description"]
        assert entry["builder"] == "pretrained_backbone"
        assert entry["config"]["weights"] == "none"  # Never downloads.
        assert entry["config"]["architecture"] in APPLICATIONS
    model = backbone_from_preset("efficientnetv2b0", input_shape=SHAPE, dim=8)
    assert model.name == "efficientnetv2b0"
    assert model.output_shape == (None, 8)
    # EfficientNetV2B0 rescales 0-255 pixels itself.
    first = get_trunk(model).get_layer(index=1)
    assert isinstance(first, keras.layers.Rescaling)


_ROUND_TRIP = """
import sys
import numpy as np
import keras
import keras_dlpa  # noqa: F401  (registers the library's classes)

for path in sys.argv[1:]:
    model = keras.models.load_model(path)
    x = np.load(path + ".x.npy")
    out = np.asarray(model(x, training=False))
    np.testing.assert_allclose(out, np.load(path + ".y.npy"), atol=1e-5)
    total = float(sum(np.asarray(v) for v in model.losses))
    np.testing.assert_allclose(total, float(np.load(path + ".l.npy")), 1e-5)
    assert model.get_layer("trunk").name == "trunk"
    if getattr(model, "optimizer", None) is not None:
        assert type(model.optimizer).__name__ == "MultiOptimizer", path
print("ok")
"""


@pytest.mark.large
def test_keras_round_trip_in_a_fresh_process(tmp_path):
    """A backbone (tf-mode preprocessing layer, trunk rebuilt with L2,
    projection) and a compiled DL2PA classifier with a discriminative
    optimizer load after `import keras_dlpa` alone and give the same
    outputs and regularisation losses. (Small trunks: the ResNet50 and
    ConvNeXtTiny archives are ~100 MB each.)"""
    keras.utils.set_random_seed(7)
    backbone = pretrained_backbone(
        "MobileNetV2", input_shape=SHAPE, dim=8, weight_decay=1e-4
    )
    mobilenet = pretrained_backbone("MobileNetV3Small", input_shape=SHAPE)
    classifier = PrototypeClassifier(mobilenet, 3)
    classifier.compile(
        optimizer=discriminative_optimizer(
            classifier,
            keras.optimizers.SGD(0.1, momentum=0.9),
            keras.optimizers.SGD(0.01, momentum=0.9),
        ),
        loss=IPMLoss(),
    )
    x = _images(4, seed=8)
    classifier.fit(x, np.arange(4) % 3, batch_size=4, epochs=1, verbose=0)
    paths = []
    for name, model in (("backbone", backbone), ("classifier", classifier)):
        path = str(tmp_path / f"{name}.keras")
        model.save(path)
        np.save(path + ".x.npy", x)
        np.save(path + ".y.npy", np.asarray(model(x, training=False)))
        np.save(
            path + ".l.npy",
            np.float64(sum(float(np.asarray(v)) for v in model.losses)),
        )
        paths.append(path)
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-c", _ROUND_TRIP, *paths],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout.strip().endswith("ok")


@pytest.mark.core
@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"architecture": "ResNet18"}, ValueError, "ResNet18"),
        ({"architecture": "EfficientNetB0"}, ValueError, "EfficientNetB0"),
        ({"weights": "imagenet21k"}, ValueError, "imagenet21k"),
        ({"weights": "/no/such/file.h5"}, FileNotFoundError, "file.h5"),
        ({"weights": "preset"}, ValueError, "keras-hub"),
        ({"input_shape": (32, 32, 1)}, ValueError, "input_shape"),
        ({"input_shape": (32, 32)}, ValueError, "input_shape"),
        ({"dim": 0}, ValueError, "dim=0"),
        ({"weight_decay": -1.0}, ValueError, "weight_decay"),
    ],
)
def test_clear_errors(kwargs, error, match):
    kwargs = {"architecture": "ResNet50", **kwargs}
    with pytest.raises(error, match=match):
        pretrained_backbone(
            input_shape=kwargs.pop("input_shape", SHAPE), **kwargs
        )


@pytest.mark.core
def test_helpers_need_a_trunk():
    inputs = keras.Input(SHAPE)
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs))
    with pytest.raises(ValueError, match="trunk"):
        set_trunk_trainable(model, False)
    with pytest.raises(ValueError, match="trunk"):
        discriminative_optimizer(
            model, keras.optimizers.SGD(), keras.optimizers.SGD()
        )


def _has_keras_hub():
    try:
        import keras_hub  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.core
@pytest.mark.skipif(_has_keras_hub(), reason="keras-hub is installed")
def test_keras_hub_missing_names_the_package(tmp_path):
    with pytest.raises(ImportError, match="pip install keras-hub"):
        pretrained_backbone(f"keras_hub:{tmp_path}", input_shape=SHAPE)


@pytest.mark.skipif(not _has_keras_hub(), reason="keras-hub not installed")
def test_keras_hub_backbone_from_a_local_preset(tmp_path):
    import keras_hub

    keras.utils.set_random_seed(9)
    hub = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64, 64],
        stackwise_num_blocks=[1, 1],
        stackwise_num_strides=[1, 2],
        block_type="basic_block",
        use_pre_activation=False,
        image_shape=(None, None, 3),
    )
    # Per-channel ImageNet statistics, as the keras-hub ResNet presets.
    scale = [1 / (255 * 0.229), 1 / (255 * 0.224), 1 / (255 * 0.225)]
    offset = [-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225]
    converter = keras_hub.layers.ResNetImageConverter(
        image_size=SHAPE[:2], scale=scale, offset=offset
    )
    preset = str(tmp_path / "preset")
    hub.save_to_preset(preset)
    backbone_only = str(tmp_path / "backbone_only")
    hub.save_to_preset(backbone_only)
    converter.save_to_preset(preset)

    backbone = pretrained_backbone(
        f"keras_hub:{preset}", weights="preset", input_shape=SHAPE, dim=8
    )
    trunk = get_trunk(backbone)
    for got, want in zip(trunk.get_weights(), hub.get_weights()):
        np.testing.assert_array_equal(got, want)
    x = _images(2, seed=10)
    features = keras.Model(
        backbone.input, backbone.get_layer("avg_pool").output
    )
    expected = np.asarray(hub(x * np.array(scale) + np.array(offset)))
    bn = trunk.get_layer("conv1_bn")
    moving_mean = np.array(bn.moving_mean)
    np.testing.assert_allclose(
        np.asarray(features(x)), expected.mean(axis=(1, 2)), atol=1e-4
    )
    # A bare call runs the trunk's BatchNorm in inference mode.
    np.testing.assert_array_equal(moving_mean, np.asarray(bn.moving_mean))
    random_init = pretrained_backbone(
        f"keras_hub:{preset}", weights="none", input_shape=SHAPE
    )
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(get_trunk(random_init).get_weights(), hub.get_weights())
    )
    model = PrototypeClassifier(backbone, 3)
    set_trunk_trainable(model, False)
    model.compile(optimizer="sgd", loss=IPMLoss())
    model.fit(x, np.arange(2), batch_size=2, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="image converter"):
        pretrained_backbone(f"keras_hub:{backbone_only}", input_shape=SHAPE)
    with pytest.raises(ValueError, match="weight_decay"):
        pretrained_backbone(
            f"keras_hub:{preset}", input_shape=SHAPE, weight_decay=1e-4
        )
