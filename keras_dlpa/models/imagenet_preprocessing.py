"""The input preprocessing of `keras.applications` families, as a layer."""

import keras
from keras import ops

from keras_dlpa.api_export import register
from keras_dlpa.checks import check_choice

MODES = ("caffe", "tf", "torch")

# `keras.applications.imagenet_utils.preprocess_input` constants.
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)


@register
class ImageNetPreprocessing(keras.layers.Layer):
    """Maps raw 0-255 RGB images to what a `keras.applications` model expects.

    Computes `keras.applications.<family>.preprocess_input` inside the
    model, so a saved or exported backbone serves raw pixels:
    `"caffe"` (ResNet50/101/152, VGG): RGB -> BGR minus the ImageNet BGR
    mean; `"tf"` (ResNetV2, MobileNetV2, Xception, Inception):
    `x / 127.5 - 1`; `"torch"` (DenseNet): `(x / 255 - mean) / std` with
    the ImageNet RGB statistics. The constants are created in `call` (no
    weights, no graph-captured numpy tables).

    Args:
        mode: one of `"caffe"`, `"tf"`, `"torch"`.
        **kwargs: base layer keyword arguments (`name`, `dtype`, ...).

    Input shape:
        `(..., 3)`, RGB, values in `[0, 255]`, any real dtype.

    Output shape:
        Same as the input, compute dtype.
    """

    def __init__(self, mode: str, **kwargs):
        super().__init__(**kwargs)
        self.mode = check_choice("mode", mode, MODES)

    def build(self, input_shape):
        if input_shape[-1] != 3:
            raise ValueError(
                "ImageNetPreprocessing expects RGB images with 3 "
                f"channels last. Received: input_shape={input_shape}"
            )

    def call(self, inputs):
        dtype = self.compute_dtype
        x = ops.cast(inputs, dtype)
        if self.mode == "tf":
            return x / 127.5 - 1.0
        if self.mode == "torch":
            mean = ops.convert_to_tensor(_TORCH_MEAN, dtype)
            std = ops.convert_to_tensor(_TORCH_STD, dtype)
            return (x / 255.0 - mean) / std
        mean = ops.convert_to_tensor(_CAFFE_MEAN_BGR, dtype)
        return ops.flip(x, axis=-1) - mean

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"mode": self.mode})
        return config
