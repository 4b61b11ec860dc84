"""Batch prediction on image files: the client side of the exports.

Needs only numpy, pillow and (for `.onnx` models) onnxruntime: this
package imports nothing from TensorFlow, Keras or `keras_dlpa`, so
`export/onnx_predict.py` and the `keras-dlpa` console script
(`keras_dlpa_cli`, for `.onnx` models and Triton folders) import it
without importing Keras. The Keras and SavedModel runners of `keras-dlpa
predict` (`keras_dlpa.predict`) plug into the same `Predictor`
interface.

Images: a folder (searched recursively for images, `IMAGE_SUFFIXES`:
.jpg, .png, .webp, .bmp, .gif, .tif, ...; hidden entries and text
side-car files skipped, other files reported as unsupported), an image
file, or a list file (`.txt`/`.lst`: one path per line, relative to the
list file; blank lines and `#` comments skipped). They are decoded by
`keras_dlpa_serving.image_decode` (16-bit grey scaled to 8 bit), converted
to the model's channels and resized (bilinear) to its input size unless
`resize=False`. An image that cannot be read is reported (path and
reason) and the others are still predicted; the exit code is then 1.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from keras_dlpa_serving import image_decode as _decode

IMAGE_SUFFIXES = _decode.IMAGE_EXTENSIONS
LIST_SUFFIXES = (".txt", ".lst")


# ------------------------------------------------------------ model paths


SAVED_MODEL_FILE = "saved_model.pb"
TRITON_CONFIG = "config.pbtxt"


def _latest_version(folder: Path, marker: str):
    """The highest numeric sub-folder of `folder` holding `marker`."""
    versions = [
        p
        for p in folder.iterdir()
        if p.is_dir() and p.name.isdigit() and (p / marker).exists()
    ]
    return max(versions, key=lambda p: int(p.name)) if versions else None


def resolve_model_path(path) -> tuple:
    """Returns `(kind, path)`: kind `"onnx"`, `"keras"` or `"savedmodel"`.

    Accepts a `.onnx` file, a `.keras` file, a run directory
    (`model.keras`), a SavedModel folder (`saved_model.pb`), and the
    serving layouts of `export_classifier`: a TF-Serving model folder
    (`NAME/VERSION/saved_model.pb`) or a Triton model folder
    (`NAME/config.pbtxt`, `NAME/VERSION/model.onnx`); their highest
    version is used.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No such model file or folder: {str(path)!r}")
    if path.is_file():
        if path.suffix == ".onnx":
            return "onnx", path
        if path.suffix == ".keras":
            return "keras", path
        raise ValueError(
            f"Cannot tell the model kind of {str(path)!r}: expected a "
            ".onnx or .keras file, a run directory or a SavedModel folder."
        )
    if (path / SAVED_MODEL_FILE).is_file():
        return "savedmodel", path
    if (path / "model.keras").is_file():
        return "keras", path
    if (path / TRITON_CONFIG).is_file():
        version = _latest_version(path, "model.onnx")
        if version is not None:
            return "onnx", version / "model.onnx"
    version = _latest_version(path, SAVED_MODEL_FILE)
    if version is not None:
        return "savedmodel", version
    raise ValueError(
        f"{str(path)!r} holds no model: expected saved_model.pb, "
        "model.keras, or numbered version folders (TF-Serving or Triton "
        "layout)."
    )


class PredictError(RuntimeError):
    """A model or image could not be loaded or run (CLI exit code 1)."""


@dataclasses.dataclass
class Predictor:
    """A loaded model, as the batch loop sees it.

    Attributes:
        logits: callable mapping raw uint8 images `(B, H, W, C)` to cosine
            logits `(B, c)` float32, in label order.
        image_shape: `(H, W, C)`; H/W None when the model accepts any size.
        class_names: `c` names, or None (labels are printed as numbers).
        kind: `"onnx"`, `"keras"` or `"savedmodel"`.
        path: where the model came from.
    """

    logits: Callable
    image_shape: tuple
    class_names: list | None
    kind: str
    path: str


