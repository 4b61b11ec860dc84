import json
import logging

import numpy as np
import pytest
from PIL import Image

from keras_dlpa.cli import main
from keras_dlpa.evaluation import classification_metrics
from keras_dlpa.report import label_order_similarity
from keras_dlpa.report import make_report

NAMES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]
ALL_PLOTS = {
    "curves.png",
    "per_class_accuracy.png",
    "assignment_changes.png",
    "prototype_similarity.png",
}


def _write_run(run_dir, method="dl2pa", epochs=6, seed=0):
    """A synthetic run directory following the run directory schema."""
    rng = np.random.default_rng(seed)
    c = len(NAMES)
    run_dir.mkdir(parents=True, exist_ok=True)
    counts = np.round(5000 * 0.01 ** (np.arange(c) / (c - 1))).astype(int)
    config = {
        "method": method,
        "num_classes": c,
        "dim": 16,
        "class_names": NAMES,
        "dataset": "synthetic",
        "seed": seed,
    }
    (run_dir / "config.json").write_text(json.dumps(config))
    rows = []
    for epoch in range(epochs):
        row = {
            "epoch": epoch,
            "loss": 2.0 / (epoch + 1),
            "accuracy": 0.3 + 0.1 * epoch,
            "val_top1": 0.25 + 0.08 * epoch,
            "val_top5": 0.6 + 0.05 * epoch,
            "val_many": 0.5 + 0.05 * epoch,
            "val_medium": 0.3 + 0.05 * epoch,
            "val_few": 0.1 + 0.05 * epoch,
            "learning_rate": 0.1,
        }
        if method == "dl2pa":
            row["assignment_changed"] = 0.6 / (epoch + 1)
            row["assignment_cost"] = -0.2 - 0.1 * epoch
        rows.append(row)
    (run_dir / "metrics.json").write_text(json.dumps(rows))
    labels = np.repeat(np.arange(c), 20)
    logits = rng.normal(size=(labels.size, c))
    logits[np.arange(labels.size), labels] += np.linspace(3, 0, c)[labels]
    last = classification_metrics(labels, logits, counts)
    best = classification_metrics(
        labels, logits + rng.normal(size=logits.shape), counts
    )
    evaluation = {
        "selection": "val_top1",
        "train_counts": counts.tolist(),
        "class_names": NAMES,
        "last": dict(last, epoch=epochs - 1),
        "best": dict(best, epoch=epochs - 2),
    }
    (run_dir / "evaluation.json").write_text(json.dumps(evaluation))
    if method == "dl2pa":
        w = rng.normal(size=(c, 16))
        w /= np.linalg.norm(w, axis=1, keepdims=True)
        np.savez(
            run_dir / "final_state.npz",
            prototypes=w.astype("float32"),
            assignment=rng.permutation(c),
        )
    return run_dir


def _check_png(path):
    assert path.is_file()
    assert path.stat().st_size > 10_000
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.verify()
    with Image.open(path) as image:
        assert image.width > 300 and image.height > 300
        pixels = np.asarray(image.convert("L"))
        assert pixels.std() > 5  # not a blank canvas


def test_report_writes_all_plots(tmp_path):
    run_dir = _write_run(tmp_path / "run")
    paths = make_report(run_dir)
    assert {p.name for p in paths} == ALL_PLOTS
    for path in paths:
        assert path.parent == run_dir / "plots"
        _check_png(path)


def test_report_without_final_state(tmp_path, caplog):
    run_dir = _write_run(tmp_path / "run", method="softmax")
    with caplog.at_level(logging.INFO, logger="keras_dlpa.report"):
        paths = make_report(run_dir, out_dir=tmp_path / "out")
    assert {p.name for p in paths} == {"curves.png", "per_class_accuracy.png"}
    for path in paths:
        assert path.parent == tmp_path / "out"
        _check_png(path)
    assert "final_state.npz" in caplog.text
    assert "assignment_changed" in caplog.text


def test_similarity_in_label_order(tmp_path):
    rng = np.random.default_rng(7)
    w = rng.normal(size=(7, 5)) * rng.uniform(0.5, 2, size=(7, 1))
    assignment = rng.permutation(7)
    got = label_order_similarity(w, assignment)
    for i in range(7):
        for j in range(7):
            a, b = w[assignment[i]], w[assignment[j]]
            cos = a @ b / np.sqrt((a @ a) * (b @ b))
            assert got[i, j] == pytest.approx(cos, abs=1e-12)
    # Many classes (no names on the axes) and a float assignment file.
    run_dir = _write_run(tmp_path / "run")
    np.savez(
        run_dir / "final_state.npz",
        prototypes=rng.normal(size=(40, 8)),
        assignment=rng.permutation(40).astype("float32"),
    )
    paths = make_report(run_dir)
    _check_png(paths[-1])
    np.savez(run_dir / "final_state.npz", prototypes=w, assignment=[0] * 7)
    with pytest.raises(ValueError, match="permutation"):
        make_report(run_dir)


def test_cli_report(tmp_path, capsys):
    run_dir = _write_run(tmp_path / "run")
    assert main(["report", str(run_dir)]) == 0
    out = capsys.readouterr().out
    for name in ALL_PLOTS:
        assert str(run_dir / "plots" / name) in out
    assert "epoch" in out and "medium" in out
    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    top1 = f"{100 * evaluation['last']['top1']:.2f}"
    assert any(
        line.split()[:3] == ["last", "5", top1] for line in out.splitlines()
    )


def test_missing_metrics_is_an_error(tmp_path, capsys):
    run_dir = _write_run(tmp_path / "run")
    (run_dir / "metrics.json").unlink()
    with pytest.raises(FileNotFoundError, match="metrics.json"):
        make_report(run_dir)
    assert main(["report", str(run_dir), "--quiet"]) == 2
    assert "metrics.json" in capsys.readouterr().err


def test_corrupt_config_is_an_error(tmp_path):
    run_dir = _write_run(tmp_path / "run")
    (run_dir / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json"):
        make_report(run_dir)
    (run_dir / "config.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="config.json"):
        make_report(run_dir)
