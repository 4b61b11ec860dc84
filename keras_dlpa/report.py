"""Visual report of a run directory (PNG plots written with matplotlib Agg).

Reads the run directory schema (`config.json`, `metrics.json` required;
`evaluation.json` and `final_state.npz` optional) and writes into
`RUN_DIR/plots/`:

- `curves.png`: training loss and accuracy, validation top-1/top-5 and
  many/medium/few-shot accuracy per epoch.
- `per_class_accuracy.png`: per-class accuracy (last and best epoch)
  against the training count of each class (log scale), with the
  many/medium/few thresholds.
- `assignment_changes.png`: fraction of classes whose prototype changed in
  each epoch (paper Fig. 4b), and the matching cost.
- `prototype_similarity.png`: cosine similarity of the prototypes in label
  order, `cos(W[A[i]], W[A[j]])`.

Plots are drawn on `matplotlib.figure.Figure` objects with the Agg canvas;
pyplot is never imported, so no window opens and the global backend is left
alone.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np

from keras_dlpa.evaluation import shot_groups
from keras_dlpa.training.config import flat_config

logger = logging.getLogger(__name__)

MANY_THRESHOLD = 100
FEW_THRESHOLD = 20
MAX_NAMED_CLASSES = 30


def make_report(run_dir, out_dir=None) -> list[Path]:
    """Writes the PNG plots of a run directory.

    Args:
        run_dir: the run directory (see the run directory schema).
        out_dir: where to write the PNGs; default `run_dir/plots`.

    Returns:
        The paths of the PNG files written. Plots whose optional inputs are
        missing are skipped with an INFO log message.

    Raises:
        FileNotFoundError: `run_dir`, `config.json` or `metrics.json` is
            missing.
        ValueError: a file exists but cannot be read or has the wrong form.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"Run directory not found: {run_dir}")
    config = _read_json(run_dir / "config.json", dict, required=True)
    config = flat_config(config)  # nested, or flat from earlier versions
    metrics = _read_json(run_dir / "metrics.json", list, required=True)
    if not all(isinstance(row, dict) for row in metrics):
        raise ValueError(
            f"{run_dir / 'metrics.json'} must hold a list of per-epoch "
            "dicts; found other entries."
        )
    evaluation = _read_json(run_dir / "evaluation.json", dict, required=False)
    state = _read_state(run_dir / "final_state.npz")
    out_dir = Path(out_dir) if out_dir is not None else run_dir / "plots"
    out_dir.mkdir(parents=True, exist_ok=True)
    title = _run_title(config, run_dir)

    written = []
    if metrics:
        written.append(_plot_curves(metrics, title, out_dir / "curves.png"))
    else:
        logger.info("Skipping curves.png: metrics.json has no epochs.")

    if evaluation is None:
        logger.info("Skipping per_class_accuracy.png: no evaluation.json.")
    else:
        path = _plot_per_class(evaluation, title, out_dir)
        if path is not None:
            written.append(path)

    if any(_finite(row.get("assignment_changed")) for row in metrics):
        written.append(
            _plot_assignment_changes(
                metrics, title, out_dir / "assignment_changes.png"
            )
        )
    else:
        logger.info(
            "Skipping assignment_changes.png: metrics.json has no "
            "'assignment_changed' (static or softmax run)."
        )

    if state is None:
        logger.info("Skipping prototype_similarity.png: no final_state.npz.")
    else:
        names = config.get("class_names") or (evaluation or {}).get(
            "class_names"
        )
        written.append(
            _plot_similarity(
                *state, names, title, out_dir / "prototype_similarity.png"
            )
        )
    return written


def _read_json(path: Path, kind: type, required: bool):
    if not path.is_file():
        if required:
            raise FileNotFoundError(
                f"Required run file not found: {path}. A run directory "
                "needs config.json and metrics.json."
            )
        return None
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"Cannot read {path}: {e}") from e
    if not isinstance(value, kind):
        raise ValueError(
            f"{path} must hold a JSON {kind.__name__.replace('dict', 'object')}"
            f"; found {type(value).__name__}."
        )
    return value


def _read_state(path: Path):
    if not path.is_file():
        return None
    try:
        with np.load(path) as data:
            prototypes = np.asarray(data["prototypes"], dtype="float64")
            assignment = np.asarray(data["assignment"]).astype("int64")
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(
            f"Cannot read {path} (expected arrays 'prototypes' and "
            f"'assignment'): {e}"
        ) from e
    c = prototypes.shape[0] if prototypes.ndim == 2 else -1
    if c < 1 or assignment.shape != (c,):
        raise ValueError(
            f"{path}: expected 'prototypes' (c, d) and 'assignment' (c,). "
            f"Received shapes {prototypes.shape} and {assignment.shape}."
        )
    if np.any(np.sort(assignment) != np.arange(c)):
        raise ValueError(
            f"{path}: 'assignment' must be a permutation of 0..{c - 1}."
        )
    return prototypes, assignment


