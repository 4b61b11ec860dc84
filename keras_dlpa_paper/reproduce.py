"""The paper's CIFAR / SVHN / STL-10 experiments as named, resumable
sweeps with a report.

`reproduce(grid, out, ...)` runs every run of a grid as its own recipe
process (`keras_dlpa_paper.sweep`: several at once, a deadline each,
complete runs skipped, interrupted ones resumed) and writes
`out/report.md` (one Markdown table per paper table: our mean ± std over
seeds next to the paper's number), `out/report.json` and plots. The
training data is explicit: `data`, else the grid's archive in the folder
`$KERAS_DLPA_DATA` (`resolve_data`). Grids (`keras_dlpa_paper.grids`):

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
validation split carved from the training data (the archives hold the
training split only). `budget_cpu` (`keras_dlpa_paper.study`) runs
through `reproduce` too.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from keras_dlpa_paper.grids import GRIDS
from keras_dlpa_paper.grids import TABLE7
from keras_dlpa_paper.grids import Grid
from keras_dlpa_paper.grids import Run
from keras_dlpa_paper.grids import Selection
from keras_dlpa_paper.study import STUDIES
from keras_dlpa_paper.study import run_study
from keras_dlpa_paper.sweep import Job
from keras_dlpa_paper.sweep import SweepOptions
from keras_dlpa_paper.sweep import data_args
from keras_dlpa_paper.sweep import run_jobs
from keras_dlpa_paper.sweep import save_report

GRID_NAMES = tuple(GRIDS) + ("table7",) + tuple(STUDIES)
DATA_ENV = "KERAS_DLPA_DATA"
# The training archives the folder `$KERAS_DLPA_DATA` holds, by dataset.
ARCHIVES = {
    "cifar100": "cifar100-png-train.tar.gz",
    "cifar10": "cifar10-jpeg-train.tar.gz",
}


def resolve_data(grid_name: str, data=None, select: Selection | None = None):
    """The training data of the grid's CIFAR cells (`reproduce`'s `data`).

    `data` when given: an image folder or archive (`--image-dir`), a
    prepared `.npz` (`--npz`), or `"tfds"` (the recipes read TensorFlow
    Datasets). Else `None` when no cell needs it (`table7`, or only TFDS
    cells selected), else the dataset's archive (`ARCHIVES`) in the
    folder named by the environment variable `KERAS_DLPA_DATA`; without
    either, a `ValueError` names both.
    """
    if data is not None or grid_name == "table7":
        return data
    if grid_name in STUDIES:
        from keras_dlpa.training.recipes import RECIPES

        dataset = RECIPES[STUDIES[grid_name].recipe]["config"]["dataset"]
    else:
        grid = GRIDS[grid_name]
        if all(r.dataset is not None for r in grid.cells(select=select)):
            return None
        dataset = grid.dataset
    folder = os.environ.get(DATA_ENV)
    archive = Path(folder or ".") / ARCHIVES[dataset]
    if folder and archive.exists():
        return archive
    received = f"{DATA_ENV}={folder!r}" if folder else f"{DATA_ENV} unset"
    raise ValueError(
        f"--grid {grid_name} needs the {dataset} training data: pass --data "
        f"(archive, image folder, prepared .npz, or tfds) or set {DATA_ENV} "
        f"to the folder holding {ARCHIVES[dataset]}. Received: no --data, "
        f"{received}."
    )


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
    else:
        args += data_args(data)
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
        paper = TABLE7.get(dim, (None, None))
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
    return save_report(out, report)


def reproduce(
    grid_name: str,
    out,
    seeds=(0,),
    data=None,
    select: Selection | None = None,
    options: SweepOptions | None = None,
    tfds_data_dir=None,
) -> dict:
    """Runs (or resumes) the grid `grid_name`, then writes the report.

    Args:
        grid_name: one of `GRID_NAMES`.
        out: the sweep directory (`runs/`, `logs/`, `report.md`).
        seeds: run seeds.
        data: image folder or archive for `--image-dir`, a prepared
            `.npz` of one seed's splits for `--npz`, or `"tfds"`
            (default: the grid's archive in `$KERAS_DLPA_DATA`, see
            `resolve_data`).
        select: only these cells (a `Selection` of datasets, methods,
            imbalances and d, e.g. `Selection(imbalances=("0.01",))`;
            `datasets=("cifar10",)` runs table6 without the TFDS cells).
        options: a `SweepOptions` (quick, parallel, deadline,
            report_only, extra_args); default `SweepOptions()`.
        tfds_data_dir: TFDS data dir of the TFDS cells (`--data-dir`).

    Returns:
        The report dict (`report.json`), with `failed_runs`: the jobs of
        this call that failed or were refused (see their logs).
    """
    if grid_name not in GRID_NAMES:
        raise ValueError(
            f"Unknown grid {grid_name!r}; expected one of {GRID_NAMES}."
        )
    o = options or SweepOptions()
    if not o.report_only:
        data = resolve_data(grid_name, data, select)
    if grid_name in STUDIES:
        return run_study(grid_name, out, data, o)
    seeds = tuple(int(s) for s in seeds)
    if not seeds:
        raise ValueError("`seeds` must not be empty.")
    out = Path(out)
    failed = []
    if grid_name != "table7" and not o.report_only:
        jobs = grid_jobs(
            GRIDS[grid_name],
            out,
            seeds,
            data,
            o.quick,
            o.extra_args,
            select=select,
            tfds_data_dir=tfds_data_dir,
        )
        results = run_jobs(
            jobs, out / "logs", parallel=o.parallel, deadline=o.deadline
        )
        failed = [
            name
            for name, result in results.items()
            if result["status"] == "refused"
            or result["returncode"] not in (0, None)
        ]
    report = write_report(grid_name, out, seeds, o.quick, select)
    report["failed_runs"] = failed
    return report
