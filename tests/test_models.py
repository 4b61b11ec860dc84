"""Tests for keras_dlpa.models (backbones, shortcuts, normalisation, presets).

All tests are backend-agnostic (TensorFlow and JAX) and compare against
independent numpy computations.
"""

import keras
import numpy as np
import pytest

from keras_dlpa.models import BACKBONE_PRESETS
from keras_dlpa.models import CIFAR10_MEAN
from keras_dlpa.models import CIFAR10_STD
from keras_dlpa.models import OptionAShortcut
from keras_dlpa.models import PerChannelNormalization
from keras_dlpa.models import backbone_from_preset
from keras_dlpa.models import basic_block
from keras_dlpa.models import cifar_resnet
from keras_dlpa.models import cifar_resnet32

pytestmark = pytest.mark.core


def _images(batch, size=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, (batch, size, size, 3)).astype("float32")


def _np_conv3x3(x, kernel, stride):
    """PyTorch Conv2d(3x3, padding=1, stride, bias=False) in numpy, NHWC."""
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    ho = (x.shape[1] - 1) // stride + 1
    wo = (x.shape[2] - 1) // stride + 1
    out = np.zeros((x.shape[0], ho, wo, kernel.shape[-1]))
    for i in range(3):
        for j in range(3):
            patch = xp[
                :,
                i : i + stride * (ho - 1) + 1 : stride,
                j : j + stride * (wo - 1) + 1 : stride,
            ]
            out += np.einsum("bhwc,cf->bhwf", patch, kernel[i, j])
    return out


def _np_bn(x, gamma, beta, mean, var, eps=1e-5):
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def _np_option_a(x, out_channels):
    sub = x[:, ::2, ::2, :]
    out = np.zeros(sub.shape[:3] + (out_channels,), x.dtype)
    before = (out_channels - x.shape[-1]) // 2
    out[..., before : before + x.shape[-1]] = sub
    return out


def _randomise_bn(model, rng):
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, c),
                    rng.normal(0, 0.1, c),
                    rng.normal(0, 0.1, c),
                    rng.uniform(0.5, 1.5, c),
                ]
            )


def _conv_params(c_in, c_out):
    return 9 * c_in * c_out


def _resnet32_trainable(width, variant, dim=None):
    """Independent count of trainable parameters of a CIFAR ResNet-32."""
    w = (width, 2 * width, 4 * width)
    total = _conv_params(3, w[0]) + 2 * w[0]  # stem conv + BN
    c_in = w[0]
    for c in w:
        for block in range(5):
            total += _conv_params(c_in, c) + _conv_params(c, c) + 4 * c
            if block == 0 and c != c_in and variant == "balanced":
                total += _conv_params(c_in, c) + 2 * c
            c_in = c
    if variant == "balanced":
        total += w[2] * dim + dim
    else:
        total += 2 * w[2]  # feature BatchNorm
    return total


@pytest.mark.parametrize(
    "kwargs, d",
    [
        ({"variant": "long_tailed", "width": 16}, 64),
        ({"variant": "long_tailed", "width": 32, "dim": 128}, 128),
        ({"variant": "balanced", "dim": 10}, 10),
    ],
)
def test_cifar_output_shapes(kwargs, d):
    model = cifar_resnet32(**kwargs)
    assert model.output_shape == (None, d)
    if kwargs["variant"] == "balanced":  # one forward pass is enough
        out = np.asarray(model.predict_on_batch(_images(2)))
        assert out.shape == (2, d)
        assert np.all(np.isfinite(out))


@pytest.mark.parametrize(
    "variant, width, dim", [("long_tailed", 16, None), ("balanced", 16, 64)]
)
def test_parameter_counts(variant, width, dim):
    model = cifar_resnet32(variant, width=width, dim=dim)
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    assert trainable == _resnet32_trainable(width, variant, dim)
    # ResNet-32 16/32/64 is about 0.46M parameters.
    assert 0.45e6 < model.count_params() < 0.50e6


def test_option_a_shortcut_matches_numpy():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 5, 6, 16)).astype("float32")
    layer = OptionAShortcut(strides=2, pad_before=8, pad_after=8)
    out = np.asarray(layer(x))
    expected = _np_option_a(x, 32)
    assert out.shape == (2, 3, 3, 32)
    np.testing.assert_array_equal(out, expected)
    assert layer.compute_output_shape((None, 5, 6, 16)) == (None, 3, 3, 32)


