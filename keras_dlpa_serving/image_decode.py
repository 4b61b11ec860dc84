"""Image decoding shared by every reader: any PIL mode to uint8 RGB.

Imports only numpy and PIL, so that the Keras-free ONNX client
(`keras_dlpa_serving.onnx_client`) and the data readers of `keras_dlpa.data`
decode images the same way.

Files: the extensions of `IMAGE_EXTENSIONS` (any case) are images; text
side-car files (`IGNORED_EXTENSIONS`, e.g. `notes.txt`, VOC `.xml`) and
`Thumbs.db`/`desktop.ini` are ignored; anything else in a class folder is
an unsupported file that the readers name (or skip and record).

Modes: 8-bit modes convert with PIL (grey, palette, CMYK become RGB; alpha
is dropped). Wider samples are scaled to 8 bit, not clipped (PIL's
`convert("RGB")` clips them, which turns a 16-bit grey image white):

- `"I;16"`, `"I;16L"`, `"I;16B"`, `"I;16N"` (16-bit PNG/TIFF):
  `round(v / 257)`, so 65535 becomes 255.
- `"I"` (32-bit signed): an image whose samples all fit in 16 bits (16-bit
  data widened to 32, e.g. 16-bit PNGs in older Pillow) scales like
  `"I;16"`; otherwise `round(v * 255 / (2**31 - 1))`. Negatives become 0.
- `"F"` (32-bit float): an image whose samples all lie in `[0, 1]` is
  read as fractions (`round(v * 255)`); otherwise as the 0-255 scale
  (PIL's own reading of `"F"`), clipped to `[0, 255]` and rounded. NaN
  becomes 0.

Every decode ends as uint8 RGB `(H, W, 3)`.
"""

from __future__ import annotations

import io
import os

import numpy as np

IMAGE_EXTENSIONS = (
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".bmp", ".gif",
    ".tif", ".tiff",
)  # fmt: skip
IGNORED_EXTENSIONS = (
    ".txt", ".md", ".json", ".csv", ".tsv", ".xml", ".yaml", ".yml",
)  # fmt: skip
IGNORED_NAMES = ("thumbs.db", "desktop.ini")
_SHOWN = 10
_WIDE_GREY = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def is_image_name(name: str) -> bool:
    """Whether a file name has an image extension (any case)."""
    return name.lower().endswith(IMAGE_EXTENSIONS)


def is_ignored_name(name: str) -> bool:
    """Whether a file is a text side-car (`notes.txt`, `.xml`, ...)."""
    name = name.lower()
    return name.endswith(IGNORED_EXTENSIONS) or name in IGNORED_NAMES


def unsupported_reason(name: str) -> str:
    """Why a file that is not an image is not read, one line."""
    suffix = os.path.splitext(name)[1].lower()
    return f"unsupported file type {suffix or '(no extension)'}"


class BadImageError(ValueError):
    """A file that cannot be decoded as an image; names the file.

    Attributes:
        path: the file path or archive member name.
        reason: one line, e.g. `"image file is truncated"`.
    """

    def __init__(self, path, reason: str):
        super().__init__(f"Cannot decode image {path}: {reason}")
        self.path = str(path)
        self.reason = reason

    def __reduce__(self):  # picklable across decode worker processes
        return (type(self), (self.path, self.reason))


def error_reason(error: BaseException, name: str | None = None) -> str:
    """A one-line reason for a decode error, without object reprs."""
    from PIL import UnidentifiedImageError
    from PIL import features

    if name and name.lower().endswith(".webp") and not features.check("webp"):
        return "this Pillow has no WebP support (reinstall pillow)"
    if isinstance(error, UnidentifiedImageError):
        return "unknown image format or corrupt header"
    if isinstance(error, OSError) and error.filename and error.strerror:
        return error.strerror  # e.g. "No such file or directory"
    text = " ".join(str(error).split())
    if not isinstance(error, OSError) or not text:  # OSError: PIL's own
        text = f"{type(error).__name__}: {text}".rstrip(": ")
    return text if len(text) <= 200 else text[:197] + "..."


def _scale(values: np.ndarray, mode: str) -> np.ndarray:
    """8-bit grey `(H, W)` of a wide grey image's samples (module doc)."""
    values = values.astype(np.float64)
    if mode == "F":
        values = np.nan_to_num(values, nan=0.0, posinf=255.0, neginf=0.0)
        if values.size and values.min() >= 0.0 and values.max() <= 1.0:
            values = values * 255.0
    elif mode == "I":
        values = np.maximum(values, 0.0)
        if values.size and values.max() > 65535:
            values = values * (255.0 / (2**31 - 1))
        else:
            values = values / 257.0
    else:  # I;16*: 65535 -> 255, no ties (257 is odd).
        values = values / 257.0
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def to_8bit(image):
    """A PIL image in an 8-bit mode: wide grey modes scaled (module doc)."""
    from PIL import Image

    if image.mode == "La":  # premultiplied alpha: PIL converts LA only
        return image.convert("LA")
    if image.mode not in _WIDE_GREY:
        return image
    return Image.fromarray(_scale(np.asarray(image), image.mode), "L")


def open_rgb(source, name=None):
    """Decodes bytes or a file to an RGB `PIL.Image`.

    Args:
        source: encoded bytes, or a path.
        name: the path or member name the errors give (default: `source`
            when it is a path).

    Raises:
        BadImageError: naming the file, for anything PIL cannot decode
            (unknown format, truncated data, decompression bomb, ...).
    """
    from PIL import Image

    if name is None:
        name = "<bytes>" if isinstance(source, (bytes, bytearray)) else source
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(source)
    try:
        with Image.open(source) as image:
            return to_8bit(image).convert("RGB")
    except Exception as error:  # noqa: BLE001 - PIL raises many types
        raise BadImageError(name, error_reason(error, str(name))) from error


def decode_image(source, name=None) -> np.ndarray:
    """Decodes bytes or a file to uint8 RGB `(H, W, 3)` (`open_rgb`)."""
    return np.asarray(open_rgb(source, name), dtype=np.uint8)


def check_image(source, name=None) -> None:
    """Decodes once to check (JPEGs at 1/8 scale, which still reads every
    byte); raises `BadImageError` naming the file."""
    from PIL import Image

    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(source)
    try:
        with Image.open(source) as image:
            if image.format == "JPEG":
                size = (max(1, image.width // 8), max(1, image.height // 8))
                image.draft("RGB", size)
            image.load()
    except Exception as error:  # noqa: BLE001 - PIL raises many types
        name = str(name if name is not None else source)
        raise BadImageError(name, error_reason(error, name)) from error


def bad_files_message(bad, total: int, where) -> str:
    """`"N of M files in WHERE are not readable images: a (why), ..."`.

    Args:
        bad: `(path, reason)` pairs; the first 10 are shown.
        total: number of files looked at.
        where: the folder, archive or list file.
    """
    shown = ", ".join(f"{path} ({reason})" for path, reason in bad[:_SHOWN])
    more = f" and {len(bad) - _SHOWN} more" if len(bad) > _SHOWN else ""
    return (
        f"{len(bad)} of {total} files in {where} are not readable images: "
        f"{shown}{more}."
    )


def skipped_message(paths, total: int, where) -> str:
    """`"Skipped N of M files of WHERE (not readable images): a, b, ..."`."""
    shown = ", ".join(str(p) for p in paths[:_SHOWN])
    more = f" and {len(paths) - _SHOWN} more" if len(paths) > _SHOWN else ""
    return (
        f"Skipped {len(paths)} of {total} files of {where} (not readable "
        f"images): {shown}{more}."
    )
