"""`run_experiment`: data -> model -> fit -> run directory, on every backend.

`run_experiment(ExperimentConfig(...))` is what every recipe, the
`keras-dlpa train` command and `keras-dlpa reproduce` call. It

1. loads the data (TFDS, an image folder or archive, an image list file, or
   a numpy `.npz`), carves a seeded, stratified, balanced validation split
   from the training data, then applies the long-tailed profile to the rest
   (`keras_dlpa.data.long_tailed_train_val`);
2. builds the backbone and the head of `config.method` (see
   `keras_dlpa.methods`) under the distribution (`--strategy`) and the
   precision policy, with the channel statistics of the training images in
   the model's first layer, and compiles SGD (momentum 0.9) with a warm-up +
   decay schedule;
3. trains on the epoch plans (`keras_dlpa.data.plan`), run by tf.data on
   TensorFlow and by grain elsewhere (with `strategy="multiworker"` each
   worker builds only its rows of every global batch,
   `Distribution.training_input`; workers other than the chief write
   their run directory to `out/worker-k`), with callbacks in this order:
   a clock (`train_time_s`), `ReassignCallback` (dl2pa only),
   `EvaluationCallback` on the validation split, `RunLogger`
   (`metrics.json`, `metrics.csv`), `DeadlineCallback` (with `deadline`)
   and `RunCheckpoint` (crash-safe checkpoints and `best.keras` by
   `val_top1`);
4. writes `model.keras`, `final_state.npz`, `evaluation.json` (last and
   best epoch on the validation split, and on the test split when there is
   one; model selection never looks at the test split; `completed`), and
   draws the plots (`keras_dlpa.report.make_report`).

Exact resume, also after a kill at any moment: the newest intact
checkpoint holds the weights, the optimizer state (with its iteration
counter, which drives the learning-rate schedule), the assignment and the
class statistics (model variables); epoch `e`'s batches are a pure function
of `(seed, e)`; so a run resumed with `resume=True` sees the same batches
as an uninterrupted run, and with `deterministic=True` ends with the same
weights.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import shutil
import sys
import time
from pathlib import Path

import keras
import numpy as np

from keras_dlpa.data.eval_batches import EvalBatches
from keras_dlpa.data.executor import resolve_executor
from keras_dlpa.data.executor import train_dataset
from keras_dlpa.data.image_data import ImageData
from keras_dlpa.data.plan import Augmentation
from keras_dlpa.data.plan import steps_per_epoch
from keras_dlpa.data.stats import channel_stats
from keras_dlpa.deadline_callback import DeadlineCallback
from keras_dlpa.divergence_callback import DivergenceCallback
from keras_dlpa.evaluation import EvaluationCallback
from keras_dlpa.evaluation import classification_metrics
from keras_dlpa.evaluation import format_metrics_table
from keras_dlpa.evaluation import predict_logits
from keras_dlpa.methods import get_method
from keras_dlpa.models.per_channel_normalization import IMAGENET_MEAN
from keras_dlpa.models.per_channel_normalization import IMAGENET_STD
from keras_dlpa.reassign_callback import find_prototype_layer
from keras_dlpa.training.builder import build_model
from keras_dlpa.training.builder import make_optimizer
from keras_dlpa.training.builder import make_schedule
from keras_dlpa.training.builder import precision_policy
from keras_dlpa.training.checkpoint import RunCheckpoint
from keras_dlpa.training.checkpoint import atomic_write_text
from keras_dlpa.training.checkpoint import latest_checkpoint
from keras_dlpa.training.checkpoint import restore_weights
from keras_dlpa.training.config import ExperimentConfig
from keras_dlpa.training.distribution import check_global_batch
from keras_dlpa.training.distribution import resolve_distribution
from keras_dlpa.training.run_dir import RunDirLock
from keras_dlpa.training.run_dir import RunSettingsError
from keras_dlpa.training.run_dir import check_resume
from keras_dlpa.training.run_logger import RunLogger
from keras_dlpa.training.run_logger import read_metrics
from keras_dlpa.training.run_logger import write_json
from keras_dlpa.training.sources import load_data
from keras_dlpa.training.sources import splits_with_report

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"


def seed_everything(seed: int) -> None:
    """`keras.utils.set_random_seed`, without importing TensorFlow for it.

    Keras also seeds TensorFlow when it is importable; on another backend
    this hides it for the call, so a JAX run never loads TensorFlow.
    """
    hide = keras.backend.backend() != "tensorflow" and (
        "tensorflow" not in sys.modules
    )
    if hide:
        sys.modules["tensorflow"] = None
    try:
        keras.utils.set_random_seed(int(seed))
    finally:
        if hide:
            del sys.modules["tensorflow"]


def _state_arrays(model) -> dict:
    layer = find_prototype_layer(model)
    to_np = keras.ops.convert_to_numpy
    return {
        "prototypes": to_np(layer.prototypes).astype("float32"),
        "assignment": to_np(layer.assignment).astype("int64"),
        "representatives": to_np(layer.representatives).astype("float32"),
        "observed": to_np(layer.observed).astype("float32"),
    }


def _eval_batches(data, batch_size: int, image_size: int):
    """In-order evaluation batches of in-memory or streamed data."""
    if isinstance(data, ImageData):
        return EvalBatches(data, batch_size)
    from keras_dlpa.data.streaming import StreamEvalBatches

    return StreamEvalBatches(data, batch_size, image_size)


def _evaluate(model, data, train_counts, batch_size, image_size) -> dict:
    batches = _eval_batches(data, batch_size, image_size)
    logits = predict_logits(model, batches)
    metrics = classification_metrics(data.labels, logits, train_counts)
    metrics.pop("num_examples", None)
    return metrics


def _stream_augmentation(config: ExperimentConfig):
    from keras_dlpa.data.stream_plan import StreamAugmentation

    return StreamAugmentation(
        image_size=config.image_size,
        flip=config.flip,
        auto_augment=config.auto_augment,
        random_erasing=config.random_erasing,
        mixup_alpha=config.mixup_alpha,
        cutmix_alpha=config.cutmix_alpha,
    )


def checkpoint_epoch(run_dir) -> int:
    """Epochs completed by the newest intact checkpoint of `run_dir`."""
    found = latest_checkpoint(Path(run_dir) / CHECKPOINT_DIR)
    return 0 if found is None else int(found["epoch"])


def _prepare_run_dir(config: ExperimentConfig) -> tuple[Path, dict | None]:
    """Checks the run directory (the caller holds its lock): a new run
    needs an empty one, `resume` needs a run with the same settings
    (`check_resume`). Writes nothing."""
    run_dir = Path(config.out)
    restore = latest_checkpoint(run_dir / CHECKPOINT_DIR)
    if not config.resume and (
        restore is not None or (run_dir / "metrics.json").is_file()
    ):
        done = 0 if restore is None else restore["epoch"]
        raise FileExistsError(
            f"Run directory {run_dir} already holds a run ({done} "
            "checkpointed epochs). Pass resume=True (--resume) to continue "
            "it, or choose another `out` (--out)."
        )
    if config.resume:
        if restore is None and not (run_dir / "config.json").is_file():
            raise RunSettingsError(
                f"Nothing to resume in {run_dir}: no checkpoint and no "
                "config.json. Check `out` (--out), or drop resume "
                "(--resume) to start a new run there."
            )
        check_resume(config, run_dir)
        if restore is None:
            logger.warning(
                "No checkpoint in %s; starting from epoch 0.", run_dir
            )
    return run_dir, restore


def _versions() -> dict:
    versions = {
        "backend": keras.backend.backend(),
        "keras_version": keras.__version__,
    }
    for name in ("tensorflow", "jax", "grain"):
        module = sys.modules.get(name)
        version = getattr(module, "__version__", None)
        if version is not None:
            versions[f"{name}_version"] = version
    return versions


def _train_clock() -> keras.callbacks.Callback:
    """Puts the epoch's training time (without callbacks) into the logs."""
    start = {}

    def begin(epoch, logs):
        start["t"] = time.perf_counter()

    def end(epoch, logs):
        if logs is not None:
            logs["train_time_s"] = time.perf_counter() - start["t"]

    return keras.callbacks.LambdaCallback(
        on_epoch_begin=begin, on_epoch_end=end
    )


