"""Classify image files with an exported DL2PA ONNX model.

A light serving client: needs only numpy, onnxruntime and pillow (no
TensorFlow, no keras_dlpa). Reads class names from the model's ONNX
metadata, takes image files or folders (searched recursively for
.jpg/.jpeg/.png), converts them to the model's channels, resizes them to the
model's input size when needed (unless --no-resize) and prints one line per
image:

    path  label_index  class_name  score

Usage:
    python export/onnx_predict.py MODEL.onnx PATH [PATH ...] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def read_metadata(session) -> dict:
    """The model's ONNX `metadata_props`, JSON values decoded."""
    out = {}
    for key, value in session.get_modelmeta().custom_metadata_map.items():
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def load_model(path):
    """Returns `(session, metadata)`; metadata values JSON-decoded."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No ONNX model at {str(path)!r}.")
    try:
        session = ort.InferenceSession(
            str(path), providers=["CPUExecutionProvider"]
        )
    except Exception as error:
        raise ValueError(
            f"Cannot load {path} as an ONNX model: {error}"
        ) from error
    return session, read_metadata(session)


def input_shape(session) -> tuple:
    """The model's image shape `(H, W, C)`; unknown H/W are None."""
    shape = session.get_inputs()[0].shape[1:]
    return tuple(d if isinstance(d, int) else None for d in shape)


def find_images(paths) -> list:
    """Image files among `paths` (folders searched recursively), sorted."""
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            found.extend(
                sorted(
                    p
                    for p in path.rglob("*")
                    if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                )
            )
        elif path.is_file():
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                raise ValueError(
                    f"{str(path)!r} is not a .jpg/.jpeg/.png image file."
                )
            found.append(path)
        else:
            raise FileNotFoundError(f"No such file or folder: {str(path)!r}")
    if not found:
        raise ValueError(
            f"No .jpg/.jpeg/.png images found in {[str(p) for p in paths]}."
        )
    return found


def load_image(path, shape, resize: bool = True) -> np.ndarray:
    """Decodes `path` to uint8 `(H, W, C)` matching the model `shape`."""
    height, width, channels = shape
    modes = {1: "L", 3: "RGB", 4: "RGBA"}
    if channels not in modes:
        raise ValueError(
            f"The model expects {channels} channels; this client handles "
            "1 (L), 3 (RGB) or 4 (RGBA)."
        )
    try:
        with Image.open(path) as image:
            image = image.convert(modes[channels])
            size = (width or image.width, height or image.height)
            if image.size != size:
                if not resize:
                    raise ValueError(
                        f"Image {str(path)!r} is {image.width}x"
                        f"{image.height} (WxH) but the model expects "
                        f"{size[0]}x{size[1]}; drop --no-resize to resize."
                    )
                image = image.resize(size, Image.Resampling.BILINEAR)
            array = np.asarray(image, dtype="uint8")
    except OSError as error:
        raise ValueError(
            f"Cannot read {str(path)!r} as an image: {error}"
        ) from error
    return array.reshape(array.shape[0], array.shape[1], channels)


def classify(session, images) -> tuple:
    """Runs the model on raw images `(B, H, W, C)`; returns (labels, scores).

    Raises `ValueError` naming both shapes when the images do not match the
    model input.
    """
    images = np.asarray(images)
    expected = input_shape(session)
    if images.ndim != 4 or any(
        e is not None and e != r for e, r in zip(expected, images.shape[1:])
    ):
        raise ValueError(
            f"Images of shape {images.shape} do not fit the model input "
            f"(B, H, W, C) = (B, {', '.join(map(str, expected))})."
        )
    name = session.get_inputs()[0].name
    labels, scores = session.run(
        ["label", "score"], {name: images.astype("float32")}
    )
    return labels.reshape(-1), scores.reshape(-1)


def predict_files(session, paths, batch_size=64, resize=True) -> list:
    """Classifies image files; returns dicts path/label/class_name/score."""
    names = read_metadata(session).get("class_names")
    shape = input_shape(session)
    files = find_images(paths)
    if None in shape[:2]:
        batch_size = 1  # images keep their own sizes
    results = []
    for start in range(0, len(files), batch_size):
        chunk = files[start : start + batch_size]
        batch = np.stack([load_image(p, shape, resize) for p in chunk])
        labels, scores = classify(session, batch)
        for path, label, score in zip(chunk, labels, scores):
            label = int(label)
            results.append(
                {
                    "path": str(path),
                    "label": label,
                    "class_name": names[label] if names else str(label),
                    "score": float(score),
                }
            )
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="exported .onnx model")
    parser.add_argument("paths", nargs="+", help="image files or folders")
    parser.add_argument("--json", action="store_true", help="JSON output")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--no-resize",
        action="store_true",
        help="fail on images whose size differs from the model input",
    )
    args = parser.parse_args(argv)
    try:
        session, _ = load_model(args.model)
        results = predict_files(
            session, args.paths, args.batch_size, not args.no_resize
        )
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            print(
                f"{r['path']}  {r['label']}  {r['class_name']}  "
                f"{r['score']:.6f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
