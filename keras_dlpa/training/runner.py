"""`run_experiment`: data -> model -> fit -> run directory, on every backend.

`run_experiment(ExperimentConfig(...))` is what every recipe, the
`keras-dlpa train` command and `keras-dlpa reproduce` call. It

1. loads the data (TFDS, an image folder or archive, an image list file, or
   a numpy `.npz`), carves a seeded, stratified, balanced validation split
   from the training data, then applies the long-tailed profile to the rest
   (`keras_dlpa.data.long_tailed_train_val`);
2. builds the backbone and the head of `config.model.method` (see
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
import logging
import shutil
import sys
import time
from pathlib import Path

import keras
import numpy as np

from keras_dlpa.atomic_write import atomic_write
from keras_dlpa.data.eval_batches import EvalBatches
from keras_dlpa.data.executor import resolve_executor
from keras_dlpa.data.plan import TrainingInput
from keras_dlpa.data.plan import steps_per_epoch
from keras_dlpa.data.source import DataSource
from keras_dlpa.deadline_callback import DeadlineCallback
from keras_dlpa.divergence_callback import DivergenceCallback
from keras_dlpa.evaluation import EvaluationCallback
from keras_dlpa.evaluation import classification_metrics
from keras_dlpa.evaluation import format_metrics_table
from keras_dlpa.evaluation import predict_logits
from keras_dlpa.methods import get_method
from keras_dlpa.reassign_callback import find_prototype_layer
from keras_dlpa.training.builder import build_model
from keras_dlpa.training.builder import make_optimizer
from keras_dlpa.training.builder import make_schedule
from keras_dlpa.training.builder import precision_policy
from keras_dlpa.training.checkpoint import RunCheckpoint
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


def _evaluate(model, data, train_counts, batch_size, image_size) -> dict:
    logits = predict_logits(model, EvalBatches(data, batch_size, image_size))
    metrics = classification_metrics(data.labels, logits, train_counts)
    metrics.pop("num_examples", None)
    return metrics


def checkpoint_epoch(run_dir) -> int:
    """Epochs completed by the newest intact checkpoint of `run_dir`."""
    found = latest_checkpoint(Path(run_dir) / CHECKPOINT_DIR)
    return 0 if found is None else int(found["epoch"])


def _prepare_run_dir(config: ExperimentConfig) -> tuple[Path, dict | None]:
    """Checks the run directory (the caller holds its lock): a new run
    needs an empty one, `resume` needs a run with the same settings
    (`check_resume`). Writes nothing."""
    run_dir = Path(config.run.out)
    restore = latest_checkpoint(run_dir / CHECKPOINT_DIR)
    if not config.run.resume and (
        restore is not None or (run_dir / "metrics.json").is_file()
    ):
        done = 0 if restore is None else restore["epoch"]
        raise FileExistsError(
            f"Run directory {run_dir} already holds a run ({done} "
            "checkpointed epochs). Pass resume=True (--resume) to continue "
            "it, or choose another `out` (--out)."
        )
    if config.run.resume:
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


@dataclasses.dataclass
class _Run:
    """A prepared run: what `_fit` and `_finalise` work on."""

    config: ExperimentConfig
    method: object  # `keras_dlpa.methods.Method`
    distribution: object
    executor: str
    started: float
    run_dir: Path
    restore: dict | None
    initial_epoch: int
    train: DataSource
    val: DataSource
    test: DataSource | None
    augmentation: object
    image_shape: tuple
    steps: int
    model: keras.Model = None
    schedule: object = None

    @property
    def train_counts(self) -> np.ndarray:
        return self.train.class_counts()


def run_experiment(config: ExperimentConfig, callbacks=None) -> dict:
    """Runs one experiment and returns its `evaluation.json` dict.

    Three steps under the run directory's lock: `_prepare` (run
    directory, data, model, `config.json`), `_fit` and `_finalise`
    (models, evaluation, report).

    Args:
        config: the `ExperimentConfig`.
        callbacks: extra Keras callbacks, appended after checkpointing.

    Returns:
        The evaluation dict (see the run directory schema).
    """
    # Multi-worker collectives must be set up before TensorFlow runs an op.
    distribution = resolve_distribution(config.run.strategy)
    batch_size = config.optimisation.batch_size
    check_global_batch(batch_size, distribution.num_replicas)
    if not distribution.is_chief:
        # Every worker saves (reading sync-on-read state is a collective
        # op), each into its own directory.
        index = distribution.input_shard.index
        worker_out = Path(config.run.out) / f"worker-{index}"
        config = config.replace(out=str(worker_out))
    whole = distribution.num_replicas == 1 and distribution.input_shard.is_whole
    executor = resolve_executor(
        config.run.executor,
        in_memory=not config.data.streaming,
        whole_batches=whole,
    )
    if executor == "device" and config.run.verbose:
        print(
            "Input: the device executor (images on the accelerator, only "
            "the epoch plans travel).",
            flush=True,
        )
    started = time.perf_counter()
    seed_everything(config.run.seed)
    if config.run.deterministic and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    method = get_method(config.model.method)
    created = not Path(config.run.out).exists()
    lock = RunDirLock(config.run.out).acquire()
    try:
        run = _prepare(config, method, distribution, executor, started)
        _fit(run, callbacks)
        return _finalise(run)
    except BaseException:
        if created and not (Path(config.run.out) / "config.json").is_file():
            # Failed before the run started (bad data, bad settings):
            # leave no empty run directory behind.
            shutil.rmtree(config.run.out, ignore_errors=True)
        raise
    finally:
        lock.release()


def _prepare(config, method, distribution, executor, started) -> _Run:
    """Checks the run directory, loads the data and its splits, builds and
    compiles the model and writes `config.json`."""
    run_dir, restore = _prepare_run_dir(config)
    initial_epoch = 0 if restore is None else int(restore["epoch"])
    train_full, val, test = load_data(config)
    train, val, data_report = splits_with_report(train_full, config, val)
    mean, std, image_shape = train.input_statistics(config.data.image_size)
    run = _Run(
        config=config,
        method=method,
        distribution=distribution,
        executor=executor,
        started=started,
        run_dir=run_dir,
        restore=restore,
        initial_epoch=min(initial_epoch, config.optimisation.epochs),
        train=train,
        val=val,
        test=test,
        augmentation=train.augmentation(config.flat()),
        image_shape=image_shape,
        steps=steps_per_epoch(len(train), config.optimisation.batch_size),
    )
    num_classes = train.num_classes
    soft = run.augmentation.soft_labels
    with precision_policy(config.run.precision), distribution.scope():
        run.model = build_model(
            config, method, num_classes, mean, std, image_shape
        )
        run.schedule = make_schedule(config, run.steps)
        optimizer = make_optimizer(config, run.model, run.schedule, run.steps)
        run.model.compile(
            optimizer=optimizer,
            loss=method.loss(
                config.model.class_scale, soft, config.model.loss_scale
            ),
            metrics=method.metrics(num_classes, soft),
            jit_compile=resolve_jit_compile(config.run.jit_compile),
        )
    if config.run.init_weights and restore is None:
        run.model.load_weights(config.run.init_weights, skip_mismatch=False)
    # The sections as the run resolved them, then what it found.
    resolved = dataclasses.asdict(config)
    resolved["model"]["dim"] = int(run.model.layers[-1].input.shape[-1])
    resolved["run"]["jit_compile"] = bool(run.model.jit_compile)
    resolved["run"]["executor"] = executor
    resolved.update(
        {
            "num_classes": num_classes,
            "class_names": list(train.class_names),
            "train_size": len(train),
            "val_size": len(val),
            "test_size": None if test is None else len(test),
            "train_counts": run.train_counts.tolist(),
            "data_report": data_report,
            # `--skip-bad-images`: the files left out (parts share them).
            "skipped_files": list(
                dict.fromkeys(
                    str(path)
                    for part in (train_full, val, test)
                    if part is not None
                    for path in part.skipped_files
                )
            ),
            "steps_per_epoch": run.steps,
            "channel_mean": [float(v) for v in mean],
            "channel_std": [float(v) for v in std],
            "num_replicas": distribution.num_replicas,
            "input_shard": [
                distribution.input_shard.index,
                distribution.input_shard.count,
            ],
            **_versions(),
        }
    )
    # The settings as given (`None` = a default resolved above): what
    # `--resume` compares (`check_resume`).
    resolved["settings"] = dataclasses.asdict(config)
    write_json(run_dir / "config.json", resolved)
    return run


def _callbacks(run: _Run, extra) -> list:
    """The callbacks of `fit`, in their required order (module docstring)."""
    config, opt = run.config.run, run.config.optimisation
    deadline = []
    if config.deadline is not None:
        deadline = [DeadlineCallback(config.deadline, verbose=config.verbose)]
    checkpoint = RunCheckpoint(
        run.run_dir / CHECKPOINT_DIR,
        best_path=run.run_dir / "best.keras",
        monitor="val_top1",
        restore=run.restore,
        every=config.checkpoint_every,
    )
    val_batches = EvalBatches(
        run.val, opt.eval_batch_size, run.config.data.image_size
    )
    return (
        [_train_clock(), DivergenceCallback()]
        + run.method.callbacks(
            updates_per_epoch=opt.reassign_per_epoch,
            momentum=opt.reassign_momentum,
        )
        + [
            EvaluationCallback(
                val_batches,
                run.val.labels,
                train_counts=run.train_counts,
                prefix="val_",
            ),
            RunLogger(run.run_dir, run.initial_epoch, schedule=run.schedule),
        ]
        + deadline
        + [checkpoint]
        + list(extra or [])
    )


def _fit(run: _Run, callbacks=None) -> None:
    """Trains epochs `initial_epoch .. epochs - 1` (none when the deadline
    has passed or the run is done; then the last checkpoint's weights)."""
    config = run.config
    # Out of time before the first step: train nothing (a partial epoch
    # cannot be checkpointed); `completed` then says false.
    deadline, epochs = config.run.deadline, config.optimisation.epochs
    batch_size, augment = config.optimisation.batch_size, run.augmentation
    out_of_time = deadline is not None and time.time() >= deadline
    if run.initial_epoch >= epochs or out_of_time:
        if out_of_time and run.initial_epoch < epochs:
            logger.warning(
                "The deadline passed before training started; no epoch ran."
            )
        if run.restore is not None:
            # Training finished (or stopped) earlier: its last checkpoint.
            restore_weights(run.model, run.restore["weights"])
        return

    def make_input(shard):
        """This process's rows of the planned training batches."""
        training_input = TrainingInput(
            batch_size, config.run.seed, run.initial_epoch, epochs, augment
        )
        dataset, _ = run.train.train_dataset(
            training_input,
            executor=run.executor,
            shard=shard,
            workers=config.data.data_workers,
        )
        return dataset

    shard = run.distribution.input_shard
    train_ds = run.distribution.training_input(
        make_input,
        batch_size,
        element_spec=_element_spec(
            shard.local_batch_size(batch_size),
            run.image_shape,
            run.train.num_classes,
            augment.soft_labels,
        ),
    )
    run.model.fit(
        train_ds,
        epochs=epochs,
        initial_epoch=run.initial_epoch,
        steps_per_epoch=run.steps,
        callbacks=_callbacks(run, callbacks),
        shuffle=False,
        verbose=config.run.verbose,
    )


def _finalise(run: _Run) -> dict:
    """Saves the model (and the prototype state), evaluates the last and
    the best model, writes `evaluation.json` and draws the plots."""
    config, run_dir, model = run.config, run.run_dir, run.model
    atomic_write(run_dir / "model.keras", model.save)
    if run.method.uses_prototypes:
        np.savez(run_dir / "final_state.npz", **_state_arrays(model))

    rows = read_metrics(run_dir)
    last_epoch = rows[-1]["epoch"] if rows else run.initial_epoch - 1
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
    train_counts = run.train_counts

    def both(data) -> dict:
        """The last and the best model on `data`."""
        bs, size = config.optimisation.eval_batch_size, config.data.image_size
        return {
            "last": {
                **_evaluate(model, data, train_counts, bs, size),
                "epoch": last_epoch,
            },
            "best": {
                **_evaluate(best_model, data, train_counts, bs, size),
                "epoch": best_epoch,
            },
        }

    evaluation = {
        "selection": "val_top1",
        "completed": bool(last_epoch + 1 >= config.optimisation.epochs),
        "epochs_done": last_epoch + 1,
        "train_counts": train_counts.tolist(),
        "class_names": list(run.train.class_names),
        **both(run.val),
    }
    if run.test is not None:
        evaluation["test"] = both(run.test)
    train_times = [r["train_time_s"] for r in rows if r.get("train_time_s")]
    if len(train_times) > 1:
        # Median over epochs after the first (which compiles).
        median = float(np.median(train_times[1:]))
        evaluation["train_images_per_s"] = round(
            run.steps * config.optimisation.batch_size / median, 1
        )
    evaluation["wall_time_s"] = round(time.perf_counter() - run.started, 1)
    evaluation.update(_versions())
    write_json(run_dir / "evaluation.json", evaluation)
    logger.info(
        "Evaluation of %s:\n%s", run_dir, format_metrics_table(evaluation)
    )
    if config.run.report:
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
    "checkpoint_epoch",
    "run_experiment",
    "seed_everything",
]