def resolve_jit_compile(jit_compile: bool | str) -> bool:
    """`"auto"`: XLA (`jax.jit`) on JAX, where Keras otherwise runs the
    train step eagerly; a `tf.function` without XLA on TensorFlow."""
    if jit_compile == "auto":
        return keras.backend.backend() == "jax"
    return bool(jit_compile)


def _train_input(train, config, initial_epoch, augmentation, executor, shard):
    """The planned training batches (this process's rows of each)."""
    if isinstance(train, ImageData):
        make, extra = train_dataset, {}
    else:
        from keras_dlpa.data.streaming import stream_train_dataset

        make, extra = stream_train_dataset, {"workers": config.data_workers}
    dataset, _ = make(
        train,
        config.batch_size,
        config.seed,
        initial_epoch,
        config.epochs,
        augmentation,
        executor=executor,
        shard=shard,
        **extra,
    )
    return dataset


def _element_spec(batch, image_shape, num_classes, soft):
    """`(images, labels)` TensorSpecs of a local batch (TensorFlow only)."""
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    labels = (
        tf.TensorSpec((batch, num_classes), tf.float32)
        if soft
        else tf.TensorSpec((batch,), tf.int32)
    )
    return tf.TensorSpec((batch, *image_shape), tf.float32), labels


def run_experiment(config: ExperimentConfig, callbacks=None) -> dict:
    """Runs one experiment and returns its `evaluation.json` dict.

    Args:
        config: the `ExperimentConfig`.
        callbacks: extra Keras callbacks, appended after checkpointing.

    Returns:
        The evaluation dict (see the run directory schema).
    """
    # Multi-worker collectives must be set up before TensorFlow runs an op.
    distribution = resolve_distribution(config.strategy)
    check_global_batch(config.batch_size, distribution.num_replicas)
    if not distribution.is_chief:
        # Every worker saves (reading sync-on-read state is a collective
        # op), each into its own directory.
        index = distribution.input_shard.index
        worker_out = Path(config.out) / f"worker-{index}"
        config = dataclasses.replace(config, out=str(worker_out))
    whole = distribution.num_replicas == 1 and distribution.input_shard.is_whole
    if config.streaming:
        resolve_executor(config.executor, in_memory=False)  # refuses device
        # JPEG decoding scales with processes, not threads: grain worker
        # processes unless tf.data is asked for explicitly.
        executor = "tf" if config.executor == "tf" else "grain"
    else:
        executor = resolve_executor(config.executor, whole_batches=whole)
    if executor == "device" and config.verbose:
        print(
            "Input: the device executor (images on the accelerator, only "
            "the epoch plans travel).",
            flush=True,
        )
    started = time.perf_counter()
    seed_everything(config.seed)
    if config.deterministic and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    created = not Path(config.out).exists()
    lock = RunDirLock(config.out).acquire()
    try:
        run_dir, restore = _prepare_run_dir(config)
        return _run(
            config, callbacks, distribution, executor, started, run_dir,
            restore,
        )  # fmt: skip
    except BaseException:
        if created and not (Path(config.out) / "config.json").is_file():
            # Failed before the run started (bad data, bad settings):
            # leave no empty run directory behind.
            shutil.rmtree(config.out, ignore_errors=True)
        raise
    finally:
        lock.release()