def _run_title(config: dict, run_dir: Path) -> str:
    parts = [str(config[k]) for k in ("method", "dataset") if config.get(k)]
    if "seed" in config:
        parts.append(f"seed {config['seed']}")
    return " | ".join(parts) if parts else run_dir.name


def _finite(value) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _series(metrics: list, key: str):
    """Epochs and values of `key`, NaN where missing; None if never set."""
    epochs = np.array(
        [row.get("epoch", i) for i, row in enumerate(metrics)], dtype=float
    )
    values = np.array(
        [
            float(row[key]) if _finite(row.get(key)) else np.nan
            for row in metrics
        ]
    )
    if np.all(np.isnan(values)):
        return None
    return epochs, values


def _figure(width: float, height: float, ncols: int = 1, nrows: int = 1):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes.ravel()


def _save(fig, path: Path) -> Path:
    fig.savefig(path, format="png")
    logger.debug("Wrote %s", path)
    return path


def _plot_curves(metrics: list, title: str, path: Path) -> Path:
    groups = [
        k for k in ("val_many", "val_medium", "val_few") if _series(metrics, k)
    ]
    panels = [
        ("Loss", {}, (("loss", "train loss"), ("val_loss", "val loss"))),
        (
            "Accuracy",
            {"ylim": (0, 1)},
            (
                ("accuracy", "train accuracy"),
                ("val_top1", "val top-1"),
                ("val_top5", "val top-5"),
                ("val_balanced", "val balanced"),
            ),
        ),
    ]
    if groups:
        panels.append(
            (
                "Validation top-1 by shot group",
                {"ylim": (0, 1)},
                [(key, key[4:]) for key in groups],
            )
        )
    fig, axes = _figure(5.0 * len(panels), 4.0, ncols=len(panels))
    for ax, (name, limits, lines) in zip(axes, panels):
        for key, label in lines:
            series = _series(metrics, key)
            if series:
                ax.plot(*series, marker=".", label=label)
        ylabel = "loss" if name == "Loss" else "accuracy"
        ax.set(title=name, xlabel="epoch", ylabel=ylabel, **limits)
        _legend(ax)
    fig.suptitle(title)
    return _save(fig, path)


def _legend(ax, loc: str = "best") -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small", loc=loc)
    ax.grid(alpha=0.3)


def _plot_per_class(evaluation: dict, title: str, out_dir: Path):
    name = "per_class_accuracy.png"
    counts = evaluation.get("train_counts")
    if not counts:
        logger.info("Skipping %s: evaluation.json has no train_counts.", name)
        return None
    counts = np.asarray(counts, dtype=float)
    entries = []
    for key, marker in (("last", "o"), ("best", "x")):
        entry = evaluation.get(key)
        acc = (
            entry.get("per_class_accuracy") if isinstance(entry, dict) else None
        )
        if acc is None:
            continue
        if len(acc) != len(counts):
            raise ValueError(
                f"evaluation.json: '{key}.per_class_accuracy' has {len(acc)} "
                f"entries but 'train_counts' has {len(counts)}."
            )
        acc = np.array([np.nan if a is None else float(a) for a in acc])
        entries.append((key, entry, acc, marker))
    if not entries:
        logger.info(
            "Skipping %s: evaluation.json has no per_class_accuracy.", name
        )
        return None

    fig, (ax,) = _figure(7.5, 4.5)
    x = np.maximum(counts, 0.5)  # A zero count is drawn at 0.5.
    for key, entry, acc, marker in entries:
        epoch = entry.get("epoch")
        label = key if epoch is None else f"{key} (epoch {epoch})"
        ax.scatter(
            x, acc, marker=marker, s=22, alpha=0.7, label=label, zorder=3
        )
    last_key, _, last_acc, _ = entries[0]
    groups = shot_groups(counts.astype("int64"))
    for group in ("many", "medium", "few"):
        mask = (groups == group) & ~np.isnan(last_acc)
        if mask.any():
            lo, hi = x[mask].min(), x[mask].max()
            mean = float(np.mean(last_acc[mask]))
            ax.hlines(
                mean,
                lo / 1.15,
                hi * 1.15,
                colors="k",
                linestyles="dotted",
                zorder=2,
            )
            ax.annotate(
                f"{group} ({last_key}) {mean:.1%}",
                (math.sqrt(lo * hi), mean),
                textcoords="offset points",
                xytext=(0, 4),
                ha="center",
                fontsize="small",
            )
    for threshold in (FEW_THRESHOLD, MANY_THRESHOLD):
        ax.axvline(threshold, color="grey", linestyle="--", zorder=1)
    lo_x = min(float(x.min()), FEW_THRESHOLD) / 1.6
    hi_x = max(float(x.max()), MANY_THRESHOLD) * 1.6
    ax.set_xlim(lo_x, hi_x)
    for text, left, right in (
        (f"few (< {FEW_THRESHOLD})", lo_x, FEW_THRESHOLD),
        (
            f"medium ({FEW_THRESHOLD}-{MANY_THRESHOLD})",
            FEW_THRESHOLD,
            MANY_THRESHOLD,
        ),
        (f"many (> {MANY_THRESHOLD})", MANY_THRESHOLD, hi_x),
    ):
        ax.text(
            math.sqrt(left * right),
            1.15,
            text,
            ha="center",
            va="center",
            fontsize="small",
            color="dimgrey",
        )
    ax.set_xscale("log")
    ax.set(
        xlabel="training examples of the class (log scale)",
        ylabel="per-class top-1 accuracy",
        ylim=(-0.03, 1.25),
        title=f"Per-class accuracy vs training count ({title})",
    )
    ax.set_yticks(np.linspace(0, 1, 6))
    _legend(ax, loc="lower right")
    return _save(fig, out_dir / name)


