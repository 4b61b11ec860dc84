"""Data of a run: the source (TFDS, image folder, list file, numpy), then
the validation split and the long-tailed profile (numpy, no TensorFlow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from keras_dlpa.data.image_data import ImageData
from keras_dlpa.data.image_data import from_arrays
from keras_dlpa.data.image_folder import load_image_folder
from keras_dlpa.data.long_tail import long_tailed_train_val
from keras_dlpa.training.config import ExperimentConfig


def _read_image(path: Path, size: int) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("RGB")
        w, h = image.size
        scale = size / min(w, h)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        image = image.resize((nw, nh), Image.BILINEAR)
        left, top = (nw - size) // 2, (nh - size) // 2
        image = image.crop((left, top, left + size, top + size))
        return np.asarray(image, dtype=np.uint8)


def load_image_list(
    list_file, root, size: int = 224, class_names=None
) -> ImageData:
    """Loads the images of an image list file (`path label` per line).

    The ImageNet-LT format (`ImageNet_LT_train.txt`): paths are relative to
    `root`, labels are integers. Every image is resized (shorter side to
    `size`, bilinear) and centre-cropped to `size x size`, and held in
    memory as uint8 (the full ImageNet-LT train list at 224 px needs about
    17 GB).

    Args:
        list_file: the list file.
        root: directory the paths are relative to.
        size: output side length.
        class_names: names in label order; default `"0"`, `"1"`, ...

    Returns:
        An `ImageData`.
    """
    root = Path(root)
    paths, labels = [], []
    with open(list_file, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            parts = line.rsplit(maxsplit=1)
            if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
                raise ValueError(
                    f"{list_file}, line {number}: expected 'path label' with "
                    f"an integer label. Received: {line!r}"
                )
            paths.append(root / parts[0])
            labels.append(int(parts[1]))
    if not paths:
        raise ValueError(f"Image list {list_file} has no entries.")
    images = np.stack([_read_image(p, size) for p in paths])
    labels = np.asarray(labels, np.int64)
    if class_names is None:
        class_names = [str(k) for k in range(int(labels.max()) + 1)]
    return ImageData(images, labels, list(class_names))


def _folder_list(directory: Path) -> list[tuple[str, int]]:
    classes = sorted(p.name for p in directory.iterdir() if p.is_dir())
    entries = []
    for label, name in enumerate(classes):
        for file in sorted((directory / name).iterdir()):
            if file.suffix.lower() in (".jpg", ".jpeg", ".png"):
                entries.append((f"{name}/{file.name}", label))
    return entries, classes


def _load_list_or_folder(path, root, size) -> ImageData:
    path = Path(path)
    if path.is_dir():
        entries, classes = _folder_list(path)
        images = np.stack([_read_image(path / p, size) for p, _ in entries])
        labels = np.array([label for _, label in entries], np.int64)
        return ImageData(images, labels, classes)
    return load_image_list(
        path, root if root is not None else path.parent, size
    )


def _cap_per_class(data: ImageData, limit: int, seed: int) -> ImageData:
    rng = np.random.RandomState(seed)
    kept = []
    for k in range(data.num_classes):
        idx = np.flatnonzero(data.labels == k)
        kept.append(np.sort(rng.permutation(idx)[:limit]))
    return data.subset(np.sort(np.concatenate(kept)))


def load_data(
    config: ExperimentConfig,
) -> tuple[ImageData, ImageData | None, ImageData | None]:
    """Returns `(train_full, val_or_None, test_or_None)` of the source."""
    source = config.source
    val = test = None
    if source == "tfds":
        kwargs = dict(
            data_dir=config.data_dir,
            manual_dir=config.manual_dir,
            download=config.download,
        )
        from keras_dlpa.data.tfds_source import load_tfds

        train = load_tfds(config.dataset, "train", **kwargs)
        if config.test_split:
            test = load_tfds(config.dataset, config.test_split, **kwargs)
    elif source == "image_dir":
        if not config.image_dir:
            raise ValueError("source='image_dir' needs `image_dir`.")
        train = load_image_folder(config.image_dir)
    elif source == "image_list":
        if not config.train_list:
            raise ValueError(
                "source='image_list' needs `train_list` (an image list file "
                "or a class-folder directory)."
            )
        size = config.image_size
        train = _load_list_or_folder(config.train_list, config.image_root, size)
        if config.val_list:
            val = _load_list_or_folder(config.val_list, config.image_root, size)
        if config.test_list:
            test = _load_list_or_folder(
                config.test_list, config.image_root, size
            )
    else:
        if not config.numpy_path:
            raise ValueError("source='numpy' needs `numpy_path` (.npz).")
        with np.load(config.numpy_path) as arrays:
            names = (
                arrays["class_names"].tolist()
                if ("class_names" in arrays)
                else None
            )
            train = _from_numpy(arrays["images"], arrays["labels"], names)
            if "test_images" in arrays:
                test = _from_numpy(
                    arrays["test_images"],
                    arrays["test_labels"],
                    train.class_names,
                )
    return train, val, test


def _from_numpy(images, labels, names):
    return from_arrays(images, labels, class_names=names)


def make_splits(
    data: ImageData, config: ExperimentConfig, val: ImageData | None = None
) -> tuple[ImageData, ImageData]:
    """`train_per_class` cap, then `long_tailed_train_val` (the split rule).

    The validation split is stratified (`val_fraction` of each class,
    seeded) unless `val` is given; then the long-tailed profile with
    `imbalance` (see `keras_dlpa.data.long_tailed_train_val`).
    """
    if config.train_per_class:
        data = _cap_per_class(data, int(config.train_per_class), config.seed)
    return long_tailed_train_val(
        data, config.imbalance, config.val_fraction, config.seed, val=val
    )
