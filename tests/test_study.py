"""The tuned budget study (`keras-dlpa reproduce --grid budget_cpu`):
selection, the budget jobs, the report, on synthetic run directories."""

import json

import pytest

from keras_dlpa.cli import main as cli_main
from keras_dlpa_paper import study
from keras_dlpa_paper.study import STUDIES
from keras_dlpa_paper.study import BudgetStudy
from keras_dlpa_paper.study import Variant

SMALL = BudgetStudy(
    name="small",
    title="small",
    recipe="cifar100",
    dims=(10,),
    variants=(
        Variant("softmax", "softmax"),
        Variant("dl2pa", "dl2pa", ("--loss-scale", "128")),
        Variant("static", "static", ("--loss-scale", "128"), (15,), 1),
    ),
    learning_rates=(0.01, 0.05, 0.25),
    select_epochs=15,
    budgets=(15, 40),
    seeds={15: (0, 1)},
    args=("--depth", "8"),
)


def _finish(out, name, top1, completed=True, accuracy=0.5):
    run = out / "runs" / name
    run.mkdir(parents=True)
    evaluation = {"completed": completed, "last": {"top1": top1}}
    (run / "evaluation.json").write_text(json.dumps(evaluation))
    history = [{"epoch": 0, "accuracy": accuracy, "val_top1": top1}]
    (run / "metrics.json").write_text(json.dumps(history))


def test_schedule_scales_with_the_budget():
    assert study.schedule_args(15) == [
        "--epochs", "15", "--warmup-epochs", "1", "--milestones", "6,12",
    ]  # fmt: skip
    assert study.schedule_args(80)[-1] == "32,64"
    assert study.schedule_args(1) == ["--epochs", "1", "--warmup-epochs", "1"]


def test_every_variant_gets_the_same_grid_and_schedule(tmp_path):
    jobs = study.selection_jobs(SMALL, tmp_path, data="d.tar.gz")
    assert len(jobs) == 3 * 3
    for job in jobs:
        args = job.args
        assert args[args.index("--epochs") + 1] == "15"
        assert args[args.index("--seed") + 1] == "0"
        assert args[args.index("--image-dir") + 1] == "d.tar.gz"
    lrs = {j.name.split("-")[0]: j.args[j.args.index("--lr") + 1] for j in jobs}
    assert set(lrs) == {"softmax", "dl2pa", "static"}
    dl2pa = [j for j in jobs if j.name.startswith("dl2pa")]
    assert all("--loss-scale" in j.args for j in dl2pa)


def test_selection_picks_the_best_finished_rate_per_variant(tmp_path):
    _finish(tmp_path, "softmax-d10-lr0.01-e15-s0", 0.10)
    _finish(tmp_path, "softmax-d10-lr0.05-e15-s0", 0.20)
    _finish(tmp_path, "softmax-d10-lr0.25-e15-s0", 0.15)
    _finish(tmp_path, "dl2pa-d10-lr0.01-e15-s0", 0.30)
    _finish(tmp_path, "dl2pa-d10-lr0.05-e15-s0", 0.90, completed=False)
    # dl2pa at 0.25 diverged: no evaluation.json. static: nothing ran.
    chosen = study.selection(SMALL, tmp_path)
    assert chosen[("softmax", 10)]["lr"] == 0.05
    assert chosen[("dl2pa", 10)]["lr"] == 0.01
    assert chosen[("dl2pa", 10)]["scores"][0.25] is None
    assert chosen[("static", 10)]["lr"] is None
    names = [j.name for j in study.budget_jobs(SMALL, tmp_path, chosen)]
    # Longest budget first; static has no rate; seed 1 at 15 only.
    assert names == [
        "softmax-d10-lr0.05-e40-s0",
        "dl2pa-d10-lr0.01-e40-s0",
        "softmax-d10-lr0.05-e15-s0",
        "dl2pa-d10-lr0.01-e15-s0",
        "softmax-d10-lr0.05-e15-s1",
        "dl2pa-d10-lr0.01-e15-s1",
    ]


def test_report_rows_and_plots(tmp_path):
    for lr, top1 in ((0.01, 0.1), (0.05, 0.2), (0.25, 0.15)):
        _finish(tmp_path, f"softmax-d10-lr{lr:g}-e15-s0", top1)
        _finish(tmp_path, f"dl2pa-d10-lr{lr:g}-e15-s0", top1 / 2)
        _finish(tmp_path, f"static-d10-lr{lr:g}-e15-s0", top1 / 4)
    _finish(tmp_path, "softmax-d10-lr0.05-e15-s1", 0.24)
    _finish(tmp_path, "softmax-d10-lr0.05-e40-s0", 0.3, accuracy=0.8)
    report = study.write_study_report(SMALL, tmp_path)
    rows = {(r["variant"], r["epochs"]): r for r in report["rows"]}
    assert rows[("softmax", 15)]["val_top1"] == [0.2, 0.24]
    assert rows[("softmax", 15)]["val_top1_mean"] == pytest.approx(0.22)
    assert rows[("softmax", 40)]["train_accuracy_last_epoch"] == [0.8]
    assert rows[("dl2pa", 40)]["seeds_done"] == 0
    assert ("static", 40) not in rows
    selection = {r["variant"]: r for r in report["selection"]}
    assert selection["static"]["val_top1_by_lr"]["0.05"] == 0.05
    text = (tmp_path / "report.md").read_text()
    assert "| softmax | 10 | 10.00 | 20.00 | 15.00 | 0.05 |" in text
    assert "| softmax | 10 | 0.05 | 15 | 2/2 | 22.00 ± 2.00 |" in text
    for plot in report["plots"]:
        assert (tmp_path / plot).stat().st_size > 0
    assert json.loads((tmp_path / "report.json").read_text())["machine"]


def test_reproduce_runs_the_study_from_the_cli(tmp_path, capsys):
    # --report-only: the report of the runs on disk, through the CLI.
    _finish(tmp_path, "softmax-d10-lr0.05-e15-s0", 0.2)
    code = cli_main(
        ["reproduce", "--grid", "budget_cpu", "--out", str(tmp_path)]
        + ["--report-only"]
    )
    assert code == 0
    assert "Report:" in capsys.readouterr().out
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["study"] == "budget_cpu"
    variants = [v.label for v in STUDIES["budget_cpu"].variants]
    assert [r["variant"] for r in report["selection"]] == variants