# ------------------------------------------------------------ ONNX models


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
    """Returns `(session, metadata)` of an `.onnx` file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No ONNX model at {str(path)!r}.")
    try:
        import onnxruntime as ort
    except ImportError as error:
        raise ImportError(
            "ONNX models need onnxruntime: pip install onnxruntime"
        ) from error
    try:
        session = ort.InferenceSession(
            str(path), providers=["CPUExecutionProvider"]
        )
    except Exception as error:
        raise PredictError(
            f"Cannot load {str(path)!r} as an ONNX model: "
            f"{' '.join(str(error).split())}"
        ) from error
    return session, read_metadata(session)


def input_shape(session) -> tuple:
    """The model's image shape `(H, W, C)`; unknown H/W are None."""
    shape = session.get_inputs()[0].shape[1:]
    return tuple(d if isinstance(d, int) else None for d in shape)


def check_batch(images, expected) -> np.ndarray:
    """Returns `images` if `(B, H, W, C)` fits `expected`, else raises."""
    images = np.asarray(images)
    if images.ndim != 4 or any(
        e is not None and e != r for e, r in zip(expected, images.shape[1:])
    ):
        raise ValueError(
            f"Images of shape {images.shape} do not fit the model input "
            f"(B, H, W, C) = (B, {', '.join(map(str, expected))})."
        )
    return images


def classify(session, images) -> tuple:
    """Runs an ONNX session on raw images `(B, H, W, C)`; (labels, scores).

    Raises `ValueError` naming both shapes when the images do not match the
    model input.
    """
    images = check_batch(images, input_shape(session))
    name = session.get_inputs()[0].name
    labels, scores = session.run(
        ["label", "score"], {name: images.astype("float32")}
    )
    return labels.reshape(-1), scores.reshape(-1)


def onnx_predictor(path) -> Predictor:
    """A `Predictor` over an exported `.onnx` classifier."""
    session, metadata = load_model(path)
    shape = input_shape(session)
    name = session.get_inputs()[0].name

    def logits(images):
        images = check_batch(images, shape)
        return session.run(["logits"], {name: images.astype("float32")})[0]

    return Predictor(
        logits, shape, metadata.get("class_names"), "onnx", str(path)
    )


def load_onnx(path) -> Predictor:
    """`onnx_predictor` of a `.onnx` file or a Triton model folder.

    Raises `ValueError` for the other kinds of `resolve_model_path`.
    """
    kind, resolved = resolve_model_path(path)
    if kind != "onnx":
        raise ValueError(
            f"{str(path)!r} is a {kind} model; this client runs ONNX models "
            "only (a .onnx file or a Triton model folder); `keras-dlpa "
            "predict` runs the others."
        )
    return onnx_predictor(resolved)


# ------------------------------------------------------------ image files


def _read_list(path: Path) -> list:
    entries = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            entry = Path(line)
            entries.append(entry if entry.is_absolute() else path.parent / line)
    return entries


def _folder_files(folder: Path) -> list:
    """Files under `folder` (recursive, sorted) but hidden entries
    (`.name`, `__MACOSX`) and text side-car files (`notes.txt`, ...)."""
    files = []
    for p in folder.rglob("*"):
        parts = p.relative_to(folder).parts
        hidden = any(q.startswith(".") or q == "__MACOSX" for q in parts)
        if p.is_file() and not hidden and not _decode.is_ignored_name(p.name):
            files.append(p)
    return sorted(files)


def find_images(paths) -> list:
    """Image files among `paths`: folders (recursive), images, list files.

    A folder gives its images and also its files of other types (not
    hidden, not text side-cars), which `load_image` then rejects, so that
    they are reported rather than skipped silently.

    Raises `FileNotFoundError` for a missing path (a list file's entries
    included) and `ValueError` for a file of another kind or no images.
    """
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            found.extend(_folder_files(path))
        elif path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
            for entry in _read_list(path):
                if not entry.is_file():
                    raise FileNotFoundError(
                        f"No such image {str(entry)!r} (listed in "
                        f"{str(path)!r})."
                    )
                found.append(entry)
        elif path.is_file():
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                raise ValueError(
                    f"{str(path)!r} is not an image "
                    f"({', '.join(IMAGE_SUFFIXES)}), a folder or a "
                    ".txt/.lst list of images."
                )
            found.append(path)
        else:
            raise FileNotFoundError(f"No such file or folder: {str(path)!r}")
    if not found:
        raise ValueError(
            f"No images ({', '.join(IMAGE_SUFFIXES)}) found in "
            f"{[str(p) for p in paths]}."
        )
    return found


