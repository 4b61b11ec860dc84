"""Image-folder source: `root/<class>/*.jpg|png|webp|...` or a tarball."""

from __future__ import annotations

import gzip
import json
import logging
import os
import shutil
import tarfile
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from pathlib import PurePosixPath

import numpy as np

from keras_dlpa.atomic_write import atomic_write
from keras_dlpa.cache import cache_root
from keras_dlpa.data.image_data import ImageData
from keras_dlpa_serving.image_decode import IMAGE_EXTENSIONS
from keras_dlpa_serving.image_decode import BadImageError
from keras_dlpa_serving.image_decode import bad_files_message
from keras_dlpa_serving.image_decode import decode_image
from keras_dlpa_serving.image_decode import is_ignored_name
from keras_dlpa_serving.image_decode import is_image_name as _is_image
from keras_dlpa_serving.image_decode import skipped_message
from keras_dlpa_serving.image_decode import unsupported_reason

logger = logging.getLogger(__name__)

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")
_TEXTS = ("class_names", "skipped_files")  # JSON fields of a decoded cache
_EXPECTED = "`root/<class_name>/*.jpg|png|webp|...`"
_SKIP_HINT = (
    " Fix or remove them, or pass skip_bad_images=True (--skip-bad-images) "
    "to leave them out."
)


def _hidden(parts) -> bool:
    return any(p.startswith(".") or p == "__MACOSX" for p in parts)


def _find_root(path: Path) -> Path:
    """Descends wrapper directories (one entry, a directory of directories)."""
    while True:
        entries = [e for e in path.iterdir() if not _hidden([e.name])]
        if len(entries) != 1 or not entries[0].is_dir():
            return path
        inner = entries[0]
        if not any(e.is_dir() for e in inner.iterdir()):
            return path
        path = inner


def _list_folder(path: Path) -> dict[str, list[Path]]:
    """`{class name: files}` of a class-folder tree (hidden entries and text
    side-car files skipped)."""
    root = _find_root(path)
    class_dirs = [
        e for e in root.iterdir() if e.is_dir() and not _hidden([e.name])
    ]
    return {
        class_dir.name: [
            f
            for f in class_dir.iterdir()
            if f.is_file()
            and not _hidden([f.name])
            and not is_ignored_name(f.name)
        ]
        for class_dir in class_dirs
    }


def _split_unsupported(classes: dict) -> tuple[dict, list]:
    """`(classes with images only, sorted [(path, reason)] of the others)`;
    files are paths or `(name, payload)` pairs."""
    images, others = {}, []
    for name, files in classes.items():
        images[name] = []
        for f in files:
            path = str(f[0] if isinstance(f, tuple) else f)
            if _is_image(path):
                images[name].append(f)
            else:
                others.append((path, unsupported_reason(path)))
    return images, sorted(others)


def _labelled(classes: dict, where, key=None):
    """`(class_names, files, labels, unsupported)`: sorted classes (label k
    is the k-th name), files sorted by `key` within a class."""
    _check_classes(classes, where)
    classes, others = _split_unsupported(classes)
    class_names = sorted(classes)
    files, labels = [], []
    for label, name in enumerate(class_names):
        members = sorted(classes[name], key=key)
        files.extend(members)
        labels.extend([label] * len(members))
    return class_names, files, np.asarray(labels, np.int64), others


def _report_bad(bad, total, where, skip_bad_images, warn=True) -> None:
    """Raises `ValueError` listing `bad` `(path, reason)`, or warns (skip)."""
    if not bad:
        return
    if not skip_bad_images:
        raise ValueError(bad_files_message(bad, total, where) + _SKIP_HINT)
    if warn:
        logger.warning(skipped_message([p for p, _ in bad], total, where))


def _check_counts(class_names, labels, where) -> None:
    """`ValueError` for a class left without images."""
    counts = np.bincount(labels, minlength=len(class_names))
    _check_classes(dict(zip(class_names, counts.tolist())), where)


def _check_classes(classes: dict, where) -> None:
    """`ValueError` for no classes or a class without images."""
    if not classes:
        raise ValueError(
            f"Image folder {where} has no class sub-directories. Expected "
            f"{_EXPECTED}."
        )
    for name in sorted(classes):
        if not classes[name]:
            raise ValueError(
                f"Class folder {name!r} in {where} contains no images "
                f"with extension {', '.join(IMAGE_EXTENSIONS)}. Remove it or "
                "add images."
            )


