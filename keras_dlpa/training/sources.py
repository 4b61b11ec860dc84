"""Data of a run: the source (TFDS, image folder, list file, numpy), then
the validation split and the long-tailed profile (numpy, no TensorFlow)."""

from __future__ import annotations

import json
import logging

import numpy as np

from keras_dlpa.atomic_write import atomic_write
from keras_dlpa.data.image_data import ImageData
from keras_dlpa.data.image_data import from_arrays
from keras_dlpa.data.image_folder import load_image_folder
from keras_dlpa.data.long_tail import long_tailed_train_val
from keras_dlpa.data.source import DataSource
from keras_dlpa.training.config import DataConfig
from keras_dlpa.training.config import ExperimentConfig

logger = logging.getLogger(__name__)


def _load_tfds(config: DataConfig):
    """A TFDS builder: decoded into memory, or its ArrayRecord records."""
    if config.streaming:
        from keras_dlpa.data.labelled_paths import load_tfds_records as load
    else:
        from keras_dlpa.data.tfds_source import load_tfds as load
    kwargs = dict(
        data_dir=config.data_dir,
        manual_dir=config.manual_dir,
        download=config.download,
    )
    train = load(config.dataset, "train", **kwargs)
    test = None
    if config.test_split:
        test = load(config.dataset, config.test_split, **kwargs)
    return train, None, test


def _load_image_dir(config: DataConfig):
    """Class folders or a `.tar.gz` of them (streamed: with the optional
    `val_list` / `test_list`)."""
    if not config.image_dir:
        raise ValueError("source='image_dir' needs `image_dir`.")
    if not config.streaming:
        train = load_image_folder(
            config.image_dir, skip_bad_images=config.skip_bad_images
        )
        return train, None, None
    from keras_dlpa.data.labelled_paths import load_labelled_paths

    train = load_labelled_paths(
        config.image_dir, skip_bad_images=config.skip_bad_images
    )
    return (train, *_listed_parts(config, train))


def _load_image_list(config: DataConfig):
    """`path label` list files relative to `image_root` (always streamed)."""
    if not config.train_list:
        raise ValueError(
            "source='image_list' needs `train_list` (an image list file "
            "or a class-folder directory)."
        )
    from keras_dlpa.data.labelled_paths import load_labelled_paths

    train = load_labelled_paths(
        config.train_list,
        config.image_root,
        skip_bad_images=config.skip_bad_images,
    )
    return (train, *_listed_parts(config, train))


def _listed_parts(config: DataConfig, train):
    """The streamed `val_list` and `test_list` (or None), with the
    training classes."""
    from keras_dlpa.data.labelled_paths import load_labelled_paths

    names = train.class_names
    parts = []
    for name in ("val_list", "test_list"):
        path = getattr(config, name)
        part = None
        if path:
            part = load_labelled_paths(
                path,
                config.image_root,
                names,
                skip_bad_images=config.skip_bad_images,
            )
            if part.class_names != names:
                raise ValueError(
                    f"The classes of `{name}` differ from the training "
                    f"classes ({part.class_names[:3]}... vs {names[:3]}...)."
                )
        parts.append(part)
    return parts


def _load_numpy(config: DataConfig):
    """An `.npz` of `images`, `labels` and optional `class_names`,
    `val_images` / `val_labels`, `test_images` / `test_labels`."""
    if not config.numpy_path:
        raise ValueError("source='numpy' needs `numpy_path` (.npz).")
    with np.load(config.numpy_path) as arrays:
        names = (
            arrays["class_names"].tolist() if "class_names" in arrays else None
        )
        train = from_arrays(arrays["images"], arrays["labels"], names)
        val = test = None
        if "val_images" in arrays:
            val = from_arrays(arrays["val_images"], arrays["val_labels"], names)
        if "test_images" in arrays:
            test = from_arrays(
                arrays["test_images"],
                arrays["test_labels"],
                train.class_names,
            )
    return train, val, test