def load_image(path, shape, resize: bool = True) -> np.ndarray:
    """Decodes `path` to uint8 `(H, W, C)` matching the model `shape`.

    Raises `PredictError` naming the file for a file that is not an image
    or that PIL cannot decode (corrupt, truncated, decompression bomb),
    and for a size mismatch with `resize=False`.
    """
    height, width, channels = shape
    modes = {1: "L", 3: "RGB", 4: "RGBA"}
    if channels not in modes:
        raise ValueError(
            f"The model expects {channels} channels; this client handles "
            "1 (L), 3 (RGB) or 4 (RGBA)."
        )
    try:
        with Image.open(path) as image:
            image = _decode.to_8bit(image).convert(modes[channels])
    except Exception as error:  # noqa: BLE001 - PIL raises many types
        reason = _decode.error_reason(error, str(path))
        if not _decode.is_image_name(str(path)):
            reason = _decode.unsupported_reason(str(path))
        raise PredictError(
            f"Cannot read {str(path)!r} as an image: {reason}"
        ) from error
    size = (width or image.width, height or image.height)
    if image.size != size:
        if not resize:
            raise PredictError(
                f"Image {str(path)!r} is {image.width}x{image.height} (WxH) "
                f"but the model expects {size[0]}x{size[1]}; drop "
                "--no-resize to resize."
            )
        image = image.resize(size, Image.Resampling.BILINEAR)
    array = np.asarray(image, dtype="uint8")
    return array.reshape(array.shape[0], array.shape[1], channels)


# ------------------------------------------------------------ batch loop


def top_k(logits, k: int) -> tuple:
    """The `k` best labels and cosines per row, best first (stable ties)."""
    logits = np.asarray(logits)
    order = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(logits, order, axis=1)


def predict_files(
    predictor: Predictor,
    files,
    batch_size: int = 64,
    k: int = 1,
    resize: bool = True,
    progress: Callable | None = None,
    failures: list | None = None,
) -> list:
    """Classifies image files in batches.

    Args:
        predictor: a `Predictor`.
        files: image paths (see `find_images`).
        batch_size: images per model call (1 when the model has no fixed
            H/W, since images keep their own sizes).
        k: predictions per image, best first (`k <= c`).
        resize: resize images to the model size (else a size mismatch is
            a `PredictError`).
        progress: optional `progress(done, total)` after each batch.
        failures: optional list: a file that cannot be read (a
            `PredictError` of `load_image`) is appended as `{"path",
            "error"}` and the others are still classified. Without it the
            first such file raises.

    Returns:
        One dict per classified file: `path`, `label`, `class_name`,
        `score` (top-1) and `top_k`: a list of `(label, class_name,
        score)`.
    """
    shape = predictor.image_shape
    names = predictor.class_names
    if None in shape[:2]:
        batch_size = 1
    results, failed = [], 0
    for start in range(0, len(files), batch_size):
        chunk, arrays = [], []
        for path in files[start : start + batch_size]:
            try:
                arrays.append(load_image(path, shape, resize))
            except PredictError as error:
                if failures is None:
                    raise
                failures.append({"path": str(path), "error": str(error)})
                failed += 1
                continue
            chunk.append(path)
        if not chunk:
            if progress is not None:
                progress(len(results) + failed, len(files))
            continue
        logits = np.asarray(predictor.logits(np.stack(arrays)), "float32")
        if not 1 <= k <= logits.shape[1]:
            raise ValueError(
                f"Argument `top_k` must be in [1, {logits.shape[1]}] (the "
                f"number of classes). Received: top_k={k}"
            )
        labels, scores = top_k(logits, k)
        for path, row_labels, row_scores in zip(chunk, labels, scores):
            best = [
                (
                    int(j),
                    names[int(j)] if names else str(int(j)),
                    float(s),
                )
                for j, s in zip(row_labels, row_scores)
            ]
            results.append(
                {
                    "path": str(path),
                    "label": best[0][0],
                    "class_name": best[0][1],
                    "score": best[0][2],
                    "top_k": best,
                }
            )
        if progress is not None:
            progress(len(results) + failed, len(files))
    return results


def csv_header(k: int) -> list:
    """`path` then `label_i`, `class_name_i`, `score_i` for i = 1..k."""
    header = ["path"]
    for i in range(1, k + 1):
        header += [f"label_{i}", f"class_name_{i}", f"score_{i}"]
    return header


