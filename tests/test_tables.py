"""The result tables of README.md and BENCHMARKS.md match their JSON files.

`benchmarks/make_tables.py` writes every table between `<!-- table:NAME -->`
markers from `benchmarks/results/*.json`. These tests run its `--check`
mode on the committed files, read a few rendered tables back from the
Markdown and compare their cells with the JSON values, and check that a
changed JSON value makes `--check` fail.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "make_tables.py"
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "README.md"
BENCHMARKS = ROOT / "BENCHMARKS.md"


def make_tables(*args, results=RESULTS, readme=README, benchmarks=BENCHMARKS):
    command = [sys.executable, str(SCRIPT), *args, "--results", str(results)]
    command += ["--readme", str(readme), "--benchmarks", str(benchmarks)]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def region(path: Path, name: str) -> str:
    text = path.read_text()
    start, end = f"<!-- table:{name} -->\n", f"<!-- /table:{name} -->"
    assert text.count(start) == 1 and text.count(end) == 1, name
    return text.split(start)[1].split(end)[0]


def rows(path: Path, name: str) -> list[dict]:
    """The first Markdown table of region `name`, as dicts by header."""
    lines = [x for x in region(path, name).splitlines() if x.startswith("|")]
    assert len(lines) > 2, f"no table in region {name}"

    def cells(line):
        return [c.strip() for c in line.strip().strip("|").split("|")]

    header = cells(lines[0])
    return [dict(zip(header, cells(line))) for line in lines[2:]]


def load(name: str) -> dict:
    return json.loads((RESULTS / name).read_text())


def test_committed_tables_are_up_to_date():
    result = make_tables("--check")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "path, name",
    [(BENCHMARKS, "gpu_cifar10_lt_h100"), (README, "gpu_summary")],
)
def test_gpu_table_equals_json(path, name):
    data = load("gpu_cifar10_lt_h100.json")
    table = rows(path, name)
    assert [r["method"] for r in table] == list(data["methods"])
    for row in table:
        m = data["methods"][row["method"]]
        assert row["last top-1"] == f"{100 * m['last']['top1']:.2f}"
        assert row["last medium"] == f"{100 * m['last']['medium']:.2f}"
        best = f"{100 * m['best']['top1']:.2f} ({m['best']['epoch']})"
        assert row["best top-1 (epoch)"] == best  # 0-based, as in the JSON
        assert row["images/s"] == f"{m['images_per_s']:,.0f}"
    assert f"{data['total_wall_s']:,.0f} s wall" in region(path, name)


def test_h100_step_table_and_slow_fits_equal_json():
    table = rows(BENCHMARKS, "train_step_h100_r11")
    expected = []
    for name in ("resnet32_r11", "head1000_r11"):
        expected += load(f"train_step_jax_h100_{name}.json")["rows"]
    assert len(table) == len(expected)
    for row, r in zip(table, expected):
        assert (row["case"], row["variant"]) == (r["case"], r["variant"])
        assert row["median per-round ratio"] == f"{r['ratio_paired']:.2f}"
        assert row["ratio of medians"] == f"{r['ratio']:.2f}"
        assert float(row["median step ms"]) == pytest.approx(
            r["step_ms"], abs=0.005
        )
    resnet = load("train_step_jax_h100_resnet32_r11.json")["rows"]
    dl2pa = next(r for r in resnet if r["variant"] == "dl2pa")
    slow = sum(t > 5.0 for t in dl2pa["times_ms"])
    assert f"dl2pa {slow}," in region(BENCHMARKS, "train_step_h100_r11")


def test_bar_table_lists_every_dl2pa_row_of_every_file():
    table = rows(BENCHMARKS, "train_step_bar")
    expected = {}
    for path in RESULTS.glob("train_step_*.json"):
        for r in json.loads(path.read_text())["rows"]:
            if r["variant"].startswith("dl2pa"):
                key = (f"`{path.name}`", r["case"], r["variant"])
                expected[key] = f"{r['ratio_paired']:.2f}"
    got = {
        (r["file"], r["case"], r["variant"]): r["median per-round ratio"]
        for r in table
    }
    assert got == expected


def test_reassign_table_equals_json():
    data = load("bench_reassign_quiet.json")
    table = rows(BENCHMARKS, "bench_reassign_quiet")
    assert len(table) == len(data["rows"])
    for row, r in zip(table, data["rows"]):
        assert int(row["classes"]) == r["classes"]
        assert float(row["median s"]) == pytest.approx(r["median_s"], rel=5e-3)
        assert row["solver"] == r["method"]


def test_quickstart_tables_equal_json():
    if not (RESULTS / "quickstart.json").exists():
        assert "not measured yet" in region(README, "quickstart_methods")
        return
    data = load("quickstart.json")
    table = rows(README, "quickstart_methods")
    assert [r["method"] for r in table] == [r["method"] for r in data["rows"]]
    for row, r in zip(table, data["rows"]):
        assert row["last top-1"] == f"{100 * r['last_top1']:.2f}"
        assert row["last medium"] == f"{100 * r['last_medium']:.2f}"
        assert row["best top-1 (epoch)"].endswith(f"({r['best_epoch']})")


def copy_docs(tmp_path: Path) -> tuple[Path, Path, Path]:
    results = tmp_path / "results"
    shutil.copytree(RESULTS, results)
    readme, benchmarks = tmp_path / "README.md", tmp_path / "BENCHMARKS.md"
    shutil.copy(README, readme)
    shutil.copy(BENCHMARKS, benchmarks)
    return results, readme, benchmarks


def test_changed_json_value_makes_check_fail(tmp_path):
    results, readme, benchmarks = copy_docs(tmp_path)
    paths = dict(results=results, readme=readme, benchmarks=benchmarks)
    assert make_tables("--check", **paths).returncode == 0
    path = results / "gpu_cifar10_lt_h100.json"
    data = json.loads(path.read_text())
    data["methods"]["dl2pa"]["last"]["top1"] = 0.1234
    path.write_text(json.dumps(data))

    result = make_tables("--check", **paths)
    assert result.returncode == 1
    assert "BENCHMARKS.md:gpu_cifar10_lt_h100" in result.stdout
    assert "README.md:gpu_summary" in result.stdout
    assert "bench_pipeline" not in result.stdout  # only the stale tables

    assert make_tables(**paths).returncode == 0  # rewrite
    assert make_tables("--check", **paths).returncode == 0
    row = rows(benchmarks, "gpu_cifar10_lt_h100")[0]
    assert row["method"] == "dl2pa" and row["last top-1"] == "12.34"


def test_fig4a_cpu_region_follows_its_file(tmp_path):
    results, readme, benchmarks = copy_docs(tmp_path)
    paths = dict(results=results, readme=readme, benchmarks=benchmarks)
    (results / "fig4a_cpu.json").unlink(missing_ok=True)
    assert make_tables(**paths).returncode == 0
    assert "not measured yet" in region(readme, "fig4a_cpu")

    row = {"setting": "cifar100_d10", "method": "dl2pa", "dim": 10}
    row.update(seeds_done=3, seeds=3, last_top1=0.41237, last_top1_std=0.0052)
    row.update(best_top1=0.4301, best_top1_std=0.0, paper_top1=51.2)
    row.update(wall_time_s=812.4, train_images_per_s=None)
    (results / "fig4a_cpu.json").write_text(json.dumps({"rows": [row]}))
    result = make_tables("--check", **paths)
    assert result.returncode == 1 and "README.md:fig4a_cpu" in result.stdout
    assert make_tables(**paths).returncode == 0
    (got,) = rows(readme, "fig4a_cpu")
    assert got["last top-1"] == "41.24 ± 0.52"
    assert got["best top-1"] == "43.01"  # a zero std is not printed
    assert got["paper top-1 (best test epoch)"] == "51.20"  # already in %
    assert got["seeds"] == "3/3" and got["wall s"] == "812"
    assert "keras-dlpa reproduce --grid fig4a_cpu" in region(
        readme, "fig4a_cpu"
    )


def _without_results_file(tmp_path, name):
    """Docs copied to `tmp_path` without `results/NAME.json`: its region
    reads "not measured yet". Returns `(results, paths, benchmarks)`."""
    results, readme, benchmarks = copy_docs(tmp_path)
    paths = dict(results=results, readme=readme, benchmarks=benchmarks)
    (results / f"{name}.json").unlink(missing_ok=True)
    assert make_tables(**paths).returncode == 0
    assert "not measured yet" in region(benchmarks, name)
    return results, paths, benchmarks


def test_prototype_curve_region_follows_its_file(tmp_path):
    name = "prototypes_10k_curve_quiet"
    results, paths, benchmarks = _without_results_file(tmp_path, name)

    def row(steps, seconds, top):
        return {
            "c": 10000, "d": 512, "adam_steps": steps, "seconds": seconds,
            "cpu_seconds": 2 * seconds, "seconds_per_step": seconds / steps,
            "min": -0.2, "max": top, "mean": -0.0001,
            "meets_goal": top <= 0.15 and seconds <= 120,
            "loadavg_before": [0.21, 0.3, 0.4], "loadavg_after": [1, 1, 1],
        }  # fmt: skip

    data = {
        "blas_threads": 2,
        "goal": {"max_cos": 0.15, "seconds": 120.0},
        "command": "python benchmarks/bench_prototypes.py --curve 10,80",
        "curve": [row(10, 14.2, 0.1121), row(80, 131.0, 0.0712)],
    }
    (results / f"{name}.json").write_text(json.dumps(data))
    result = make_tables("--check", **paths)
    assert result.returncode == 1 and f"BENCHMARKS.md:{name}" in result.stdout
    assert make_tables(**paths).returncode == 0
    got = rows(benchmarks, name)
    assert [r["Adam steps"] for r in got] == ["10", "80"]
    assert got[0]["seconds (wall)"] == "14.2" and got[0]["max cos"] == "0.1121"
    assert got[0]["s/step"] == "1.42" and got[0]["meets goal"] == "True"
    assert got[1]["meets goal"] == "False"  # too slow
    assert got[0]["load average before"] == "0.2/0.3/0.4"
    text = region(benchmarks, name)
    assert "(c, d) = (10000, 512)" in text and "--curve 10,80" in text


def test_inference_table_shows_flops_and_int8(tmp_path):
    results, readme, benchmarks = copy_docs(tmp_path)
    paths = dict(results=results, readme=readme, benchmarks=benchmarks)
    path = results / "bench_inference.json"
    data = json.loads(path.read_text())
    flops = 138_000_000
    data.update(flops_per_image=flops, int8_calibration="cifar10-jpeg-train")
    data["flops_counted"] = "2 x MACs of Conv/MatMul/Gemm in the ONNX graph"
    for r in data["throughput"]:
        r["gflop_per_s"] = r["images_per_s"] * flops / 1e9
    int8 = {"batch": 256, "runtime": "onnxruntime_int8"}
    int8.update(images_per_s=2000.0, vs_keras_predict=40.0, gflop_per_s=276.0)
    int8["int8_vs_fp32_onnx"] = 1.625
    data["throughput"].append(int8)
    data["int8_accuracy"] = {
        "run": "runs/resnet32", "val_images": 2000, "top1_fp32": 71.25,
        "top1_int8": 70.9, "top1_change_points": -0.35,
        "images_per_s_fp32": 1040.0, "images_per_s_int8": 1690.0,
        "int8_speedup": 1.625,
    }  # fmt: skip
    path.write_text(json.dumps(data))
    assert make_tables(**paths).returncode == 0
    got = rows(benchmarks, "bench_inference")[: len(data["throughput"])]
    for row, r in zip(got, data["throughput"], strict=True):
        assert row["runtime"] == r["runtime"]
        assert row["GFLOP/s"] == f"{r['gflop_per_s']:,.1f}"
    assert got[-1]["GFLOP/s"] == "276.0"
    text = region(benchmarks, "bench_inference")
    assert "FLOPs/image: 138.0 M (2 x MACs of Conv/MatMul/Gemm" in text
    assert "1.62x at batch 256" in text  # 1.625 rounds half to even
    assert "`runs/resnet32`" in text and "(2000 images)" in text
    lines = [x for x in text.splitlines() if x.startswith("|")]
    accuracy = lines[-1].strip("|").split("|")
    assert [c.strip() for c in accuracy] == [
        "71.25", "70.90", "-0.35", "1,040.0", "1,690.0", "1.62x"
    ]  # fmt: skip


def test_backend_train_step_region_follows_its_file(tmp_path):
    # `bench_train_step.py --backend-subprocess all`: one file, a row per
    # backend, variant and case; not a `train_step_*` file (the bar table).
    name = "bench_train_step_backends"
    results, paths, benchmarks = _without_results_file(tmp_path, name)
    data = {
        "machine": {"keras_backend": "tensorflow+jax+torch", "cores": 2},
        "command": "python benchmarks/bench_train_step.py "
        "--backend-subprocess all",
        "rows": [
            {"backend": backend, "case": "head1000", "variant": "dl2pa"}
            | {"step_ms": ms, "images_per_s": 128 / ms * 1000}
            | {"ratio_paired": 1.04, "times_ms": [ms, ms + 1]}
            for backend, ms in (("jax", 8.5), ("torch", 21.25))
        ],
    }
    (results / f"{name}.json").write_text(json.dumps(data))
    assert make_tables(**paths).returncode == 0
    got = rows(benchmarks, name)
    assert [(r["backend"], r["median step ms"]) for r in got] == [
        ("jax", "8.50"),
        ("torch", "21.25"),
    ]
    assert "backend tensorflow+jax+torch" in region(benchmarks, name)
    assert "--backend-subprocess all" in region(benchmarks, name)
