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

    Computes what `keras.applications.<family>.preprocess_input` does, inside
    the model, so a saved or exported backbone serves raw pixels:

    - `"caffe"` (ResNet50/101/152, VGG): RGB -> BGR, then subtract the
      ImageNet BGR mean `(103.939, 116.779, 123.68)`; no scaling.
    - `"tf"` (ResNet50V2, MobileNetV2, Xception, Inception):
      `x / 127.5 - 1`, range `[-1, 1]`.
    - `"torch"` (DenseNet): `(x / 255 - mean) / std` with the ImageNet RGB
      mean `(0.485, 0.456, 0.406)` and std `(0.229, 0.224, 0.225)`.

    Families with built-in preprocessing (EfficientNetV2, ConvNeXt,
    MobileNetV3) need no such layer. The constants are created in `call`
    (no weights, no graph-captured numpy tables).

    Args:
        mode: one of `"caffe"`, `"tf"`, `"torch"`.
        **kwargs: base layer keyword arguments (`name`, `dtype`, ...).

    Input shape:
        `(..., 3)`, RGB, values in `[0, 255]`, any real dtype.

    Output shape:
        Same as the input, compute dtype.

    Example:

    >>> layer = ImageNetPreprocessing("tf")
    >>> x = np.full((1, 2, 2, 3), 255.0, "float32")
    >>> np.asarray(layer(x))[0, 0, 0].tolist()
    [1.0, 1.0, 1.0]
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
