"""`LabelledPaths`: a streamed image set, only paths and labels in memory
(ImageNet at 224 px would need 17 GB to 190 GB); decoded per batch."""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from keras_dlpa.data.image_data import _LabelledSet
from keras_dlpa.data.image_folder import ARCHIVE_SUFFIXES
from keras_dlpa.data.image_folder import _list_image_folder
from keras_dlpa.data.image_folder import extract_archive
from keras_dlpa.data.image_folder import read_image_list
from keras_dlpa_serving.image_decode import BadImageError
from keras_dlpa_serving.image_decode import check_image
from keras_dlpa_serving.image_decode import error_reason
from keras_dlpa_serving.image_decode import skipped_message

logger = logging.getLogger(__name__)

# Decode threads of one evaluation batch (`LabelledPaths.eval_images`).
EVAL_THREADS = 2


@dataclasses.dataclass(frozen=True, eq=False)
class LabelledPaths(_LabelledSet):
    """Paths (or record indices) and labels of images decoded on demand.

    Args:
        items: `(N,)` array: file paths (str) or, with `records`, integer
            indices into it.
        labels: int `(N,)` labels in `[0, len(class_names))`.
        class_names: one name per class, in label order.
        records: optional random-access source, `records[i]["image"]` the
            encoded image (e.g. an undecoded `tfds.data_source`).
        skipped_files: paths of the source's files left out as unreadable
            (`skip_bad_images=True`).
    """

    items: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    records: object = None
    skipped_files: tuple = ()
    _ITEMS = "items"

    def __post_init__(self):
        items = np.asarray(self.items)
        labels = self._init_labels("items", items, np.shape)
        if self.records is None and items.size:
            items = items.astype(str)
        object.__setattr__(self, "items", items)
        object.__setattr__(self, "labels", labels.astype(np.int64))

    def read(self, index: int) -> bytes:
        """The encoded image (JPEG/PNG bytes) of entry `index`."""
        item = self.items[int(index)]
        if self.records is not None:
            return bytes(self.records[int(item)]["image"])
        with open(item, "rb") as f:
            return f.read()

    def name(self, index: int) -> str:
        """The path of entry `index` (`"record <i>"` for records)."""
        item = self.items[int(index)]
        return f"record {int(item)}" if self.records is not None else str(item)

    def decode_error(self, index: int, error: Exception) -> BadImageError:
        """A `BadImageError` naming entry `index`, for `error`."""
        reason = getattr(error, "reason", None) or error_reason(error)
        return BadImageError(self.name(index), reason)

    # The `keras_dlpa.data.source.DataSource` interface.

    def augmentation(self, settings):
        """The `StreamAugmentation` of `settings` (config fields by name,
        `ExperimentConfig.flat()`)."""
        from keras_dlpa.data.stream_plan import StreamAugmentation

        names = ("image_size", "flip", "auto_augment", "random_erasing")
        names += ("mixup_alpha", "cutmix_alpha")
        return StreamAugmentation(**{n: settings[n] for n in names})

    def input_statistics(self, image_size: int):
        """ImageNet mean and std (a streamed set is not read twice) and the
        `(image_size, image_size, 3)` shape."""
        from keras_dlpa.models.per_channel_normalization import IMAGENET_MEAN
        from keras_dlpa.models.per_channel_normalization import IMAGENET_STD

        shape = (int(image_size), int(image_size), 3)
        return np.array(IMAGENET_MEAN), np.array(IMAGENET_STD), shape

    def train_dataset(
        self, training_input, executor="grain", shard=None, workers=None
    ):
        """`streaming.stream_train_dataset` of these paths."""
        from keras_dlpa.data.streaming import stream_train_dataset

        return stream_train_dataset(
            self, training_input, executor, workers, shard
        )

    def eval_images(self, start: int, stop: int, image_size: int):
        """float32 `(n, S, S, 3)`: `image_ops.eval_image` of entries
        `start..stop - 1`."""
        from keras_dlpa.data.image_ops import eval_image

        def decode(i):
            try:
                return eval_image(self.read(i), image_size)
            except (BadImageError, OSError) as error:  # names the file
                raise self.decode_error(i, error) from None

        with ThreadPoolExecutor(max_workers=EVAL_THREADS) as pool:
            images = list(pool.map(decode, range(start, stop)))
        return np.stack(images).astype(np.float32)


