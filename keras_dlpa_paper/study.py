"""Tuned budget studies: when does DL2PA beat softmax?

A `BudgetStudy` compares methods fairly at several training budgets:

1. **Selection.** Every variant (a method plus its fixed flags) trains at
   every learning rate of one shared grid for `select_epochs` epochs, seed
   `seeds[0]`; the learning rate with the best last-epoch validation top-1
   is that variant's (the same grid, data, schedule and budget for all).
2. **Budget curve.** Each variant trains with its chosen learning rate at
   each of its `budgets` (epoch counts, the step schedule scaled with the
   budget: warm-up 1 epoch, x0.1 at 40 % and 80 % of the epochs, as the
   paper's balanced 100 / 200 of 250), for the seeds of that budget.

Every run is one recipe process of `keras_dlpa_paper.sweep` (resumable, complete
runs skipped), named `{variant}-d{d}-lr{lr}-e{epochs}-s{seed}`, so a
selection run at the chosen rate is also the first point of its curve.
`run_study` writes `report.json` / `report.md` and two plots.

`budget_cpu` (`keras-dlpa reproduce --grid budget_cpu`): balanced
CIFAR-100 from the shared PNG archive, 134 images per class of which 25 %
(34) validation, ResNet-8 of width 8, d = 10, batch 64 (128 is 1.5x
slower per image on 2 CPU cores under XLA), SGD momentum 0.9,
coupled L2 1e-4 (the `cifar100` recipe's), no mixup; variants `softmax`
(cross-entropy), `dl2pa` and `static` with the reference code's loss (the
batch SUM of `(1 - cos)^2`, `--loss-scale 128` at batch 64) and
`dl2pa_mean` (keras-dlpa's default loss, the batch mean of `1/2 (cos -
1)^2`); learning rates 0.01 / 0.05 / 0.25, selected at 15 epochs; budgets
15 / 40 / 80 epochs for softmax and dl2pa, 15 / 40 for dl2pa_mean, 15 for
static, seed 0 (2 CPU cores: about 2.5 CPU-hours in all).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from keras_dlpa_paper.sweep import Job
from keras_dlpa_paper.sweep import SweepOptions
from keras_dlpa_paper.sweep import data_args
from keras_dlpa_paper.sweep import run_jobs
from keras_dlpa_paper.sweep import save_report


@dataclasses.dataclass(frozen=True)
class Variant:
    """One method of a study with its fixed flags.

    Attributes:
        label: the name in run names and tables.
        method: a `keras_dlpa.methods` name (`--method`).
        args: more recipe flags (e.g. `("--loss-scale", "128")`).
        budgets: its epoch counts (`None`: all of the study's budgets).
        seeds: at most this many seeds of each budget (`None`: all).
    """

    label: str
    method: str
    args: tuple = ()
    budgets: tuple | None = None
    seeds: int | None = None


@dataclasses.dataclass(frozen=True)
class BudgetStudy:
    """A learning-rate-tuned comparison at several budgets.

    Attributes:
        name, title: study name and report title.
        recipe: the recipe every run uses.
        dims: feature sizes `d`.
        variants: the compared `Variant`s.
        learning_rates: the shared learning-rate grid.
        select_epochs: the budget at which the rate is chosen.
        budgets: epoch counts of the curve.
        seeds: `{epochs: seeds}`; budgets not listed use `(0,)`.
        args: recipe flags of every run (data, backbone, batch size).
        quick_args: flags added with `quick=True` (CI smoke runs).
    """

    name: str
    title: str
    recipe: str
    dims: tuple
    variants: tuple
    learning_rates: tuple
    select_epochs: int
    budgets: tuple
    seeds: dict
    args: tuple = ()
    quick_args: tuple = ()

    def budget_seeds(self, epochs: int, variant=None) -> tuple:
        seeds = tuple(self.seeds.get(epochs, (0,)))
        if variant is not None and variant.seeds is not None:
            seeds = seeds[: variant.seeds]
        return seeds

    def variant_budgets(self, variant: Variant) -> tuple:
        return self.budgets if variant.budgets is None else variant.budgets


def schedule_args(epochs: int) -> list:
    """Warm-up 1 epoch, x0.1 at 40 % and 80 % of `epochs` (the paper's
    balanced 100 / 200 of 250), as recipe flags."""
    first, second = round(0.4 * epochs), round(0.8 * epochs)
    milestones = sorted({m for m in (first, second) if 1 <= m < epochs})
    args = ["--epochs", str(epochs), "--warmup-epochs", "1"]
    if milestones:
        args += ["--milestones", ",".join(str(m) for m in milestones)]
    return args


STUDIES = {
    "budget_cpu": BudgetStudy(
        name="budget_cpu",
        title="When does DL2PA beat softmax? Balanced CIFAR-100, d = 10, "
        "ResNet-8 (width 8), 100 training + 34 validation images per "
        "class, learning rate tuned per method",
        recipe="cifar100",
        dims=(10,),
        variants=(
            Variant("softmax", "softmax"),
            Variant("dl2pa", "dl2pa", ("--loss-scale", "128")),
            Variant("static", "static", ("--loss-scale", "128"), (15,), 1),
            Variant("dl2pa_mean", "dl2pa", (), (15, 40), 1),
        ),
        learning_rates=(0.01, 0.05, 0.25),
        select_epochs=15,
        budgets=(15, 40, 80),
        # One seed: the gaps were far above seed noise (the issue asked
        # for 2 seeds where differences are small).
        seeds={},
        args=(
            "--depth",
            "8",
            "--width",
            "8",
            "--train-per-class",
            "134",
            "--val-fraction",
            "0.25",
            "--batch-size",
            "64",
        ),  # fmt: skip
        quick_args=("--quick",),
    ),
}


def _name(variant: Variant, dim: int, lr: float, epochs: int, seed: int):
    return f"{variant.label}-d{dim}-lr{lr:g}-e{epochs}-s{seed}"


def _job(study, variant, dim, lr, epochs, seed, out, data, quick, extra):
    args = ["--method", variant.method, "--dim", str(dim)]
    args += ["--lr", f"{lr:g}", "--seed", str(seed)]
    args += list(variant.args) + list(study.args)
    args += schedule_args(epochs)
    args += data_args(data)
    if quick:
        args += list(study.quick_args)
    args += [str(a) for a in extra] + ["--verbose", "2"]
    name = _name(variant, dim, lr, epochs, seed)
    return Job(name, study.recipe, args, str(Path(out) / "runs" / name))


def _evaluation(out, name) -> dict | None:
    path = Path(out) / "runs" / name / "evaluation.json"
    if not path.is_file():
        return None
    evaluation = json.loads(path.read_text())
    return evaluation if evaluation.get("completed") else None


def _last_top1(evaluation) -> float | None:
    if evaluation is None:
        return None
    value = (evaluation.get("last") or {}).get("top1")
    return None if value is None or not np.isfinite(value) else float(value)


def selection(study: BudgetStudy, out) -> dict:
    """`{(label, dim): {"lr": chosen or None, "scores": {lr: top-1}}}` from
    the selection runs on disk (a failed or diverged run scores None)."""
    seed = study.budget_seeds(study.select_epochs)[0]
    chosen = {}
    for dim in study.dims:
        for variant in study.variants:
            scores = {
                lr: _last_top1(
                    _evaluation(
                        out,
                        _name(variant, dim, lr, study.select_epochs, seed),
                    )
                )
                for lr in study.learning_rates
            }
            valid = {lr: s for lr, s in scores.items() if s is not None}
            best = max(valid, key=valid.get) if valid else None
            chosen[(variant.label, dim)] = {"lr": best, "scores": scores}
    return chosen


def selection_jobs(study, out, data=None, quick=False, extra=()) -> list:
    """Stage 1: every variant at every learning rate, `select_epochs`."""
    seed = study.budget_seeds(study.select_epochs)[0]
    return [
        _job(
            study, v, d, lr, study.select_epochs, seed, out, data, quick, extra
        )
        for d in study.dims
        for v in study.variants
        for lr in study.learning_rates
    ]


def budget_jobs(study, out, chosen, data=None, quick=False, extra=()):
    """Stage 2: each variant at its chosen rate, longest budgets first
    (they bound the wall time), skipping variants with no valid rate."""
    jobs = []
    for epochs in sorted(study.budgets, reverse=True):
        for seed in study.budget_seeds(epochs):
            for dim in study.dims:
                for variant in study.variants:
                    lr = chosen[(variant.label, dim)]["lr"]
                    if (
                        lr is None
                        or epochs not in study.variant_budgets(variant)
                        or seed not in study.budget_seeds(epochs, variant)
                    ):
                        continue
                    jobs.append(
                        _job(
                            study,
                            variant,
                            dim,
                            lr,
                            epochs,
                            seed,
                            out,
                            data,
                            quick,
                            extra,
                        )  # fmt: skip
                    )
    return jobs


def _history(out, name) -> list:
    path = Path(out) / "runs" / name / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else []


def summarise(study: BudgetStudy, out) -> dict:
    """The report dict: the selection table and the budget rows."""
    chosen = selection(study, out)
    select_rows, rows = [], []
    for (label, dim), pick in chosen.items():
        select_rows.append(
            {
                "variant": label,
                "dim": dim,
                "epochs": study.select_epochs,
                "chosen_lr": pick["lr"],
                "val_top1_by_lr": {
                    f"{lr:g}": s for lr, s in pick["scores"].items()
                },
            }
        )
        variant = next(v for v in study.variants if v.label == label)
        if pick["lr"] is None:
            continue
        for epochs in study.variant_budgets(variant):
            names = [
                _name(variant, dim, pick["lr"], epochs, seed)
                for seed in study.budget_seeds(epochs, variant)
            ]
            evaluations = [_evaluation(out, n) for n in names]
            top1 = [_last_top1(e) for e in evaluations]
            done = [t for t in top1 if t is not None]
            train_acc = [
                (_history(out, n) or [{}])[-1].get("accuracy")
                for n, e in zip(names, evaluations)
                if e is not None
            ]
            rows.append(
                {
                    "variant": label,
                    "method": variant.method,
                    "dim": dim,
                    "lr": pick["lr"],
                    "epochs": epochs,
                    "seeds_done": len(done),
                    "seeds": len(names),
                    "val_top1": done,
                    "val_top1_mean": float(np.mean(done)) if done else None,
                    "val_top1_std": float(np.std(done)) if done else None,
                    "train_accuracy_last_epoch": train_acc,
                    "wall_time_s": [
                        e.get("wall_time_s") for e in evaluations if e
                    ],
                    "runs": names,
                }
            )
    return {"study": study.name, "selection": select_rows, "rows": rows}


def _markdown(study: BudgetStudy, report: dict) -> str:
    lrs = [f"{lr:g}" for lr in study.learning_rates]
    lines = [
        f"# {study.title}\n",
        "Validation top-1 % at the last epoch. Learning rate chosen per "
        f"variant at {study.select_epochs} epochs (seed 0) from one grid.\n",
        "## Selection\n",
        "| variant | d | "
        + " | ".join(f"lr {lr}" for lr in lrs)
        + " | chosen |",
        "|---|---|" + "---|" * len(lrs) + "---|",
    ]
    for r in report["selection"]:
        cells = [
            "–"
            if r["val_top1_by_lr"][lr] is None
            else f"{100 * r['val_top1_by_lr'][lr]:.2f}"
            for lr in lrs
        ]
        chosen = "–" if r["chosen_lr"] is None else f"{r['chosen_lr']:g}"
        lines.append(
            f"| {r['variant']} | {r['dim']} | "
            + " | ".join(cells)
            + f" | {chosen} |"
        )
    lines += [
        "\n## Budget curve\n",
        "| variant | d | lr | epochs | seeds | val top-1 | train acc (last "
        "epoch) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        if r["val_top1_mean"] is None:
            top1 = "–"
        elif r["seeds_done"] > 1:
            top1 = (
                f"{100 * r['val_top1_mean']:.2f} ± "
                f"{100 * r['val_top1_std']:.2f}"
            )
        else:
            top1 = f"{100 * r['val_top1_mean']:.2f}"
        train = ", ".join(
            f"{100 * a:.1f}" for a in r["train_accuracy_last_epoch"] if a
        )
        lines.append(
            f"| {r['variant']} | {r['dim']} | {r['lr']:g} | {r['epochs']} | "
            f"{r['seeds_done']}/{r['seeds']} | {top1} | {train or '–'} |"
        )
    return "\n".join(lines) + "\n"


def _plot(study: BudgetStudy, out: Path, report: dict) -> list:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for label in dict.fromkeys(r["variant"] for r in report["rows"]):
        rows = [
            r
            for r in report["rows"]
            if r["variant"] == label and r["val_top1_mean"] is not None
        ]
        if not rows:
            continue
        x = [r["epochs"] for r in rows]
        y = [100 * r["val_top1_mean"] for r in rows]
        err = [100 * r["val_top1_std"] for r in rows]
        ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=label)
    ax.set_xscale("log")
    files.append(
        _finish_plot(
            fig,
            ax,
            "training epochs (schedule scaled)",
            f"{study.name}: accuracy against budget",
            out / f"{study.name}_budget_curve.png",
        )
    )

    # Per-epoch validation curves of the longest budget.
    longest = max(study.budgets)
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for r in report["rows"]:
        if r["epochs"] != longest or not r["seeds_done"]:
            continue
        history = _history(out, r["runs"][0])
        ax.plot(
            [h["epoch"] + 1 for h in history],
            [100 * (h.get("val_top1") or 0.0) for h in history],
            label=f"{r['variant']} (lr {r['lr']:g})",
        )
    files.append(
        _finish_plot(
            fig,
            ax,
            "epoch",
            f"{study.name}: {longest}-epoch runs",
            out / f"{study.name}_epochs.png",
        )
    )
    return files


def _finish_plot(fig, ax, xlabel: str, title: str, path: Path) -> str:
    """Labels, legend, saves and closes `fig`; returns the file name."""
    import matplotlib.pyplot as plt

    ax.set_xlabel(xlabel)
    ax.set_ylabel("validation top-1, %")
    ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path.name


def write_study_report(study: BudgetStudy, out) -> dict:
    """Writes `out/report.json`, `out/report.md` and the plots."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = summarise(study, out)
    report["plots"] = _plot(study, out, report)
    text = _markdown(study, report)
    for plot in report["plots"]:
        text += f"\n![{plot}]({plot})\n"
    (out / "report.md").write_text(text)
    report["learning_rates"] = list(study.learning_rates)
    report["args"] = list(study.args)
    return save_report(out, report)


def run_study(
    name: str,
    out,
    data=None,
    options: SweepOptions | None = None,
) -> dict:
    """Runs (or resumes) the study `name`: selection, then the budget
    curve with the chosen rates; writes the report and returns it
    (`options`: a `SweepOptions`)."""
    study = STUDIES[name]
    out = Path(out)
    o = options or SweepOptions()
    if not o.report_only:
        logs = out / "logs"
        run_jobs(
            selection_jobs(study, out, data, o.quick, o.extra_args),
            logs,
            parallel=o.parallel,
            deadline=o.deadline,
        )
        chosen = selection(study, out)
        for (label, dim), pick in chosen.items():
            print(
                f"[study] {label} d={dim}: lr {pick['lr']} "
                f"(val top-1 by lr: {pick['scores']})",
                flush=True,
            )
        run_jobs(
            budget_jobs(study, out, chosen, data, o.quick, o.extra_args),
            logs,
            parallel=o.parallel,
            deadline=o.deadline,
        )
    return write_study_report(study, out)