def _run(config, callbacks, distribution, executor, started, run_dir, restore):
    """`run_experiment` once the run directory is locked and checked."""
    initial_epoch = 0 if restore is None else int(restore["epoch"])
    initial_epoch = min(initial_epoch, config.epochs)

    train_full, val, test = load_data(config)
    train, val, data_report = splits_with_report(train_full, config, val)
    train_counts = train.class_counts()
    streaming = not isinstance(train, ImageData)
    if streaming:
        # Streamed sets are not read twice for statistics: the ImageNet
        # ones (the pretrained trunks normalise inside anyway).
        mean, std = np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)
        image_shape = (config.image_size, config.image_size, 3)
        augmentation = _stream_augmentation(config)
    else:
        mean, std = channel_stats(train.images)
        image_shape = train.image_shape
        augmentation = Augmentation(
            config.crop_padding, config.flip, config.mixup_alpha
        )
    steps = steps_per_epoch(len(train), config.batch_size)
    num_classes = train.num_classes
    method = get_method(config.method)
    soft = augmentation.soft_labels

    with precision_policy(config.precision), distribution.scope():
        model = build_model(config, num_classes, mean, std, image_shape)
        schedule = make_schedule(config, steps)
        optimizer = make_optimizer(config, model, schedule, steps)
        model.compile(
            optimizer=optimizer,
            loss=method.loss(config.class_scale, soft, config.loss_scale),
            metrics=method.metrics(num_classes, soft),
            jit_compile=resolve_jit_compile(config.jit_compile),
        )
    if config.init_weights and restore is None:
        model.load_weights(config.init_weights, skip_mismatch=False)
    dim = int(model.layers[-1].input.shape[-1])
    resolved = dataclasses.asdict(config)
    resolved.update(
        {
            "num_classes": num_classes,
            "dim": dim,
            "class_names": list(train.class_names),
            "train_size": len(train),
            "val_size": len(val),
            "test_size": None if test is None else len(test),
            "train_counts": train_counts.tolist(),
            "data_report": data_report,
            # `--skip-bad-images`: the files left out (parts share them).
            "skipped_files": list(
                dict.fromkeys(
                    str(path)
                    for part in (train_full, val, test)
                    if part is not None
                    for path in getattr(part, "skipped_files", ())
                )
            ),
            "steps_per_epoch": steps,
            "channel_mean": [float(v) for v in mean],
            "channel_std": [float(v) for v in std],
            "num_replicas": distribution.num_replicas,
            "input_shard": [
                distribution.input_shard.index,
                distribution.input_shard.count,
            ],
            "executor": executor,
            "jit_compile": bool(model.jit_compile),  # as Keras resolved it
            "streaming": streaming,
            **_versions(),
        }
    )
    resolved["milestones"] = list(config.milestones)
    # The settings as given (`None` = a default resolved above): what
    # `--resume` compares (`check_resume`).
    resolved["settings"] = dataclasses.asdict(config)
    write_json(run_dir / "config.json", resolved)

    deadline = None
    if config.deadline is not None:
        deadline = DeadlineCallback(config.deadline, verbose=config.verbose)
    checkpoint = RunCheckpoint(
        run_dir / CHECKPOINT_DIR,
        best_path=run_dir / "best.keras",
        monitor="val_top1",
        restore=restore,
        every=config.checkpoint_every,
    )
    all_callbacks = (
        [_train_clock(), DivergenceCallback()]
        + method.callbacks(
            updates_per_epoch=config.reassign_per_epoch,
            momentum=config.reassign_momentum,
        )
        + [
            EvaluationCallback(
                _eval_batches(val, config.eval_batch_size, config.image_size),
                val.labels,
                train_counts=train_counts,
                prefix="val_",
            ),
            RunLogger(run_dir, initial_epoch, schedule=schedule),
        ]
        + ([deadline] if deadline is not None else [])
        + [checkpoint]
        + list(callbacks or [])
    )
    # Out of time before the first step: train nothing (a partial epoch
    # cannot be checkpointed); `completed` then says false.
    out_of_time = config.deadline is not None and time.time() >= config.deadline
    if initial_epoch < config.epochs and not out_of_time:
        train_ds = distribution.training_input(
            functools.partial(
                _train_input,
                train,
                config,
                initial_epoch,
                augmentation,
                executor,
            ),
            config.batch_size,
            element_spec=_element_spec(
                distribution.input_shard.local_batch_size(config.batch_size),
                image_shape,
                num_classes,
                soft,
            ),
        )
        model.fit(
            train_ds,
            epochs=config.epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=steps,
            callbacks=all_callbacks,
            shuffle=False,
            verbose=config.verbose,
        )
    else:
        if out_of_time and initial_epoch < config.epochs:
            logger.warning(
                "The deadline passed before training started; no epoch ran."
            )
        if restore is not None:
            # Training finished (or stopped) earlier: its last checkpoint.
            restore_weights(model, restore["weights"])

    tmp = run_dir / ".tmp-model.keras"
    model.save(tmp)
    tmp.replace(run_dir / "model.keras")
    if method.uses_prototypes:
        np.savez(run_dir / "final_state.npz", **_state_arrays(model))

    rows = read_metrics(run_dir)
    last_epoch = rows[-1]["epoch"] if rows else initial_epoch - 1
    best_row = max(
        (r for r in rows if r.get("val_top1") is not None),
        key=lambda r: r["val_top1"],
        default=None,
    )
    best_path = run_dir / "best.keras"
    best_model = (
        keras.saving.load_model(best_path) if best_path.is_file() else model
    )
    best_epoch = best_row["epoch"] if best_row else last_epoch
    bs, size = config.eval_batch_size, config.image_size
    train_times = [r["train_time_s"] for r in rows if r.get("train_time_s")]
    completed = last_epoch + 1 >= config.epochs
    evaluation = {
        "selection": "val_top1",
        "completed": bool(completed),
        "epochs_done": last_epoch + 1,
        "train_counts": train_counts.tolist(),
        "class_names": list(train.class_names),
        "last": {
            **_evaluate(model, val, train_counts, bs, size),
            "epoch": last_epoch,
        },
        "best": {
            **_evaluate(best_model, val, train_counts, bs, size),
            "epoch": best_epoch,
        },
    }
    if test is not None:
        evaluation["test"] = {
            "last": {
                **_evaluate(model, test, train_counts, bs, size),
                "epoch": last_epoch,
            },
            "best": {
                **_evaluate(best_model, test, train_counts, bs, size),
                "epoch": best_epoch,
            },
        }
    if len(train_times) > 1:
        # Median over epochs after the first (which compiles).
        median = float(np.median(train_times[1:]))
        evaluation["train_images_per_s"] = round(
            steps * config.batch_size / median, 1
        )
    evaluation["wall_time_s"] = round(time.perf_counter() - started, 1)
    evaluation.update(_versions())
    write_json(run_dir / "evaluation.json", evaluation)
    logger.info(
        "Evaluation of %s:\n%s", run_dir, format_metrics_table(evaluation)
    )
    if config.report:
        _plot(run_dir)
    return evaluation


def _plot(run_dir: Path) -> None:
    """The run's plots, or one warning where matplotlib is missing (e.g.
    the GPU box): the run itself is complete either way."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        logger.warning(
            "No plots: matplotlib is not installed. Draw them later with "
            "`keras-dlpa report %s` where it is.",
            run_dir,
        )
        return
    from keras_dlpa.report import make_report

    make_report(run_dir)


__all__ = [
    "atomic_write_text",
    "checkpoint_epoch",
    "run_experiment",
    "seed_everything",
]