@pytest.mark.parametrize("shortcut", ["A", "conv"])
def test_downsampling_block_matches_numpy(shortcut):
    """A strided BasicBlock equals the PyTorch computation (padding=1)."""
    rng = np.random.default_rng(2)
    inputs = keras.Input((8, 8, 4))
    block = keras.Model(inputs, basic_block(inputs, 8, 2, shortcut, 0.0, "b"))
    _randomise_bn(block, rng)
    x = rng.normal(size=(2, 8, 8, 4)).astype("float32")
    out = np.asarray(block(x, training=False))

    def bn(name, y):
        return _np_bn(y, *block.get_layer(name).get_weights())

    def kernel(name):
        return block.get_layer(name).get_weights()[0]

    y = _np_conv3x3(x, kernel("b_conv1"), 2)
    y = np.maximum(bn("b_bn1", y), 0)
    y = bn("b_bn2", _np_conv3x3(y, kernel("b_conv2"), 1))
    if shortcut == "A":
        res = _np_option_a(x, 8)
    else:
        res = bn("b_shortcut_bn", _np_conv3x3(x, kernel("b_shortcut_conv"), 2))
    expected = np.maximum(y + res, 0)
    assert out.shape == (2, 4, 4, 8)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def test_normalization_layer_numerics_and_config():
    mean, std = (120.0, 110.0, 100.0), (60.0, 50.0, 40.0)
    layer = PerChannelNormalization(mean, std)
    x = np.random.default_rng(3).integers(0, 256, (2, 4, 4, 3), "uint8")
    out = np.asarray(layer(x))
    expected = (x.astype("float64") - np.array(mean)) / np.array(std)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)
    assert out.dtype == np.float32
    # Statistics live in non-trainable weights and in the config.
    assert not layer.trainable_weights
    np.testing.assert_allclose(
        [np.asarray(w) for w in layer.non_trainable_weights], [mean, std]
    )
    clone = PerChannelNormalization.from_config(layer.get_config())
    np.testing.assert_allclose(np.asarray(clone(x)), out)