# `DataConfig.source` -> `loader(config.data) -> (train, val?, test?)`.
LOADERS = {
    "tfds": _load_tfds,
    "image_dir": _load_image_dir,
    "image_list": _load_image_list,
    "numpy": _load_numpy,
}


def _cap_per_class(data: DataSource, limit: int, seed: int) -> DataSource:
    rng = np.random.RandomState(seed)
    kept = []
    for k in range(data.num_classes):
        idx = np.flatnonzero(data.labels == k)
        kept.append(np.sort(rng.permutation(idx)[:limit]))
    return data.subset(np.sort(np.concatenate(kept)))


def load_data(
    config: ExperimentConfig,
) -> tuple[DataSource, DataSource | None, DataSource | None]:
    """Returns `(train_full, val_or_None, test_or_None)` of the source.

    In memory (`ImageData`), or `LabelledPaths` with `streaming` (always
    for list files); the loader is `LOADERS[source]` (fields of
    `config.data`). `class_subset` keeps a subset of the classes
    (renumbered) in every part. Unreadable or unsupported image files
    raise a `ValueError` listing them, or with `skip_bad_images` are left
    out (see the loaders).
    """
    config = config.data
    if config.class_subset and not config.streaming:
        raise ValueError(
            "`class_subset` needs `streaming=True` (a streamed source)."
        )
    train, *rest = LOADERS[config.source](config)
    if config.class_subset:
        from keras_dlpa.data.labelled_paths import select_classes

        subset = config.class_subset
        train = select_classes(
            train, int(subset) if subset.isdigit() else subset
        )
        rest = [
            None if part is None else select_classes(part, train.class_names)
            for part in rest
        ]
    return (train, *rest)


# A long-tailed profile may drop at most this fraction of the images it
# would keep with the largest class as its head before `allow_data_drop`
# is needed (a class far smaller than the others shrinks every class).
MAX_PROFILE_LOSS = 0.5


def make_splits(
    data: ImageData, config: ExperimentConfig, val: ImageData | None = None
) -> tuple[ImageData, ImageData]:
    """`train_per_class` cap, then `long_tailed_train_val` (the split rule).

    The validation split is stratified (`val_fraction` of each class,
    seeded) unless `val` is given; then the long-tailed profile with
    `imbalance` (see `keras_dlpa.data.long_tailed_train_val`). See
    `splits_with_report` for the checks.
    """
    return splits_with_report(data, config, val)[:2]


# The settings that define a run's splits; a prepared `.npz` records them.
SPLIT_SETTINGS = ("imbalance", "val_fraction", "seed", "train_per_class")


def _split_settings(config: ExperimentConfig) -> dict:
    return {name: config.flat()[name] for name in SPLIT_SETTINGS}


def prepared_splits(config: ExperimentConfig) -> dict | None:
    """The record of a prepared `.npz` (`write_prepared_splits`), checked
    against `config`'s split settings; None for any other source.

    Raises:
        ValueError: the file was prepared with other split settings.
    """
    path = config.data.numpy_path
    if config.data.source != "numpy" or not path:
        return None
    with np.load(path) as arrays:
        if "prepared" not in arrays:
            return None
        record = json.loads(str(arrays["prepared"]))
    wanted = _split_settings(config)
    if record["settings"] != wanted:
        raise ValueError(
            f"{path} holds the splits of {record['settings']}; "
            f"this run asks for {wanted}. Prepare the file with the run's "
            "settings (benchmarks/gpu/prepare_data.py) or change them."
        )
    return record