def _plot_assignment_changes(metrics: list, title: str, path: Path) -> Path:
    cost = _series(metrics, "assignment_cost")
    fig, axes = _figure(5.5 * (2 if cost else 1), 4.0, ncols=2 if cost else 1)
    epochs, changed = _series(metrics, "assignment_changed")
    ax = axes[0]
    ax.plot(epochs, changed, marker=".", color="tab:red")
    ax.set(
        title="Assignments changed per epoch",
        xlabel="epoch",
        ylabel="fraction of classes",
        ylim=(0, max(0.05, float(np.nanmax(changed)) * 1.1)),
    )
    ax.grid(alpha=0.3)
    if cost:
        ax = axes[1]
        ax.plot(*cost, marker=".", color="tab:purple")
        ax.set(
            title="Matching cost per class",
            xlabel="epoch",
            ylabel="-mean cos(q_j, w_A(j))",
        )
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    return _save(fig, path)


def label_order_similarity(prototypes, assignment) -> np.ndarray:
    """`(c, c)` cosine similarity `cos(W[A[i]], W[A[j]])` in label order.

    Args:
        prototypes: `(c, d)` prototypes `W` (normalised here).
        assignment: `(c,)` permutation; label `j` uses prototype `A[j]`.
    """
    w = np.asarray(prototypes, dtype="float64")
    w = w / np.maximum(np.linalg.norm(w, axis=1, keepdims=True), 1e-12)
    w = w[np.asarray(assignment)]
    return w @ w.T


def _plot_similarity(
    prototypes: np.ndarray,
    assignment: np.ndarray,
    class_names,
    title: str,
    path: Path,
) -> Path:
    sim = label_order_similarity(prototypes, assignment)
    c = sim.shape[0]
    off = sim[~np.eye(c, dtype=bool)] if c > 1 else np.zeros(1)
    size = 6.5 if c <= MAX_NAMED_CLASSES else 6.0
    fig, (ax,) = _figure(size + 1.2, size)
    image = ax.imshow(sim, cmap="RdBu_r", vmin=-1.0, vmax=1.0)
    fig.colorbar(image, ax=ax, shrink=0.8, label="cosine similarity")
    if class_names is not None and len(class_names) == c:
        names = [str(n) for n in class_names]
    else:
        names = [str(i) for i in range(c)]
    if c <= MAX_NAMED_CLASSES:
        ax.set_xticks(range(c), names, rotation=90, fontsize="small")
        ax.set_yticks(range(c), names, fontsize="small")
    ax.set(xlabel="class (label order)", ylabel="class (label order)")
    ax.set_title(
        f"Prototype cosine similarity, W[A[i]] . W[A[j]]\n"
        f"off-diagonal min {off.min():.3f}, max {off.max():.3f}, "
        f"mean {off.mean():.3f} ({title})",
        fontsize="medium",
    )
    return _save(fig, path)