def list_image_folder(
    path: str | os.PathLike, skip_bad_images: bool = False
) -> tuple[list[str], np.ndarray, list[str]]:
    """Lists `root/<class>/*.{jpg,png,webp,...}` without reading any image,
    with the rules of `load_image_folder`.

    Returns:
        `(files, labels, class_names)`: absolute file paths `(N,)`, int64
        labels `(N,)` and the class names.
    """
    files, labels, class_names, _ = _list_image_folder(path, skip_bad_images)
    return files, labels, class_names


def _list_image_folder(path, skip_bad_images=False, warn=True):
    """`list_image_folder` plus the skipped unsupported files' paths."""
    path = Path(path)
    class_names, files, labels, others = _labelled(
        _list_folder(path), path, key=lambda f: f.name
    )
    _report_bad(others, len(files) + len(others), path, skip_bad_images, warn)
    _check_counts(class_names, labels, path)
    files = [str(f.absolute()) for f in files]
    return files, labels, class_names, [p for p, _ in others]


def read_image_list(
    list_file: str | os.PathLike, root: str | os.PathLike | None = None
) -> tuple[list[str], np.ndarray]:
    """Reads a `path label` list file (ImageNet-LT format, e.g.
    `train/n01440764/n01440764_190.JPEG 0`), paths relative to `root`
    (default: the list file's directory); blank lines are skipped.

    Returns:
        `(files, labels)`: absolute paths and int64 labels `(N,)`.
    """
    list_file = Path(list_file)
    root = Path(root) if root is not None else list_file.parent
    files, labels = [], []
    with open(list_file, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            parts = line.rsplit(maxsplit=1)
            if len(parts) != 2 or not parts[1].isdigit():
                raise ValueError(
                    f"{list_file}, line {number}: expected 'path label' with "
                    f"an integer label >= 0. Received: {line!r}"
                )
            if not _is_image(parts[0]):
                raise ValueError(
                    f"{list_file}, line {number}: {parts[0]!r} does not end "
                    f"with an image extension {IMAGE_EXTENSIONS}."
                )
            files.append(str((root / parts[0]).absolute()))
            labels.append(int(parts[1]))
    if not files:
        raise ValueError(f"Image list {list_file} has no entries.")
    return files, np.asarray(labels, np.int64)


def extract_archive(
    path: str | os.PathLike, cache_dir: str | os.PathLike | None = None
) -> Path:
    """Extracts a `.tar.gz`/`.tgz` once into
    `cache_dir/<stem>-<size>-<mtime_ns>/` and returns it (streamed data
    needs random access; only regular files are written, `filter="data"`).
    """
    path = Path(path)
    if not path.name.lower().endswith(ARCHIVE_SUFFIXES):
        raise ValueError(
            f"`path` must be a .tar.gz/.tgz archive. Received: {path}."
        )
    target = _cache_path(path, cache_dir)
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                parts = PurePosixPath(member.name).parts
                if member.isfile() and not _hidden(parts):
                    tar.extract(member, tmp, filter="data")
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if not target.is_dir():
            raise
    logger.info("Extracted %s to %s", path, target)
    return target


def _read_folder(path: Path) -> dict[str, list[tuple[str, bytes]]]:
    """`{class: [(path, bytes)]}`; other files get empty bytes."""
    return {
        name: [
            (str(f), f.read_bytes() if _is_image(f.name) else b"")
            for f in files
        ]
        for name, files in _list_folder(path).items()
    }


def _octal(field: bytes) -> int:
    field = field.rstrip(b"\0 ").lstrip(b" ")
    return int(field, 8) if field else 0


def _iter_ustar(data: bytes):
    """Yields `(name, is_dir, payload)` of an uncompressed tar in memory.

    A minimal ustar/GNU/pax reader, ~50x faster than `tarfile` for 50,000
    tiny members; `ValueError` on anything else (then `tarfile` is used).
    """
    view = memoryview(data)
    offset, long_name = 0, None
    while offset + 512 <= len(data):
        header = data[offset : offset + 512]
        if header == b"\0" * 512:
            return
        size = _octal(header[124:136])
        kind = header[156:157]
        body = view[offset + 512 : offset + 512 + size]
        offset += 512 + (size + 511) // 512 * 512
        if kind == b"L":
            long_name = bytes(body).rstrip(b"\0").decode("utf-8")
            continue
        if kind == b"x":
            for record in bytes(body).decode("utf-8").split("\n"):
                key, _, value = record.partition(" ")[2].partition("=")
                if key == "path":
                    long_name = value
            continue
        if kind == b"g":
            continue
        name, long_name = long_name, None
        if name is None:
            name = header[0:100].split(b"\0", 1)[0].decode("utf-8")
            if header[257:262] == b"ustar":
                prefix = header[345:500].split(b"\0", 1)[0].decode("utf-8")
                name = f"{prefix}/{name}" if prefix else name
        if kind in (b"0", b"\0", b"7"):
            yield name, False, body
        elif kind == b"5":
            yield name, True, body
        elif kind not in (b"1", b"2", b"3", b"4", b"6"):
            raise ValueError(f"unsupported tar member type {kind!r}")
    if offset < len(data) and data[offset:].strip(b"\0"):
        raise ValueError("truncated tar data")


def _iter_archive(path: Path):
    try:
        data = gzip.decompress(path.read_bytes())
        return list(_iter_ustar(data))
    except (ValueError, UnicodeDecodeError, OSError, EOFError) as error:
        logger.info("Fast tar reader failed (%s); using tarfile.", error)
    with tarfile.open(path, "r:*") as tar:
        return [
            (m.name, m.isdir(), b"" if m.isdir() else tar.extractfile(m).read())
            for m in tar
            if m.isdir() or m.isfile()
        ]


def _read_archive(path: Path) -> dict[str, list[tuple[str, bytes]]]:
    """`{class: [(name, bytes)]}` of `[<top>/]<class>/<file>` members of a
    `.tar.gz`, read in memory."""
    images: dict[tuple[str, ...], list[tuple[str, bytes]]] = {}
    dirs, others = set(), []
    for name, is_dir, payload in _iter_archive(path):
        parts = PurePosixPath(name).parts
        if parts[:1] == (".",):
            parts = parts[1:]
        if not parts or _hidden(parts):
            continue
        if is_dir:
            dirs.add(parts)
        elif _is_image(parts[-1]):
            images.setdefault(parts[:-1], []).append((name, bytes(payload)))
            dirs.update(parts[:i] for i in range(1, len(parts)))
        elif not is_ignored_name(parts[-1]):
            others.append((parts, name))
    if not images:
        raise ValueError(
            f"Archive {path} contains no images; expected {_EXPECTED} inside."
        )
    roots = {class_dir[:-1] for class_dir in images}
    if len(roots) != 1 or any(len(d) == 0 for d in images):
        raise ValueError(
            f"Archive {path} must hold images as {_EXPECTED} under one root "
            "(optionally inside a single top-level directory). Found image "
            f"directories: {sorted('/'.join(d) for d in images)[:5]}."
        )
    (root,) = roots
    classes = {d[-1]: files for d, files in images.items()}
    for d in dirs:
        if len(d) == len(root) + 1 and d[:-1] == root:
            classes.setdefault(d[-1], [])
    for parts, name in others:  # unsupported files inside class folders
        if len(parts) == len(root) + 2 and parts[: len(root)] == root:
            classes.setdefault(parts[-2], []).append((name, b""))
    return classes


def _decode_blobs(names: list[str], blobs: list[bytes]):
    """`(images, bad)`: uint8 `(N, H, W, 3)` decoded in a thread pool (rows
    of bad files undefined), `{index: reason}` of the undecodable ones."""
    bad, first, start = {}, None, 0
    for start, (name, blob) in enumerate(zip(names, blobs)):
        try:
            first = decode_image(blob, name)
            break
        except BadImageError as error:
            bad[start] = error.reason
    if first is None:
        return np.zeros((len(blobs), 0, 0, 3), np.uint8), bad
    height, width = first.shape[:2]
    images = np.empty((len(blobs), height, width, 3), np.uint8)
    images[start] = first

    def decode_into(i):
        try:
            image = decode_image(blobs[i], names[i])
        except BadImageError as error:
            bad[i] = error.reason
            return
        if image.shape[:2] != (height, width):
            raise ValueError(
                "All images must have the same size. "
                f"{names[i]} has shape {image.shape} but {names[start]} has "
                f"{first.shape}. Resize the images first."
            )
        images[i] = image

    workers = min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        # list() re-raises the first size error here.
        rest = range(start + 1, len(blobs))
        list(pool.map(decode_into, rest, chunksize=256))
    return images, bad


def _to_image_data(classes, where, skip_bad_images=False) -> ImageData:
    """Decodes `{class: [(name, bytes)]}`; bad files raise or are skipped."""
    class_names, files, labels, others = _labelled(classes, where)
    names = [name for name, _ in files]
    images, undecodable = _decode_blobs(names, [blob for _, blob in files])
    bad = sorted(others + [(names[i], why) for i, why in undecodable.items()])
    _report_bad(bad, len(names) + len(others), where, skip_bad_images)
    if undecodable:
        keep = np.ones(len(names), bool)
        keep[list(undecodable)] = False
        images, labels = images[keep], labels[keep]
    _check_counts(class_names, labels, where)
    skipped = tuple(path for path, _ in bad)
    return ImageData(images, labels, class_names, skipped_files=skipped)


def _cache_path(archive: Path, cache_dir, suffix: str = "") -> Path:
    """`cache_dir/<stem>-<size>-<mtime_ns><suffix>` of an archive (`-d2`:
    decoder version 2)."""
    stat = archive.stat()
    stem = archive.name
    for archive_suffix in ARCHIVE_SUFFIXES:
        if stem.lower().endswith(archive_suffix):
            stem = stem[: -len(archive_suffix)]
    cache_dir = Path(cache_dir or cache_root() / "image_folder")
    return cache_dir / f"{stem}-{stat.st_size}-{stat.st_mtime_ns}{suffix}"


def _load_cached(path: Path) -> ImageData:
    with np.load(path, allow_pickle=False) as cached:
        skipped = cached["skipped_files"] if "skipped_files" in cached else "[]"
        names = json.loads(str(cached["class_names"]))
        skipped = tuple(json.loads(str(skipped)))
        return ImageData(cached["images"], cached["labels"], names, skipped)


def _save_cached(path: Path, data: ImageData) -> None:
    texts = {k: np.array(json.dumps(getattr(data, k))) for k in _TEXTS}

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, images=data.images, labels=data.labels, **texts)

    atomic_write(path, write)