def write_csv(results, path, k: int, failures=()) -> Path:
    """Writes `predict_files` results as CSV (see `csv_header`).

    With `failures` (`{"path", "error"}` of `predict_files`) the header
    gains a last column `error`, and each failed file is a row with its
    path, empty prediction cells and the error.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    error = ["error"] if failures else []
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(csv_header(k) + error)
        for r in results:
            row = [r["path"]]
            for label, name, score in r["top_k"]:
                row += [label, name, f"{score:.6f}"]
            writer.writerow(row + [""] * len(error))
        for failure in failures:
            row = [failure["path"]] + [""] * (3 * k) + [failure["error"]]
            writer.writerow(row)
    return path


# ------------------------------------------------------------ command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments shared by `keras-dlpa predict` and onnx_predict.py."""
    parser.add_argument(
        "images",
        nargs="+",
        help="image files, folders (recursive) or .txt/.lst list files",
    )
    parser.add_argument(
        "--out", default=None, help="write predictions to this CSV file"
    )
    parser.add_argument(
        "--top-k", type=int, default=1, help="predictions per image (1)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=64, help="images per call (64)"
    )
    parser.add_argument(
        "--json", action="store_true", help="print JSON records to stdout"
    )
    parser.add_argument(
        "--no-resize",
        action="store_true",
        help="fail on images whose size differs from the model input",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="no progress on stderr"
    )


class _Progress:
    def __init__(self, stream):
        self.stream = stream
        self.start = time.perf_counter()

    def __call__(self, done, total):
        rate = done / max(time.perf_counter() - self.start, 1e-9)
        end = "\n" if done == total else "\r"
        print(
            f"predict: {done}/{total} images ({100 * done // total}%), "
            f"{rate:.0f} images/s",
            end=end,
            file=self.stream,
            flush=True,
        )


def run(args: argparse.Namespace, load: Callable) -> int:
    """Runs a parsed predict command; `load(path)` returns a `Predictor`.

    Every readable image is classified; each image that cannot be read is
    one `error: Cannot read PATH as an image: REASON` line on stderr (and
    a row with an `error` column in `--out`). Exit codes: 0 all images
    classified; 2 usage (bad argument, missing model or image path); 1
    runtime (a model that cannot be loaded or run, or some image failed).
    """
    for name in ("top_k", "batch_size"):
        if getattr(args, name) < 1:
            flag = "--" + name.replace("_", "-")
            print(
                f"error: {flag} must be >= 1. Received: {getattr(args, name)}",
                file=sys.stderr,
            )
            return 2
    try:
        files = find_images(args.images)
        predictor = load(args.model)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (PredictError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    progress = None if args.quiet else _Progress(sys.stderr)
    failures = []
    try:
        results = predict_files(
            predictor,
            files,
            batch_size=args.batch_size,
            k=args.top_k,
            resize=not args.no_resize,
            progress=progress,
            failures=failures,
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except PredictError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for failure in failures:
        print(f"error: {failure['error']}", file=sys.stderr)
    if failures and not args.quiet:
        print(
            f"predict: {len(failures)} of {len(files)} images could not be "
            "read (listed above)",
            file=sys.stderr,
        )
    if args.out:
        write_csv(results, args.out, args.top_k, failures)
        if not args.quiet:
            failed = f" and {len(failures)} failures" if failures else ""
            print(
                f"wrote {len(results)} predictions{failed} to {args.out}",
                file=sys.stderr,
            )
    if args.json:
        print(json.dumps(results, indent=2))
    elif not args.out:
        for r in results:
            cells = [f"{j}  {n}  {s:.6f}" for j, n, s in r["top_k"]]
            print("  ".join([r["path"], *cells]))
    return 1 if failures else 0


def main(argv=None) -> int:
    """`onnx_predict.py MODEL.onnx IMAGES... [--out predictions.csv]`."""
    parser = argparse.ArgumentParser(
        description="Classify image files with an exported DL2PA ONNX "
        "model (numpy + onnxruntime + pillow only)."
    )
    parser.add_argument(
        "model", help="exported .onnx model or Triton model folder"
    )
    add_arguments(parser)
    return run(parser.parse_args(argv), load_onnx)
