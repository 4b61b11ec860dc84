"""The paper's CIFAR / SVHN / STL-10 experiments as named, resumable
sweeps with a report.

`reproduce(grid, out, ...)` runs every run of a grid as its own recipe
process (`keras_dlpa.sweep`: several at once, a deadline each, complete
runs skipped, interrupted ones resumed) and writes `out/report.md` (one
Markdown table per paper table: our mean ± std over seeds next to the
paper's number), `out/report.json` and plots. Grids (`GRIDS`):

- `table4`: CIFAR-100-LT at imbalance 0.005 / 0.01 / 0.02: softmax (PSC,
  d = 128), etf (d = 128), dl2pa (d = 128) and dl2pa (d = 50).
- `fig4a`: balanced CIFAR-100 with the paper's balanced schedule: dl2pa vs
  static (the same prototypes, assignment frozen) vs softmax at d in {3,
  10, 25, 50, 100}, and etf at d = 100 (paper Table 1 / Fig. 4a; Fig. 4b,
  the fraction of labels reassigned per epoch, is plotted from the same
  runs).
- `fig4a_cpu`: a reduced fig4a that fits 2 CPU cores in under an hour
  (ResNet-8 of width 8, 100 images per class of which 20 for validation,
  8 epochs (lr steps at 6), lr 0.05, d in {3, 10, 25}, dl2pa / static /
  softmax).
- `table6`: CIFAR-10-LT, SVHN-LT and STL-10-LT at the three imbalances,
  softmax / etf / dl2pa (d = 64). The SVHN (`svhn_cropped`) and STL-10
  (`stl10`) cells read TensorFlow Datasets (`--dataset`, downloaded and
  prepared on first use: where the network allows, or prepared
  beforehand in the TFDS data dir, `tfds_data_dir`; offline and
  unprepared, such a run fails after TFDS's retries and the others go
  on); `Selection(datasets=...)` restricts a sweep to some of them
  (e.g. only `cifar10` offline). STL-10 is trained at its native 96x96
  (the paper does not say whether it resized) from its 500-per-class
  `train` split; the SVHN classes are unequal, so the profile's head
  size is the smallest class (`long_tailed_train_val`). Test split:
  each builder's `test`.
- `table7`: prototype quality (max / min pairwise cosine) at c = 100, d in
  {50, 100}; no training.
- `table8`: the prototype-distribution ablation on balanced CIFAR-100
  (ResNet-32 + Dense(64 -> d), the `cifar100` recipe), d in {16, 32, 64}:
  softmax (PSC), `psc_star` (PSC*: cross-entropy + 1e-2 x the uniformity
  loss of the classifier weights), `ours_star` (Ours*: DL2PA on the
  normalised class weights of the softmax run of the same seed and d) and
  dl2pa (Ours). The paper does not state the imbalance of Table 8; its
  PSC numbers (62-63 %) are those of balanced CIFAR-100 (Table 1), not
  of CIFAR-100-LT (43 % in Table 4), so the grid is balanced. Each
  `ours_star` job runs after its softmax job (`sweep.Job.after`); if that
  one is not complete (failed, or stopped by the deadline), the
  `ours_star` job is left for the next sweep. `quick`: the d = 16 cells.

The paper reports the best TEST epoch (model selection on the test set);
we report the last epoch and the best epoch by validation accuracy, on a
validation split carved from the training data (the shared archives hold
the training split only).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np

from keras_dlpa.sweep import Job
from keras_dlpa.sweep import run_jobs

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CIFAR100_ARCHIVE = SHARED_DATA / "cifar100-png-train.tar.gz"
CIFAR10_ARCHIVE = SHARED_DATA / "cifar10-jpeg-train.tar.gz"

# Paper numbers (top-1 %, best test epoch), keyed by (setting, method, d).
_TABLE4 = {
    ("0.005", "softmax", 128): 38.7,
    ("0.01", "softmax", 128): 43.0,
    ("0.02", "softmax", 128): 48.1,
    ("0.005", "etf", 128): 40.9,
    ("0.01", "etf", 128): 45.3,
    ("0.02", "etf", 128): 50.4,
    ("0.005", "dl2pa", 128): 41.3,
    ("0.01", "dl2pa", 128): 44.9,
    ("0.02", "dl2pa", 128): 50.7,
    ("0.005", "dl2pa", 50): 40.9,
    ("0.01", "dl2pa", 50): 45.2,
    ("0.02", "dl2pa", 50): 50.8,
}
_TABLE1 = {
    ("balanced", "dl2pa", 10): 57.21,
    ("balanced", "dl2pa", 25): 64.63,
    ("balanced", "dl2pa", 50): 66.22,
    ("balanced", "dl2pa", 100): 62.85,
    ("balanced", "softmax", 10): 25.67,
    ("balanced", "softmax", 25): 60.0,
    ("balanced", "softmax", 50): 60.6,
    ("balanced", "softmax", 100): 62.1,
}
_TABLE6 = {
    ("0.005", "dl2pa", 64): 71.5,
    ("0.01", "dl2pa", 64): 76.9,
    ("0.02", "dl2pa", 64): 81.4,
    ("0.005", "etf", 64): 71.9,
    ("0.01", "etf", 64): 76.5,
    ("0.02", "etf", 64): 81.0,
    ("0.005", "softmax", 64): 67.3,
    ("0.01", "softmax", 64): 72.8,
    ("0.02", "softmax", 64): 78.6,
}


def _lt_paper(dataset: str, rows: dict) -> dict:
    """`{(dataset, imbalance, method, 64): top-1}` of paper Table 6."""
    return {
        (dataset, setting, method, 64): value
        for method, values in rows.items()
        for setting, value in zip(("0.005", "0.01", "0.02"), values)
    }


# Table 6, SVHN-LT and STL-10-LT (imbalance 0.005 / 0.01 / 0.02).
_TABLE6.update(
    _lt_paper(
        "svhn_cropped",
        {
            "softmax": (40.5, 40.9, 49.3),
            "etf": (42.8, 45.7, 49.8),
            "dl2pa": (40.9, 47.0, 49.7),
        },
    )
)
_TABLE6.update(
    _lt_paper(
        "stl10",
        {
            "softmax": (33.1, 37.9, 38.8),
            "etf": (33.5, 37.2, 37.9),
            "dl2pa": (35.7, 35.6, 38.0),
        },
    )
)
# Table 8 (balanced CIFAR-100, ResNet-32), d = 16 / 32 / 64.
_TABLE8 = {
    ("balanced", method, dim): value
    for method, values in (
        ("softmax", (62.62, 61.81, 63.23)),
        ("psc_star", (62.54, 64.18, 64.53)),
        ("ours_star", (60.51, 63.43, 64.71)),
        ("dl2pa", (62.72, 65.09, 65.94)),
    )
    for dim, value in zip((16, 32, 64), values)
}
# Paper Table 7 (c = 100): max / min pairwise cosine of its prototypes.
_TABLE7 = {50: (0.01, -1.0)}


@dataclasses.dataclass(frozen=True)
class Run:
    """One cell of a grid (before seeds).

    Attributes:
        setting: the imbalance as text (`"0.01"`), or `"balanced"`.
        method: a `keras_dlpa.methods` name.
        dim: the feature size `d`.
        dataset: a TFDS builder name for a cell that reads TensorFlow
            Datasets (`--dataset`, no `--image-dir`); `None`: the grid's
            dataset (its archive when there is one).
    """

    setting: str
    method: str
    dim: int
    dataset: str | None = None

    def key(self):
        """The key of `Grid.paper`: `(setting, method, dim)`, with the
        dataset in front for a cell of another dataset."""
        if self.dataset is None:
            return (self.setting, self.method, self.dim)
        return (self.dataset, self.setting, self.method, self.dim)


@dataclasses.dataclass(frozen=True)
class Grid:
    """A named experiment grid.

    Attributes:
        name: grid name.
        title: the paper table or figure it reproduces.
        recipe: the recipe each run uses.
        dataset: `"cifar100"` or `"cifar10"` (which archive `--image-dir`)
            of the cells without a `Run.dataset` of their own.
        runs: the cells.
        paper: paper top-1 % per cell key (missing: not reported).
        args: extra recipe flags for every run.
        quick_args: flags added with `quick=True` (tiny CI runs).
        quick_dims: the `d` of the cells of a quick run; `None`: imbalance
            0.01, or balanced with d <= 10.
    """

    name: str
    title: str
    recipe: str
    dataset: str
    runs: tuple
    paper: dict
    args: tuple = ()
    quick_args: tuple = ("--quick",)
    quick_dims: tuple | None = None

    def _dataset(self, run: Run) -> str:
        return run.dataset or self.dataset

    def datasets(self) -> tuple:
        """The datasets of the cells, in order."""
        return tuple(dict.fromkeys(self._dataset(r) for r in self.runs))

    def methods(self) -> tuple:
        """The methods of the cells, in order."""
        return tuple(dict.fromkeys(r.method for r in self.runs))

    def cells(self, quick: bool = False, select: Selection | None = None):
        """The runs (a tuple); with `quick` only imbalance 0.01 / d <= 10
        (or `quick_dims`); with `select` only the selected cells (a
        `ValueError` names a dataset, method, imbalance or d the grid
        lacks)."""
        runs = self.runs
        if select is not None:
            runs = tuple(r for r in runs if select.check(self).matches(self, r))
        if not quick:
            return runs
        if self.quick_dims is not None:
            return tuple(r for r in runs if r.dim in self.quick_dims)
        return tuple(
            r
            for r in runs
            if r.setting == "0.01" or (r.setting == "balanced" and r.dim <= 10)
        )


@dataclasses.dataclass(frozen=True)
class Selection:
    """The cells of a grid to run and report; `None` keeps every value.

    Attributes:
        datasets: dataset names (`Grid.datasets()`).
        methods: method names (`Grid.methods()`).
        imbalances: settings, e.g. `("0.01",)` or `("balanced",)`; numbers
            compare as numbers (`"0.010"` is `"0.01"`).
        dims: feature sizes `d`.
    """

    datasets: tuple | None = None
    methods: tuple | None = None
    imbalances: tuple | None = None
    dims: tuple | None = None

    def _axes(self, grid: Grid):
        return (
            ("datasets", self.datasets, grid._dataset),
            ("methods", self.methods, lambda r: r.method),
            ("imbalances", self.imbalances, lambda r: _setting(r.setting)),
            ("dims", self.dims, lambda r: int(r.dim)),
        )

    def _wanted(self, kind, values):
        if kind == "imbalances":
            return {_setting(v) for v in values}
        if kind == "dims":
            return {int(v) for v in values}
        return set(values)

    def check(self, grid: Grid) -> Selection:
        """`self`, or a `ValueError` naming values `grid` does not have."""
        for kind, values, key in self._axes(grid):
            if values is None:
                continue
            known = tuple(dict.fromkeys(key(r) for r in grid.runs))
            if not values or not self._wanted(kind, values) <= set(known):
                raise ValueError(
                    f"Grid {grid.name!r} has the {kind} "
                    f"{', '.join(map(str, known))}. Received: "
                    f"{kind}={tuple(values)}"
                )
        return self

    def matches(self, grid: Grid, run: Run) -> bool:
        return all(
            values is None or key(run) in self._wanted(kind, values)
            for kind, values, key in self._axes(grid)
        )


def _setting(value) -> str:
    """`"balanced"`, or the imbalance as a canonical number text."""
    text = str(value).strip()
    if text == "balanced":
        return text
    try:
        return repr(float(text))
    except ValueError:
        return text


def _lt_runs(methods_dims, imbalances=("0.005", "0.01", "0.02"), dataset=None):
    return tuple(
        Run(i, m, d, dataset) for i in imbalances for m, d in methods_dims
    )


def _balanced_runs(dims, methods, extra=()):
    runs = [Run("balanced", m, d) for d in dims for m in methods]
    return tuple(runs) + tuple(extra)


_TABLE6_CELLS = (("softmax", 64), ("etf", 64), ("dl2pa", 64))
# Softmax first: the ours_star run of each (seed, d) reads its weights.
_TABLE8_METHODS = ("softmax", "psc_star", "ours_star", "dl2pa")

GRIDS = {
    "table4": Grid(
        "table4",
        "Table 4: CIFAR-100-LT, ResNet-32",
        "cifar100_lt",
        "cifar100",
        _lt_runs(
            (("softmax", 128), ("etf", 128), ("dl2pa", 128), ("dl2pa", 50))
        ),
        _TABLE4,
    ),
    "fig4a": Grid(
        "fig4a",
        "Table 1 / Fig. 4a: balanced CIFAR-100, dynamic vs static",
        "cifar100",
        "cifar100",
        _balanced_runs(
            (3, 10, 25, 50, 100),
            ("dl2pa", "static", "softmax"),
            (Run("balanced", "etf", 100),),
        ),
        _TABLE1,
    ),
    "fig4a_cpu": Grid(
        "fig4a_cpu",
        "Fig. 4a at CPU scale: balanced CIFAR-100, ResNet-8 (width 8), "
        "80 training + 20 validation images per class, 8 epochs",
        "cifar100",
        "cifar100",
        _balanced_runs((3, 10, 25), ("dl2pa", "static", "softmax")),
        _TABLE1,
        args=(
            "--depth",
            "8",
            "--width",
            "8",
            "--train-per-class",
            "100",
            "--epochs",
            "8",
            "--batch-size",
            "64",
            "--lr",
            "0.05",
            "--warmup-epochs",
            "1",
            "--milestones",
            "6",
        ),  # fmt: skip
    ),
    "table6": Grid(
        "table6",
        "Table 6: CIFAR-10-LT, SVHN-LT, STL-10-LT, ResNet-32 (d = 64)",
        "cifar10_lt",
        "cifar10",
        _lt_runs(_TABLE6_CELLS)
        + _lt_runs(_TABLE6_CELLS, dataset="svhn_cropped")
        + _lt_runs(_TABLE6_CELLS, dataset="stl10"),
        _TABLE6,
    ),
    "table8": Grid(
        "table8",
        "Table 8: balanced CIFAR-100, ResNet-32, prototype distribution "
        "(PSC = softmax, PSC* = psc_star, Ours* = ours_star, Ours = dl2pa)",
        "cifar100",
        "cifar100",
        _balanced_runs((16, 32, 64), _TABLE8_METHODS),
        _TABLE8,
        quick_dims=(16,),
    ),
}
# `keras_dlpa.study.STUDIES` (tuned budget studies) run through
# `reproduce` too.
STUDY_NAMES = ("budget_cpu",)
GRID_NAMES = tuple(GRIDS) + ("table7",) + STUDY_NAMES


def _run_args(grid: Grid, run: Run, seed: int, data, quick: bool) -> list:
    args = ["--method", run.method, "--dim", str(run.dim), "--seed", str(seed)]
    if run.setting != "balanced":
        args += ["--imbalance", run.setting]
    if run.dataset is not None:
        # A TFDS cell: `data` is the archive of the grid's own dataset.
        args += ["--dataset", run.dataset]
        if run.dataset == "svhn_cropped":
            # SVHN's classes are unequal (4,659 ... 13,861): the profile
            # headed by the smallest drops more than half of what one
            # headed by the largest keeps (`splits_with_report`), as
            # `long_tailed_train_val` intends for this table.
            args += ["--allow-data-drop"]
    elif data is not None:
        # A prepared `.npz` (`write_prepared_splits`) or images.
        flag = "--npz" if str(data).endswith(".npz") else "--image-dir"
        args += [flag, str(data)]
    args += list(grid.args)
    if quick:
        args += list(grid.quick_args)
    return args + ["--verbose", "2"]


def _name(run: Run, seed: int) -> str:
    name = f"{run.method}-d{run.dim}-{run.setting}-s{seed}"
    return name if run.dataset is None else f"{run.dataset}-{name}"


def _softmax_cell(run: Run) -> Run:
    """The softmax cell whose weights the `ours_star` cell `run` reads."""
    return dataclasses.replace(run, method="softmax")


def grid_jobs(
    grid: Grid,
    out,
    seeds,
    data=None,
    quick=False,
    extra_args=(),
    select: Selection | None = None,
    tfds_data_dir=None,
) -> list[Job]:
    """The `sweep.Job`s of `grid` for each seed (run dirs under `out`).

    Jobs of the grid's quick cells (the headline column: imbalance 0.01,
    or the smallest d) come first, so a sweep cut short by its deadline
    has finished those; `select` (a `Selection`) keeps only some cells.

    An `ours_star` job gets `--softmax-run` (the run directory of the
    softmax job of the same cell and seed, which must be in the grid) and
    runs after it (`Job.after`). `tfds_data_dir` goes to the TFDS cells
    as `--data-dir`.
    """
    from keras_dlpa.methods import get_method

    out = Path(out)
    cells = grid.cells(quick, select)
    headline = set(grid.cells(True))
    jobs = []
    for run in sorted(cells, key=lambda r: r not in headline):
        for seed in seeds:
            args = _run_args(grid, run, seed, data, quick)
            if run.dataset is not None and tfds_data_dir is not None:
                args += ["--data-dir", str(tfds_data_dir)]
            after = ()
            if get_method(run.method).from_softmax:
                softmax = _softmax_cell(run)
                if softmax not in cells:
                    raise ValueError(
                        f"Grid {grid.name!r}: the {run.method} cell {run} "
                        f"needs the softmax cell {softmax} in the grid."
                    )
                after = (_name(softmax, seed),)
                args += ["--softmax-run", str(out / "runs" / after[0])]
            jobs.append(
                Job(
                    name=_name(run, seed),
                    recipe=grid.recipe,
                    args=args + [str(a) for a in extra_args],
                    out=str(out / "runs" / _name(run, seed)),
                    after=after,
                )
            )
    return jobs


def _mean_std(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return float(np.mean(values)), float(np.std(values))


def _fmt(mean, std, scale=100.0):
    if mean is None:
        return "–"
    if std is None or std == 0.0:
        return f"{scale * mean:.2f}"
    return f"{scale * mean:.2f} ± {scale * std:.2f}"


def summarise(grid: Grid, out, seeds, quick=False, select=None) -> list:
    """One row per cell: seeds done, mean ± std of the metrics, paper."""
    out = Path(out)
    rows = []
    for run in grid.cells(quick, select):
        evaluations = []
        for seed in seeds:
            path = out / "runs" / _name(run, seed) / "evaluation.json"
            if path.is_file():
                evaluations.append(json.loads(path.read_text()))
        row = {
            "dataset": run.dataset or grid.dataset,
            "setting": run.setting,
            "method": run.method,
            "dim": run.dim,
            "paper_top1": grid.paper.get(run.key()),
            "seeds_done": sum(bool(e.get("completed")) for e in evaluations),
            "seeds": len(evaluations),
            "epochs_done": [e.get("epochs_done") for e in evaluations],
        }
        for part in ("last", "best"):
            for key in ("top1", "many", "medium", "few"):
                mean, std = _mean_std(
                    [(e.get(part) or {}).get(key) for e in evaluations]
                )
                row[f"{part}_{key}"] = mean
                row[f"{part}_{key}_std"] = std
        row["wall_time_s"] = _mean_std(
            [e.get("wall_time_s") for e in evaluations]
        )[0]
        row["train_images_per_s"] = _mean_std(
            [e.get("train_images_per_s") for e in evaluations]
        )[0]
        row["machine"] = (
            sorted({str(e.get("backend")) for e in evaluations}) or None
        )
        rows.append(row)
    return rows


def _table(rows) -> str:
    """The Markdown table; a dataset column when the rows have several."""
    several = len({r.get("dataset") for r in rows}) > 1
    header = (
        ("| dataset " if several else "")
        + "| setting | method | d | seeds | last top-1 | best top-1 (val) "
        "| many | medium | few | paper | wall s | img/s |\n"
        + ("|---" if several else "")
        + "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for r in rows:
        paper = "–" if r["paper_top1"] is None else f"{r['paper_top1']:.2f}"
        wall = "–" if r["wall_time_s"] is None else f"{r['wall_time_s']:.0f}"
        rate = r["train_images_per_s"]
        rate = "–" if rate is None else f"{rate:.0f}"
        lines.append(
            (f"| {r['dataset']} " if several else "")
            + f"| {r['setting']} | {r['method']} | {r['dim']} | "
            f"{r['seeds_done']}/{r['seeds']} | "
            f"{_fmt(r['last_top1'], r['last_top1_std'])} | "
            f"{_fmt(r['best_top1'], r['best_top1_std'])} | "
            f"{_fmt(r['last_many'], None)} | {_fmt(r['last_medium'], None)} | "
            f"{_fmt(r['last_few'], None)} | {paper} | {wall} | {rate} |"
        )
    return header + "\n".join(lines) + "\n"


def table7_rows() -> list[dict]:
    """Prototype quality at c = 100, d in {50, 100} (no training)."""
    from keras_dlpa.prototypes import cached_prototypes
    from keras_dlpa.prototypes import prototype_quality

    rows = []
    for dim in (50, 100):
        quality = prototype_quality(cached_prototypes(100, dim))
        paper = _TABLE7.get(dim, (None, None))
        rows.append(
            {
                "c": 100,
                "dim": dim,
                "max_cosine": float(quality["max"]),
                "min_cosine": float(quality["min"]),
                "paper_max_cosine": paper[0],
                "paper_min_cosine": paper[1],
            }
        )
    return rows


def _plots(grid: Grid, out: Path, rows, seeds) -> list[str]:
    files = []
    dims = sorted({r["dim"] for r in rows})
    if grid.name.startswith("fig4a") and len(dims) > 1:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.5))
        for method in sorted({r["method"] for r in rows}):
            pts = [
                (r["dim"], r["last_top1"])
                for r in rows
                if r["method"] == method and r["last_top1"] is not None
            ]
            if pts:
                x, y = zip(*sorted(pts))
                ax.plot(x, [100 * v for v in y], marker="o", label=method)
        ax.set_xscale("log")
        ax.set_xlabel("d")
        ax.set_ylabel("val top-1 (last epoch), %")
        ax.set_title("Fig. 4a: accuracy against d")
        ax.legend()
        fig.tight_layout()
        path = out / "fig4a_accuracy_vs_d.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        files.append(path.name)
        # Fig. 4b: fraction of labels reassigned per epoch (dl2pa, seed 0).
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for dim in dims:
            name = _name(Run("balanced", "dl2pa", dim), seeds[0])
            metrics = out / "runs" / name / "metrics.json"
            if metrics.is_file():
                history = json.loads(metrics.read_text())
                ax.plot(
                    [h["epoch"] + 1 for h in history],
                    [h.get("assignment_changed") for h in history],
                    label=f"d = {dim}",
                )
        ax.set_xlabel("epoch")
        ax.set_ylabel("fraction of labels reassigned")
        ax.set_title("Fig. 4b")
        ax.legend()
        fig.tight_layout()
        path = out / "fig4b_reassigned.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        files.append(path.name)
    return files


def write_report(grid_name: str, out, seeds, quick=False, select=None) -> dict:
    """Writes `out/report.md` and `out/report.json`; returns the JSON."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    note = (
        "Ours: top-1 on a validation split carved from the training "
        "archive (mean ± std over seeds; last epoch, and the best epoch by "
        "validation accuracy). Paper: the best TEST epoch (model selection "
        "on the test set), official test split."
    )
    if grid_name == "table7":
        rows = table7_rows()
        lines = [
            "# Table 7: prototype quality, c = 100\n",
            "| d | max cosine | min cosine | paper max | paper min |",
            "|---|---|---|---|---|",
        ]
        for r in rows:
            lines.append(
                f"| {r['dim']} | {r['max_cosine']:.4f} | "
                f"{r['min_cosine']:.4f} | {r['paper_max_cosine'] or '–'} | "
                f"{r['paper_min_cosine'] or '–'} |"
            )
        report = {"grid": grid_name, "rows": rows, "plots": []}
        (out / "report.md").write_text("\n".join(lines) + "\n")
    else:
        grid = GRIDS[grid_name]
        rows = summarise(grid, out, seeds, quick, select)
        plots = _plots(grid, out, rows, seeds)
        text = f"# {grid.title}\n\n{note}\n\n{_table(rows)}"
        for plot in plots:
            text += f"\n![{plot}]({plot})\n"
        (out / "report.md").write_text(text)
        report = {"grid": grid_name, "seeds": list(seeds), "rows": rows}
        report["plots"] = plots
    report["written"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    report["machine"] = machine_info(report["written"])
    (out / "report.json").write_text(
        json.dumps(report, indent=2, default=nan_to_none) + "\n"
    )
    return report


def machine_info(written: str) -> dict:
    """The machine the report was written on (the runs' own machines are
    in each run's `config.json`)."""
    import os
    import platform

    import keras

    return {
        "date": written,
        "hostname": platform.node(),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "keras_backend": keras.backend.backend(),
        "loadavg_1_5_15": list(os.getloadavg()),
    }


def nan_to_none(value):
    """JSON `default`: non-finite floats -> None, anything else -> str."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


def default_data(grid_name: str):
    """The shared archive of the grid's dataset, if present, else None
    (the recipes then use TFDS)."""
    if grid_name == "table7":
        return None
    if grid_name in STUDY_NAMES:
        return CIFAR100_ARCHIVE if CIFAR100_ARCHIVE.is_file() else None
    archive = (
        CIFAR100_ARCHIVE
        if GRIDS[grid_name].dataset == "cifar100"
        else CIFAR10_ARCHIVE
    )
    return archive if archive.is_file() else None


def reproduce(
    grid_name: str,
    out,
    seeds=(0,),
    data=None,
    quick: bool = False,
    parallel: int = 1,
    deadline: float | None = None,
    report_only: bool = False,
    extra_args=(),
    select: Selection | None = None,
    tfds_data_dir=None,
) -> dict:
    """Runs (or resumes) the grid `grid_name`, then writes the report.

    Args:
        grid_name: one of `GRID_NAMES`.
        out: the sweep directory (`runs/`, `logs/`, `report.md`).
        seeds: run seeds.
        data: image folder or archive for `--image-dir`, or a prepared
            `.npz` of one seed's splits for `--npz` (default: the shared
            archive, else TFDS).
        quick: add the grid's `quick_args` (tiny CI runs).
        parallel: runs at once (one process each).
        deadline: Unix time passed to every run (`--deadline`).
        report_only: only write the report from the runs on disk.
        extra_args: more recipe flags for every run (e.g. `--epochs 2`).
        select: only these cells (a `Selection` of datasets, methods,
            imbalances and d, e.g. `Selection(imbalances=("0.01",))`;
            `datasets=("cifar10",)` runs table6 without the TFDS cells).
        tfds_data_dir: TFDS data dir of the TFDS cells (`--data-dir`).

    Returns:
        The report dict (`report.json`), with `failed_runs`: the jobs of
        this call that failed or were refused (see their logs).
    """
    if grid_name not in GRID_NAMES:
        raise ValueError(
            f"Unknown grid {grid_name!r}; expected one of {GRID_NAMES}."
        )
    if grid_name in STUDY_NAMES:
        from keras_dlpa.study import run_study

        return run_study(
            grid_name,
            out,
            data if data is not None else default_data(grid_name),
            quick=quick,
            parallel=parallel,
            deadline=deadline,
            report_only=report_only,
            extra_args=extra_args,
        )
    seeds = tuple(int(s) for s in seeds)
    if not seeds:
        raise ValueError("`seeds` must not be empty.")
    out = Path(out)
    failed = []
    if grid_name != "table7" and not report_only:
        grid = GRIDS[grid_name]
        data = data if data is not None else default_data(grid_name)
        jobs = grid_jobs(
            grid,
            out,
            seeds,
            data,
            quick,
            extra_args,
            select=select,
            tfds_data_dir=tfds_data_dir,
        )
        results = run_jobs(
            jobs, out / "logs", parallel=parallel, deadline=deadline
        )
        failed = [
            name
            for name, result in results.items()
            if result["status"] == "refused"
            or result["returncode"] not in (0, None)
        ]
    report = write_report(grid_name, out, seeds, quick, select)
    report["failed_runs"] = failed
    return report