def drop_bad_images(
    data: LabelledPaths, where=None, threads: int | None = None
) -> LabelledPaths:
    """`data` without the entries that fail to decode (added to
    `skipped_files`, all of which are logged); progress goes to stderr.
    `threads` defaults to the CPU count, at most 16."""
    total = len(data)
    bad = {}
    where = where or "the image set"

    def check(i):
        try:
            check_image(data.read(i), data.name(i))
        except Exception as error:  # noqa: BLE001 - unreadable, any kind
            bad[i] = data.decode_error(i, error).reason

    threads = threads or min(16, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for start in range(0, total, 5000):
            done = min(start + 5000, total)
            list(pool.map(check, range(start, done)))
            line = f"Checking images of {where}: {done}/{total}, {len(bad)}"
            print(line + " unreadable", file=sys.stderr, flush=True)
    dropped = sorted(bad)
    names = tuple(data.name(i) for i in dropped)
    skipped = tuple(sorted(data.skipped_files + names))
    if skipped:
        seen = total + len(data.skipped_files)
        logger.warning(skipped_message(skipped, seen, where))
    if not bad:
        return data
    kept = data.subset(np.setdiff1d(np.arange(total), dropped))
    emptied = (kept.class_counts() == 0) & (data.class_counts() > 0)
    if emptied.any():
        name = data.class_names[int(np.argmax(emptied))]
        raise ValueError(
            f"Class {name!r} of {where} has no readable images left after "
            f"skipping {len(dropped)} unreadable files. Fix or remove them."
        )
    return dataclasses.replace(kept, skipped_files=skipped)


def select_classes(
    data: LabelledPaths, classes: int | Sequence[str] | str | os.PathLike
) -> LabelledPaths:
    """`data` with only the `classes` (the first `k`, a list of names, or a
    text file of one name per line), relabelled `0 ..` in that order."""
    if isinstance(classes, (int, np.integer)):
        if not 1 <= int(classes) <= data.num_classes:
            raise ValueError(
                f"`classes` must be in [1, {data.num_classes}]. Received: "
                f"classes={classes}"
            )
        names = data.class_names[: int(classes)]
    else:
        if isinstance(classes, (str, os.PathLike)):
            text = Path(classes).read_text(encoding="utf-8")
            classes = [line.strip() for line in text.splitlines()]
        names = [str(c) for c in classes if str(c)]
        unknown = sorted(set(names) - set(data.class_names))
        if unknown or not names:
            raise ValueError(
                "Every class of `classes` must be a class of the data. "
                f"Unknown: {unknown[:5]} (of {len(names)} given); known "
                f"classes start {data.class_names[:3]}."
            )
    old = np.array([data.class_names.index(n) for n in names], np.int64)
    remap = np.full((data.num_classes,), -1, np.int64)
    remap[old] = np.arange(old.size)
    keep = np.flatnonzero(remap[data.labels] >= 0)
    labels, items = remap[data.labels[keep]], data.items[keep]
    return dataclasses.replace(
        data, items=items, labels=labels, class_names=names
    )


def load_tfds_records(
    name: str,
    split: str = "train",
    data_dir=None,
    manual_dir=None,
    download: bool = True,
) -> LabelledPaths:
    """A TFDS split as `LabelledPaths` over its ArrayRecord records (images
    stay encoded). Preparing needs TensorFlow (and for `imagenet_lt` or
    `imagenet2012` the archives in `manual_dir`), reading does not."""
    import tensorflow_datasets as tfds

    builder = tfds.builder(name, data_dir=data_dir)
    if download:
        config = tfds.download.DownloadConfig(manual_dir=manual_dir)
        builder.download_and_prepare(
            download_config=config, file_format="array_record"
        )
    decoders = {"image": tfds.decode.SkipDecoding()}
    source = tfds.data_source(
        name, split=split, data_dir=data_dir, decoders=decoders, download=False
    )
    labels = np.asarray([source[i]["label"] for i in range(len(source))])
    names = list(builder.info.features["label"].names)
    return LabelledPaths(
        np.arange(len(labels)), labels.astype(np.int64), names, source
    )


def load_labelled_paths(
    path: str | os.PathLike | None = None,
    root: str | os.PathLike | None = None,
    class_names: Sequence[str] | None = None,
    cache_dir: str | os.PathLike | None = None,
    skip_bad_images: bool = False,
) -> LabelledPaths:
    """Lists a class folder (rules of `load_image_folder`), a `.tar.gz` of
    one (extracted once) or a `path label` list file, decoding nothing: a
    bad image stops the run when its batch is decoded, unless
    `skip_bad_images` (then all are checked up front, `drop_bad_images`).

    Args:
        path: the folder, archive or list file.
        root: directory of the list file's paths (default: its directory).
        class_names: names of a list file's labels (default `"0"`, ...).
        cache_dir: where archives are extracted.
        skip_bad_images: leave out unsupported and undecodable files.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"Image folder, archive or list file not found: {path} "
            f"(absolute: {path.absolute()})."
        )
    where = path
    if path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES):
        path = extract_archive(path, cache_dir)
    if path.is_dir():
        files, labels, names, skipped = _list_image_folder(
            path, skip_bad_images, warn=False
        )
        data = LabelledPaths(np.asarray(files), labels, names, None, skipped)
    else:
        files, labels = read_image_list(path, root)
        if class_names is None:
            class_names = [str(k) for k in range(int(labels.max()) + 1)]
        data = LabelledPaths(np.asarray(files), labels, list(class_names))
    return drop_bad_images(data, where) if skip_bad_images else data