def load_image_folder(
    path: str | os.PathLike,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    skip_bad_images: bool = False,
) -> ImageData:
    """Loads `root/<class>/*.{jpg,png,webp,...}` into memory.

    Classes are the root's sub-directories in sorted order (label k is the
    k-th name), files sorted within a class; hidden entries and text
    side-car files are skipped and one wrapper directory (e.g. `train/`)
    descended into. A `.tar.gz`/`.tgz` of such a tree is decoded from the
    tar stream and cached as `cache_dir/<stem>-<size>-<mtime_ns>-d2.npz`.
    Images become uint8 RGB (`keras_dlpa_serving.image_decode`) and must
    all have the same size. Undecodable images and other files in a class
    folder are listed in one `ValueError`, unless `skip_bad_images`.

    Args:
        path: image folder or archive.
        cache_dir: decoded-archive cache (default
            `$KERAS_DLPA_CACHE/image_folder`).
        use_cache: read and write the cache for archives.
        skip_bad_images: leave bad files out (warned, listed in
            `skipped_files`; cached apart as `...-d2-skip.npz`).

    Returns:
        An `ImageData` with uint8 images `(N, H, W, 3)`.

    Example:

    >>> data = load_image_folder("../shared/data/cifar10-jpeg-train.tar.gz")
    ... # doctest: +SKIP
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"Image folder or archive not found: {path} (absolute: "
            f"{path.absolute()}). Pass a directory {_EXPECTED} or a "
            ".tar.gz/.tgz archive of one."
        )
    if path.is_dir():
        return _to_image_data(_read_folder(path), path, skip_bad_images)
    if not path.name.lower().endswith(ARCHIVE_SUFFIXES):
        raise ValueError(
            "`path` must be a directory or a .tar.gz/.tgz archive. "
            f"Received: {path}."
        )
    suffixes = ("-d2.npz", "-d2-skip.npz")[: 2 if skip_bad_images else 1]
    caches = [_cache_path(path, cache_dir, suffix) for suffix in suffixes]
    for cache in caches if use_cache else ():
        if cache.is_file():
            logger.info("Loading decoded images from %s", cache)
            data = _load_cached(cache)
            if data.skipped_files:
                total = len(data) + len(data.skipped_files)
                logger.warning(skipped_message(data.skipped_files, total, path))
            return data
    data = _to_image_data(_read_archive(path), path, skip_bad_images)
    if use_cache:
        cache = caches[-1] if data.skipped_files else caches[0]
        _save_cached(cache, data)
        logger.info("Cached decoded images at %s", cache)
    return data
