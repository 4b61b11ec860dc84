"""PIL/numpy image ops of the streaming (ImageNet) pipeline, no TensorFlow
(the TrivialAugment op table is in docs/data.md)."""

from __future__ import annotations

import functools

import numpy as np

from keras_dlpa.data.stream_plan import box_from_draw
from keras_dlpa_serving.image_decode import open_rgb

# ImageNet mean pixel (0-255): random erasing fills with it, which is the
# torchvision value 0 after normalisation.
ERASE_FILL = np.array([124, 116, 104], np.uint8)
EVAL_CROP_FRACTION = 0.875


# Bytes -> RGB `PIL.Image` (every mode; `BadImageError` if unreadable).
open_image = open_rgb


def _affine(image, matrix):
    from PIL import Image

    return image.transform(
        image.size, Image.AFFINE, matrix, resample=Image.NEAREST
    )


def _op_table():
    from PIL import ImageEnhance
    from PIL import ImageOps

    def enhance(kind):
        return lambda im, m, s: kind(im).enhance(1.0 + 0.99 * m)

    def posterize(im, m, s):
        return ImageOps.posterize(im, int(8 - round(abs(m) * 6)))

    def solarize(im, m, s):
        return ImageOps.solarize(im, int(round(255 * (1.0 - abs(m)))))

    shift = 32.0 / 224.0
    return (
        ("identity", lambda im, m, s: im),
        ("shear_x", lambda im, m, s: _affine(im, (1, 0.99 * m, 0, 0, 1, 0))),
        ("shear_y", lambda im, m, s: _affine(im, (1, 0, 0, 0.99 * m, 1, 0))),
        (
            "translate_x",
            lambda im, m, s: _affine(im, (1, 0, m * shift * s, 0, 1, 0)),
        ),
        (
            "translate_y",
            lambda im, m, s: _affine(im, (1, 0, 0, 0, 1, m * shift * s)),
        ),
        ("rotate", lambda im, m, s: im.rotate(135.0 * m)),
        ("brightness", enhance(ImageEnhance.Brightness)),
        ("color", enhance(ImageEnhance.Color)),
        ("contrast", enhance(ImageEnhance.Contrast)),
        ("sharpness", enhance(ImageEnhance.Sharpness)),
        ("posterize", posterize),
        ("solarize", solarize),
        ("autocontrast", lambda im, m, s: ImageOps.autocontrast(im)),
        ("equalize", lambda im, m, s: ImageOps.equalize(im)),
    )


TRIVIAL_AUGMENT_OPS = tuple(name for name, _ in _op_table())


@functools.cache
def _ops():
    return [fn for _, fn in _op_table()]


def train_image(
    blob: bytes,
    size: int,
    crop,
    flip: bool,
    op: int,
    magnitude: float,
    erase: bool,
    erase_box,
) -> np.ndarray:
    """One planned training image, uint8 `(size, size, 3)`: random-resized
    crop of `blob` by the `crop` draw (`box_from_draw`), flip, TrivialAugment
    op `op` (-1: none) at signed `magnitude`, random erasing of the
    `erase_box` draw where `erase`."""
    from PIL import Image

    image = open_image(blob)
    width, height = image.size
    top, left, h, w = box_from_draw(crop, height, width)
    image = image.resize(
        (size, size), Image.BILINEAR, box=(left, top, left + w, top + h)
    )
    if flip:
        image = image.transpose(Image.FLIP_LEFT_RIGHT)
    if op >= 0:
        image = _ops()[int(op)](image, float(magnitude), size)
    pixels = np.asarray(image, dtype=np.uint8)
    if erase:
        pixels = pixels.copy()
        top, left, h, w = box_from_draw(erase_box, size, size)
        pixels[top : top + h, left : left + w] = ERASE_FILL
    return pixels


def eval_image(blob: bytes, size: int) -> np.ndarray:
    """Resize (shorter side `round(size / 0.875)`) + centre crop, uint8."""
    from PIL import Image

    image = open_image(blob)
    width, height = image.size
    short = int(round(size / EVAL_CROP_FRACTION))
    scale = short / min(width, height)
    new_w = max(size, int(round(width * scale)))
    new_h = max(size, int(round(height * scale)))
    image = image.resize((new_w, new_h), Image.BILINEAR)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    image = image.crop((left, top, left + size, top + size))
    return np.asarray(image, dtype=np.uint8)