def write_prepared_splits(config: ExperimentConfig, path) -> dict:
    """Writes the splits of `config`'s run to one `.npz` that a run with
    `source="numpy"` (`--npz`) and the same `SPLIT_SETTINGS` reads as
    they are, without the source.

    The file holds the training images after the long-tailed profile and
    the validation images (and the test split, if any), in the order the
    run uses, so a run from it trains on the same arrays, bit for bit, as
    a run from the source; it is much smaller than the source (the
    CIFAR-100-LT 0.01 splits: 15,847 of 50,000 images). Returns the
    record stored under `prepared` (settings, source, data report).
    """
    train_full, val, test = load_data(config)
    train, val, report = splits_with_report(train_full, config, val)
    data = config.data
    source = data.image_dir or data.numpy_path or data.dataset
    record = {
        "settings": _split_settings(config),
        "source": str(source),
        "train_size": len(train),
        "val_size": len(val),
        "data_report": report,
    }
    arrays = {
        "images": train.images,
        "labels": train.labels,
        "class_names": np.array(train.class_names),
        "val_images": val.images,
        "val_labels": val.labels,
        "prepared": np.array(json.dumps(record)),
    }
    if test is not None:
        arrays.update(test_images=test.images, test_labels=test.labels)
    atomic_write(path, lambda tmp: np.savez_compressed(tmp, **arrays))
    return record


def splits_with_report(
    data: ImageData, config: ExperimentConfig, val: ImageData | None = None
) -> tuple[ImageData, ImageData, dict]:
    """`make_splits` plus what the cap and the profile dropped.

    The profile's head size is the smallest class after the validation
    split, so one small class shrinks every class. The images lost that
    way (against the same profile headed by the largest class, classes
    keeping what they have) are counted per class; if they exceed
    `MAX_PROFILE_LOSS` of that profile's images, a `ValueError` names the
    class and the loss unless `config.data.allow_data_drop`.

    Returns:
        `(train, val, report)`; `report` (for `config.json`): the counts
        per class before the cap, after the validation split and after
        the profile, and the images lost to the smallest class.
    """
    prepared = prepared_splits(config)
    if prepared is not None:
        # Split once by `write_prepared_splits`: used as they are.
        report = dict(prepared["data_report"])
        report["prepared_from"] = prepared["source"]
        return data, val, report
    seed, config = config.run.seed, config.data
    names = list(data.class_names)
    loaded = data.class_counts()
    if config.train_per_class:
        data = _cap_per_class(data, int(config.train_per_class), seed)
    capped = data.class_counts()
    given_val = val is not None
    train, val = long_tailed_train_val(
        data, config.imbalance, config.val_fraction, seed, val=val
    )
    before = capped if given_val else capped - val.class_counts()
    kept = train.class_counts()
    report = {
        "loaded_counts": loaded.tolist(),
        "after_train_per_class": capped.tolist(),
        "before_profile": before.tolist(),
        "after_profile": kept.tolist(),
        "lost_to_smallest_class": 0,
    }
    if config.imbalance is None or before.size == 0:
        return train, val, report
    from keras_dlpa.data.long_tail import long_tailed_counts

    natural = np.minimum(
        before,
        long_tailed_counts(int(before.max()), before.size, config.imbalance),
    )
    lost = np.maximum(natural - kept, 0)
    report["lost_to_smallest_class"] = int(lost.sum())
    report["lost_per_class"] = lost.tolist()
    if not lost.sum():
        return train, val, report
    smallest = int(np.argmin(before))
    text = (
        f"The long-tailed profile (imbalance {config.imbalance:g}) takes "
        f"its head size from the smallest class, {names[smallest]!r} "
        f"({int(before[smallest])} training images), and drops "
        f"{int(lost.sum())} of {int(natural.sum())} images "
        f"({lost.sum() / natural.sum():.0%}) that a profile headed by the "
        f"largest class ({int(before.max())}) would keep"
    )
    worst = np.argsort(-lost)[:5]
    detail = ", ".join(f"{names[k]} -{int(lost[k])}" for k in worst if lost[k])
    if lost.sum() > MAX_PROFILE_LOSS * natural.sum() and not (
        config.allow_data_drop
    ):
        raise ValueError(
            f"{text} (most: {detail}). Add images to that class, remove "
            "it, lower `train_per_class` (--train-per-class), or pass "
            "allow_data_drop=True (--allow-data-drop) to train anyway."
        )
    logger.warning("%s (most: %s).", text, detail)
    return train, val, report