def test_normalization_layer_errors():
    with pytest.raises(ValueError, match="std"):
        PerChannelNormalization([1.0, 2.0, 3.0], [1.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="same length"):
        PerChannelNormalization([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="channels"):
        PerChannelNormalization([1.0, 2.0], [1.0, 2.0])(np.zeros((1, 3)))


def test_model_normalization_is_first_layer():
    model = cifar_resnet(8, input_statistics=(CIFAR10_MEAN, CIFAR10_STD))
    layer = model.get_layer("normalization")
    assert isinstance(layer, PerChannelNormalization)
    np.testing.assert_allclose(
        np.asarray(layer.non_trainable_weights[0]), CIFAR10_MEAN
    )
    # Same features as normalising in numpy and feeding a model without it.
    plain = cifar_resnet(8)
    plain.set_weights(model.get_weights()[2:])
    x = _images(2)
    normed = (x - np.array(CIFAR10_MEAN)) / np.array(CIFAR10_STD)
    np.testing.assert_allclose(
        np.asarray(model(x, training=False)),
        np.asarray(plain(normed.astype("float32"), training=False)),
        rtol=1e-4,
        atol=1e-4,
    )


@pytest.mark.parametrize(
    "variant, dim, n_params",
    [("long_tailed", None, 31 + 2 * 31 + 2), ("balanced", 20, 101)],
)
def test_weight_decay_is_coupled_l2_on_all_parameters(variant, dim, n_params):
    wd = 2e-4
    model = cifar_resnet32(variant, dim=dim, weight_decay=wd)
    # 31 conv kernels + 31 BN (gamma, beta), then the feature BN (gamma,
    # beta) or 2 shortcut convs + BNs (6) and the Dense kernel + bias.
    weights = model.trainable_weights
    assert len(weights) == n_params
    assert len(model.losses) == len(weights)
    expected = (
        wd / 2 * sum(np.sum(np.asarray(w, "float64") ** 2) for w in weights)
    )
    total = float(sum(np.asarray(loss) for loss in model.losses))
    np.testing.assert_allclose(total, expected, rtol=1e-5)
    assert not cifar_resnet32(variant, dim=dim).losses


def test_keras_save_load_round_trip(tmp_path):
    model = cifar_resnet(
        8, weight_decay=2e-4, input_statistics=(CIFAR10_MEAN, CIFAR10_STD)
    )
    _randomise_bn(model, np.random.default_rng(4))
    path = tmp_path / "backbone.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    x = _images(3, seed=5)
    np.testing.assert_array_equal(
        np.asarray(model(x, training=False)),
        np.asarray(loaded(x, training=False)),
    )
    np.testing.assert_allclose(
        float(sum(np.asarray(v) for v in loaded.losses)),
        float(sum(np.asarray(v) for v in model.losses)),
        rtol=1e-6,
    )
    assert isinstance(
        loaded.get_layer("normalization"), PerChannelNormalization
    )
    assert isinstance(
        loaded.get_layer("stage2_block1_shortcut"), OptionAShortcut
    )


def test_one_training_step_updates_weights():
    keras.utils.set_random_seed(0)
    model = cifar_resnet(
        8, "balanced", dim=8, weight_decay=1e-4, input_statistics=(128.0, 64.0)
    )
    before = [np.array(w) for w in model.trainable_weights]
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    x = _images(8, seed=6)
    y = np.random.default_rng(7).normal(size=(8, 8)).astype("float32")
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    after = model.trainable_weights
    assert all(not np.allclose(b, np.asarray(a)) for b, a in zip(before, after))


@pytest.fixture(scope="module")
def resnet50():
    return backbone_from_preset(
        "resnet50_imagenet", input_shape=(64, 64, 3), weight_decay=1e-4
    )


def test_resnet50_tiny_input(resnet50):
    assert resnet50.output_shape == (None, 512)
    out = np.asarray(resnet50(_images(2, size=64), training=False))
    assert out.shape == (2, 512)
    assert np.all(np.isfinite(out))
    projection = resnet50.get_layer("projection")
    assert projection.kernel.shape == (2048, 512)
    assert not projection.use_bias
    assert resnet50.get_layer("resnet50").get_layer(
        "conv1_bn"
    ).momentum == pytest.approx(0.9)


def test_resnet50_weight_decay_on_all_parameters(resnet50):
    weights = resnet50.trainable_weights
    assert len(resnet50.losses) == len(weights)
    expected = (
        1e-4 / 2 * sum(np.sum(np.asarray(w, "float64") ** 2) for w in weights)
    )
    total = float(sum(np.asarray(loss) for loss in resnet50.losses))
    np.testing.assert_allclose(total, expected, rtol=1e-5)


def test_presets_build_with_overrides():
    assert set(BACKBONE_PRESETS) >= {
        "resnet32_lt_cifar10",
        "resnet32_lt_cifar100",
        "resnet32_cifar100",
        "resnet50_imagenet",
    }
    for entry in BACKBONE_PRESETS.values():
        assert entry["description"]
    lt100 = backbone_from_preset("resnet32_lt_cifar100")
    assert lt100.output_shape == (None, 128)
    assert lt100.name == "resnet32_lt_cifar100"
    balanced = backbone_from_preset("resnet32_cifar100", dim=25)
    assert balanced.output_shape == (None, 25)
    with pytest.raises(ValueError, match="dim"):
        backbone_from_preset("resnet32_cifar100")
    with pytest.raises(ValueError, match="preset"):
        backbone_from_preset("resnet18")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"variant": "wide"}, "variant"),
        ({"variant": "long_tailed", "dim": 50}, "dim=50"),
        ({"variant": "balanced"}, "dim"),
        ({"width": 0}, "width"),
        ({"input_shape": (32, 32)}, "input_shape"),
        ({"input_shape": (32, 32, 0)}, "input_shape"),
        ({"input_statistics": (CIFAR10_MEAN, None)}, "input_statistics"),
        ({"input_statistics": CIFAR10_MEAN}, "input_statistics"),
        ({"weight_decay": -1.0}, "weight_decay"),
    ],
)
def test_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        cifar_resnet32(**kwargs)


def test_depth_error():
    with pytest.raises(ValueError, match="depth"):
        cifar_resnet(33)


def _batch_norms(model):
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found += _batch_norms(layer)
        elif isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer)
    return found
