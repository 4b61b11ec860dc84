"""PIL/numpy image ops of the streaming (ImageNet) pipeline, no TensorFlow.

Training (one image, driven by the draws of a `StreamPlan`): decode,
random-resized crop to `S x S` (bilinear, in one `Image.resize(box=...)`),
horizontal flip, a TrivialAugment (wide) op, random erasing. Evaluation:
resize the shorter side to `round(S / 0.875)` (bilinear) and take the
centre `S x S` crop (the standard ImageNet protocol: 256 -> 224).

TrivialAugment ops (`TRIVIAL_AUGMENT_OPS`, torchvision's
`TrivialAugmentWide` set and ranges; the magnitude `m` in `[-1, 1]` is the
planned bin / 30 with a random sign): identity, shear x/y (`0.99 m`),
translate x/y (`m * 32 / 224` of the side), rotate (`135 m` degrees),
brightness / colour / contrast / sharpness (factor `1 + 0.99 m`), posterize
(8 down to 2 bits with `|m|`), solarize (threshold 255 down to 0 with
`|m|`), autocontrast, equalize. Geometric ops fill with black, as
torchvision's default.
"""

from __future__ import annotations

import numpy as np

from keras_dlpa.data.stream_plan import box_from_draw
from keras_dlpa_serving.image_decode import open_rgb

# ImageNet mean pixel (0-255): random erasing fills with it, which is the
# torchvision value 0 after normalisation.
ERASE_FILL = np.array([124, 116, 104], np.uint8)
EVAL_CROP_FRACTION = 0.875


def open_image(blob: bytes):
    """Decodes image bytes to an RGB `PIL.Image` (`image_decode.open_rgb`:
    every mode, 16-bit grey scaled; `BadImageError` if unreadable)."""
    return open_rgb(blob)


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
_OPS = None


def _ops():
    global _OPS
    if _OPS is None:
        _OPS = [fn for _, fn in _op_table()]
    return _OPS


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
    """One planned training image: uint8 `(size, size, 3)`.

    Args:
        blob: encoded JPEG/PNG bytes.
        size: output side.
        crop: the crop draw `(area, log aspect, x, y)` (`box_from_draw`).
        flip: flip left-right.
        op: TrivialAugment op index, -1 for none.
        magnitude: signed magnitude in `[-1, 1]`.
        erase: apply random erasing.
        erase_box: the erasing draw, in the `size x size` output.
    """
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
