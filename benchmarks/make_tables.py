"""Writes the result tables of README.md and BENCHMARKS.md from the JSONs.

Every table that quotes a measured number lives between the markers
`<!-- table:NAME -->` and `<!-- /table:NAME -->` and is generated here
from `benchmarks/results/*.json`, with the file name and the command that
wrote the file (the JSON's `command` when it records one, else the
script's documented usage). Edit the JSON (by re-running the command),
never the table.

    python benchmarks/make_tables.py           # rewrite the regions
    python benchmarks/make_tables.py --check   # exit 1 naming stale tables

Accuracies are printed in percent with 2 decimals; epochs are 0-based,
as in the run directories' `metrics.json` and `evaluation.json`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOT_MEASURED = "not measured yet"

# Documented usage of the scripts whose JSON records no `command`.
COMMANDS = {
    "bench_inference.json": "python benchmarks/bench_inference.py",
    "bench_pipeline.json": "python benchmarks/bench_pipeline.py --real "
    "--repeats 3 --out benchmarks/results/bench_pipeline.json",
    "bench_reassign.json": "python benchmarks/bench_reassign.py",
    "bench_reassign_10k.json": "python benchmarks/bench_reassign.py "
    "--sizes 1000,5000,10000 --repeats 1 --skip-100k "
    "--out benchmarks/results/bench_reassign_10k.json",
    "bench_reassign_quiet.json": "OPENBLAS_NUM_THREADS=2 python "
    "benchmarks/bench_reassign.py --sizes 1000,10000 --repeats 3 "
    "--skip-100k --out benchmarks/results/bench_reassign_quiet.json",
    "bench_reassign_100k_quiet.json": "OPENBLAS_NUM_THREADS=2 python "
    'benchmarks/bench_reassign.py --sizes "" --stats near,random '
    "--out benchmarks/results/bench_reassign_100k_quiet.json",
    "prototypes.json": "python benchmarks/bench_prototypes.py",
    "prototypes_quiet.json": "python benchmarks/bench_prototypes.py "
    "--skip-large --skip-pairs --blas-threads 2 "
    "--out benchmarks/results/prototypes_quiet.json",
    "bench_reassign_warm_10k.json": "python benchmarks/bench_reassign.py "
    "--warm-start --sizes 10000 --stats near,random --skip-100k "
    "--out benchmarks/results/bench_reassign_warm_10k.json",
    "bench_reassign_warm_100k.json": "python benchmarks/bench_reassign.py "
    "--warm-start --sizes '' --stats near --no-verify "
    "--out benchmarks/results/bench_reassign_warm_100k.json",
    "fig4a_cpu.json": "keras-dlpa reproduce --grid fig4a_cpu --seeds 0,1,2 "
    "--parallel 2 "
    "&& cp runs/fig4a_cpu/report.json benchmarks/results/fig4a_cpu.json",
    "budget_cpu.json": "keras-dlpa reproduce --grid budget_cpu --parallel 2 "
    "&& cp runs/budget_cpu/report.json benchmarks/results/budget_cpu.json",
}


# ---------------------------------------------------------------- helpers


def pct(value) -> str:
    """A fraction 0-1 as a percentage with 2 decimals ("-" when None)."""
    return "-" if value is None else f"{100 * value:.2f}"


def ms(value: float) -> str:
    return f"{value:.1f}" if value >= 100 else f"{value:.2f}"


def num(value, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def source(name: str, data: dict) -> list[str]:
    """The line naming the file, its machine and the command that wrote it."""
    m = data.get("machine", {})
    where = [m.get("date", "?")[:16].replace("T", " ") + " UTC"]
    where += [m.get("cpu", "?"), f"{m.get('cores', '?')} cores"]
    where.append("backend " + m.get("keras_backend", "?"))
    if m.get("gpus"):
        where.append(f"{len(m['gpus'])} GPU")
    load = data.get("machine_load") or m.get("loadavg_1_5_15")
    if load:
        where.append(
            "load average " + "/".join(f"{float(x):.1f}" for x in load)
        )
    command = data.get("command") or COMMANDS.get(name, "(not recorded)")
    if m.get("keras_backend") == "jax" and "KERAS_BACKEND" not in command:
        command = "KERAS_BACKEND=jax " + command
    line = f"`benchmarks/results/{name}` ({', '.join(where)}), written by "
    line += f"`{command}`"
    out = re.search(r"--out (\S+)", command)
    if out and Path(out.group(1)).name != name:
        line += " (the file was renamed from that `--out`)"
    return [line + "."]


# -------------------------------------------------------------- renderers


def train_step(data: dict, per_round: bool = True) -> list[str]:
    """Step times and ratios against the softmax baseline of each row."""
    rows = data["rows"]
    cases = len({r["case"] for r in rows}) > 1
    mins = {(r["case"], r["variant"]): min(r["times_ms"]) for r in rows}
    header = ["variant", "median step ms", "images/s", "ratio of medians"]
    header += ["median per-round ratio", "ratio of mins"]
    body = []
    for r in rows:
        base = mins[(r["case"], r["baseline"])]
        row = [r["variant"], ms(r["step_ms"]), num(r["images_per_s"])]
        row += [f"{r['ratio']:.2f}", f"{r['ratio_paired']:.2f}"]
        row.append(f"{mins[(r['case'], r['variant'])] / base:.2f}")
        if per_round:
            row.append(", ".join(ms(t) for t in r["times_ms"]))
        body.append(([r["case"]] if cases else []) + row)
    header = (["case"] if cases else []) + header
    return table(header + (["step ms per round"] if per_round else []), body)


def train_step_backends(data: dict) -> list[str]:
    """One run on every backend (`--backend-subprocess all`)."""
    header = ["backend", "case", "variant", "median step ms", "images/s"]
    header += ["median per-round ratio", "step ms per round"]
    body = [
        [r["backend"], r["case"], r["variant"], ms(r["step_ms"])]
        + [num(r["images_per_s"]), f"{r['ratio_paired']:.2f}"]
        + [", ".join(ms(t) for t in r["times_ms"])]
        for r in data["rows"]
    ]
    return table(header, body)


def train_step_profile(data: dict) -> list[str]:
    keys = ("jaxpr_eqns", "stablehlo_ops", "host_callbacks")
    keys += ("compiled_fusions", "compiled_instructions")
    header = ["variant", "jaxpr eqns", "StableHLO ops", "host callbacks"]
    header += ["compiled fusions", "compiled instructions"]
    return table(
        header, [[p["variant"]] + [p[k] for k in keys] for p in data["profile"]]
    )


def slow_fits(data: dict, threshold_ms: float = 5.0) -> list[str]:
    counts = ", ".join(
        f"{r['variant']} {sum(t > threshold_ms for t in r['times_ms'])}"
        for r in data["rows"]
    )
    n = len(data["rows"][0]["times_ms"])
    return [f"fits slower than {threshold_ms} ms per step, of {n}: {counts}."]


def by_machine(files: dict[str, dict]):
    """(file, "CPU" or "GPU", row) for every DL2PA row of the files."""
    for name, data in sorted(files.items()):
        kind = "GPU" if data["machine"].get("gpus") else "CPU"
        for r in data["rows"]:
            if r["variant"].startswith("dl2pa"):
                yield name, kind, r


def ratio_ranges(files: dict[str, dict]) -> list[str]:
    """Range and worst run of the per-round ratio, per machine kind."""
    lines = []
    for variant in ("dl2pa", "dl2pa_soft"):
        for kind in ("CPU", "GPU"):
            values = sorted(
                (r["ratio_paired"], name)
                for name, k, r in by_machine(files)
                if k == kind and r["variant"] == variant
            )
            if values:
                lines.append(
                    f"- `{variant}` on {kind}: median per-round ratio "
                    f"{values[0][0]:.2f} to {values[-1][0]:.2f} over "
                    f"{len(values)} runs (the worst: `{values[-1][1]}`)."
                )
    return lines


def train_step_bar(files: dict[str, dict]) -> list[str]:
    """Every DL2PA row of every training-step file, against the 5% bar."""
    body = [
        [f"`{name}`", kind, r["case"], r["variant"], f"{r['ratio']:.2f}"]
        + [
            f"{r['ratio_paired']:.2f}",
            "yes" if round(r["ratio_paired"], 2) <= 1.05 else "**no**",
        ]
        for name, kind, r in by_machine(files)
    ]
    header = ["file", "machine", "case", "variant", "ratio of medians"]
    header += ["median per-round ratio", "per-round ratio <= 1.05"]
    return ratio_ranges(files) + [""] + table(header, body)


def gpu_lt(data: dict) -> list[str]:
    header = ["method", "epochs", "last top-1", "best top-1 (epoch)"]
    header += ["last many", "last medium", "last top-5", "images/s"]
    header += ["train s", "wall s"]
    body = []
    for name, m in data["methods"].items():
        last, best = m["last"], m["best"]
        body.append(
            [name, m["epochs_run"], pct(last["top1"])]
            + [f"{pct(best['top1'])} ({best['epoch']})", pct(last["many"])]
            + [pct(last["medium"]), pct(last["top5"]), num(m["images_per_s"])]
            + [num(m["train_s"]), num(m["wall_s"])]
        )
    total = f"All methods at once: {num(data['total_wall_s'])} s wall."
    return table(header, body) + ["", total + changed(data)]


def gpu_lowdim(data: dict) -> list[str]:
    header = ["method", "epochs", "last top-1", "best top-1 (epoch)"]
    header += ["last top-5", "images/s", "train s", "wall s"]
    body = []
    for name, m in data["methods"].items():
        best = m["best"]
        body.append(
            [name, m["epochs_run"], pct(m["last"]["top1"])]
            + [f"{pct(best['top1'])} ({best['epoch']})", pct(m["last"]["top5"])]
            + [num(m["images_per_s"]), num(m["train_s"]), num(m["wall_s"])]
        )
    return table(header, body) + ["", changed(data).strip()]


def changed(data: dict) -> str:
    m = data["methods"].get("dl2pa", {})
    epochs = [i for i, v in enumerate(m.get("assignment_changed", [])) if v]
    if not epochs:
        return ""
    listed = ", ".join(str(e) for e in epochs)
    return f" The dl2pa assignment changed in epochs {listed} only."


def prototypes(data: dict) -> list[str]:
    seen, body = set(), []
    for r in data["headline"] + data["reference_bars"]:
        if (r["c"], r["d"]) in seen:
            continue
        seen.add((r["c"], r["d"]))
        bar = r.get("bar_max")
        body.append(
            [r["c"], r["d"], r["seconds"], r["cpu_seconds"], r["min"]]
            + [r["max"], "-" if bar is None else bar, r.get("meets_bar", "-")]
        )
    header = ["c", "d", "seconds (wall)", "CPU s", "min cos", "max cos"]
    return table(header + ["bar (reference)", "meets bar"], body)


def prototypes_curve(data: dict) -> list[str]:
    """Quality/time curve of the full-batch Adam optimiser (one run each)."""
    goal = data["goal"]
    rows = data["curve"]
    c, d = rows[0]["c"], rows[0]["d"]
    lines = [
        f"(c, d) = ({c}, {d}); one `estimate_prototypes(c, d, "
        f'optimizer="adam", adam_steps=n)` per row, {data["blas_threads"]} '
        f"BLAS threads. Goal: max cosine <= {goal['max_cos']:g} within "
        f"{goal['seconds']:g} s.",
        "",
    ]
    body = [
        [r["adam_steps"], f"{r['seconds']:.1f}", f"{r['cpu_seconds']:.1f}"]
        + [f"{r['seconds_per_step']:.2f}", f"{r['max']:.4f}"]
        + [f"{r['mean']:.5f}", r["meets_goal"]]
        + ["/".join(f"{x:.1f}" for x in r["loadavg_before"])]
        for r in rows
    ]
    header = ["Adam steps", "seconds (wall)", "CPU s", "s/step", "max cos"]
    header += ["mean cos", "meets goal", "load average before"]
    return lines + table(header, body)


def reassign(data: dict) -> list[str]:
    rows = data["rows"]
    dense = {
        (r["classes"], r["dim"], r["stats"]): r["cost"]
        for r in rows
        if r["method"] == "dense"
    }
    cpu = any("median_cpu_s" in r for r in rows)
    body = []
    for r in rows:
        key = (r["classes"], r["dim"], r["stats"])
        gap = "-"
        if r["method"] != "dense" and key in dense:
            gap = f"{r['cost'] - dense[key]:.3g}"
        cells = [r["classes"], r["dim"], r["stats"], r["method"]]
        cells.append(f"{r['median_s']:.3g}")
        if cpu:
            cpu_s = r.get("median_cpu_s")
            cells.append("-" if cpu_s is None else f"{cpu_s:.3g}")
        cells += [f"{r['peak_rss_mb']:.0f}", r["planted_recovered"], gap]
        body.append(cells)
    header = ["classes", "d", "statistics", "solver", "median s"]
    header += ["CPU s"] if cpu else []
    header += ["peak RSS MB", "planted recovered", "cost gap vs dense"]
    return table(header, body)


def reassign_warm(data: dict) -> list[str]:
    """Warm-started sparse matching against a cold solve of the same input."""
    body = []
    for r in data["rows"]:
        cold = r.get("cold_s")
        body.append(
            [r["classes"], r["dim"], r["stats"], f"{r['first_solve_s']:.3g}"]
            + [f"{r['median_s']:.3g}", "-" if cold is None else f"{cold:.3g}"]
            + [r["priced_rows"], r.get("identical_to_cold", "not checked")]
            + [f"{r['peak_rss_mb']:.0f}"]
        )
    header = ["classes", "d", "statistics", "first (cold) s", "warm s"]
    header += ["cold s, same input", "rows priced", "identical to cold"]
    return table(header + ["peak RSS MB"], body)


def pipeline(data: dict) -> list[str]:
    executors = any("executor" in r for r in data["results"])
    # `--backend-subprocess`: grain through each backend's Keras adapter.
    backends = any("backend" in r for r in data["results"])
    body = [
        [r["pipeline"]]
        + ([r.get("executor", "tf")] if executors else [])
        + ([r.get("backend", "-")] if backends else [])
        + [r["images_per_epoch"], num(r["images_per_s_median"])]
        + [num(r["images_per_s_min"])]
        for r in data["results"]
    ]
    header = ["pipeline"] + (["executor"] if executors else [])
    header += ["Keras backend"] if backends else []
    header += ["images per epoch", "median images/s"]
    return table(header + ["min images/s"], body)


def inference(data: dict) -> list[str]:
    """Throughput per runtime, GFLOP/s, the int8 speed-up and its top-1."""
    parity = data["parity"]
    diffs = ", ".join(
        f"{k} {v['max_abs_logit_diff']:.2g}"
        for k, v in parity["backends"].items()
    )
    flops = data.get("flops_per_image")
    lines = [
        f"Model: {data['model']}; {data['repeats']} repeats. Parity (batch "
        f"{parity['batch_size']}, tolerance {parity['tolerance']:g}): passed "
        f"= {parity['passed']}; max abs logit difference: {diffs}.",
    ]
    if flops:
        lines.append(
            f"FLOPs/image: {flops / 1e6:.1f} M ("
            + data.get("flops_counted", "counted on the ONNX graph")
            + "); GFLOP/s = images/s x FLOPs/image (int8: the same "
            "operations in int8)."
        )
    if data.get("int8_calibration"):
        lines.append(f"int8 calibration images: {data['int8_calibration']}.")
    lines.append("")

    def gflops(r):
        if "gflop_per_s" in r:
            return num(r["gflop_per_s"], 1)
        return num(r["images_per_s"] * flops / 1e9, 1) if flops else "-"

    body = [
        [r["batch"], r["runtime"], num(r["images_per_s"], 1)]
        + [f"{r['vs_keras_predict']:.2f}x", gflops(r)]
        for r in data["throughput"]
    ]
    header = ["batch", "runtime", "images/s", "vs keras predict", "GFLOP/s"]
    out = lines + table(header, body)
    speedups = [
        f"{r['int8_vs_fp32_onnx']:.2f}x at batch {r['batch']}"
        for r in data["throughput"]
        if "int8_vs_fp32_onnx" in r
    ]
    if speedups:
        out += [
            "",
            "int8 / float32 ONNX Runtime images/s (untrained weights): "
            + ", ".join(speedups)
            + ".",
        ]
    accuracy = data.get("int8_accuracy")
    if accuracy:
        out += [
            "",
            f"int8 on a trained model: `{accuracy['run']}`"
            + (
                f" ({accuracy['flops_per_image'] / 1e6:.1f} MFLOPs/image)"
                if accuracy.get("flops_per_image")
                else ""
            )
            + f", top-1 on its validation split ({accuracy['val_images']} "
            "images), images/s at batch 256 (goal: int8 >= 1.5x the float32 "
            "images/s, <= 0.5 points of top-1 lost):",
            "",
        ]
        out += table(
            ["top-1 fp32 %", "top-1 int8 %", "change (points)"]
            + ["fp32 images/s", "int8 images/s", "int8 speed-up"],
            [
                [f"{accuracy['top1_fp32']:.2f}", f"{accuracy['top1_int8']:.2f}"]
                + [f"{accuracy['top1_change_points']:+.2f}"]
                + [num(accuracy["images_per_s_fp32"], 1)]
                + [num(accuracy["images_per_s_int8"], 1)]
                + [f"{accuracy['int8_speedup']:.2f}x"]
            ],
        )
    return out


def inference_head(data: dict) -> list[str]:
    body = [
        [r["batch"], r["runtime"], num(r["backbone_images_per_s"], 1)]
        + [num(r["serving_images_per_s"], 1), num(r["head_overhead_pct"], 1)]
        for r in data["head_cost"]
    ]
    header = ["batch", "runtime", "backbone images/s", "serving images/s"]
    return table(header + ["head overhead %"], body)


def quickstart(data: dict, methods: tuple[str, ...] = ()) -> list[str]:
    body = []
    for r in data["rows"]:
        if methods and r["method"] not in methods:
            continue
        load = "/".join(f"{x:.1f}" for x in r["loadavg_before"])
        body.append(
            [r["method"], pct(r["last_top1"])]
            + [f"{pct(r['best_top1'])} ({r['best_epoch']})"]
            + [pct(r[f"last_{k}"]) for k in ("top5", "many", "medium", "few")]
            + [num(r["wall_time_s"]), load]
        )
    header = ["method", "last top-1", "best top-1 (epoch)", "last top-5"]
    header += ["last many", "last medium", "last few", "wall s"]
    return table(header + ["load average before"], body)


def fig4a_cpu(data: dict) -> list[str]:
    """Rows of `keras_dlpa_paper.reproduce.summarise` (paper top-1 is in %)."""

    def mean_std(row, key):
        std = row.get(f"{key}_std")
        text = pct(row.get(key))
        return text if not std else f"{text} ± {pct(std)}"

    header = ["setting", "method", "d", "seeds", "last top-1", "best top-1"]
    header += ["last many", "last medium", "last few"]
    header += ["paper top-1 (best test epoch)", "wall s", "train images/s"]
    body = []
    for r in data["rows"]:
        paper = r.get("paper_top1")
        seeds = f"{r.get('seeds_done')}/{r.get('seeds', '?')}"
        body.append(
            [r.get("setting"), r.get("method"), r.get("dim"), seeds]
            + [mean_std(r, "last_top1"), mean_std(r, "best_top1")]
            + [mean_std(r, f"last_{k}") for k in ("many", "medium", "few")]
            + ["-" if paper is None else f"{paper:.2f}"]
            + [num(r.get("wall_time_s")), num(r.get("train_images_per_s"))]
        )
    return table(header, body)


def budget_selection(data: dict) -> list[str]:
    """The learning-rate selection of a `keras_dlpa_paper.study` report."""
    lrs = [f"{lr:g}" for lr in data["learning_rates"]]
    header = ["variant", "d"] + [f"lr {lr}" for lr in lrs] + ["chosen"]
    body = [
        [r["variant"], r["dim"]]
        + [pct(r["val_top1_by_lr"].get(lr)) for lr in lrs]
        + ["-" if r["chosen_lr"] is None else f"{r['chosen_lr']:g}"]
        for r in data["selection"]
    ]
    return table(header, body)


def budget_curve(data: dict) -> list[str]:
    """The budget rows of a `keras_dlpa_paper.study` report (mean ± std)."""
    header = ["variant", "d", "lr", "epochs", "seeds", "val top-1 (last)"]
    header += ["train accuracy (last epoch)", "wall s"]
    body = []
    for r in data["rows"]:
        top1 = pct(r["val_top1_mean"])
        if r["seeds_done"] > 1:
            top1 += f" ± {pct(r['val_top1_std'])}"
        train = ", ".join(pct(a) for a in r["train_accuracy_last_epoch"])
        wall = [w for w in r["wall_time_s"] if w is not None]
        body.append(
            [r["variant"], r["dim"], f"{r['lr']:g}", r["epochs"]]
            + [f"{r['seeds_done']}/{r['seeds']}", top1, train or "-"]
            + [num(sum(wall) / len(wall)) if wall else "-"]
        )
    return table(header, body)


def decode_speed(data: dict) -> list[str]:
    """Decode + augment images/s of the streamed ImageNet input."""
    load = data.get("loadavg_before")
    lines = [
        f"{data['augmentation']} at {data['image_size']} px, batches of 64; "
        f"median of {data.get('repeats', 1)} passes over "
        f"{data.get('images_per_pass', '?')} images; load average before "
        + ("/".join(str(v) for v in load) if load else "not recorded")
        + ".",
        "",
    ]
    body = [
        ["one process", num(data["images_per_s_one_process"], 1)],
        [
            "grain, 2 worker processes",
            num(data["images_per_s_grain_2_workers"], 1),
        ],
    ]
    return lines + table(["executor", "images/s"], body)


def fit_budget(data: dict) -> list[str]:
    """Where a recipe run's time goes, and device vs grain executor."""
    lines = [
        f"Start-up (fresh interpreter importing the runner): "
        f"{data['startup_import_s']:.2f} s.",
        "",
    ]
    names = (
        "checkpoint", "weights_save", "model_save", "best_copy", "sha256",
        "validation", "metrics_files", "reassignment",
    )  # fmt: skip
    body = []
    for run in data["budget"]:
        config = run["config"]
        callbacks = run["callbacks_s_per_epoch"]
        body.append(
            [
                config["checkpoint_every"],
                config["train_images"],
                num(run["before_fit_s"], 1),
                num(run["first_epoch_compile_s"], 1),
                num(run["train_s_per_epoch"], 2),
                *(num(callbacks[n]["mean_s"], 3) for n in names),
                num(run["after_fit_s"], 1),
                num(run["wall_s"], 1),
            ]
        )
    header = [
        "checkpoint every", "train images", "before fit s",
        "first-epoch compile s", "train s/epoch",
        *(f"{n} s/epoch" for n in names), "after fit s", "wall s",
    ]  # fmt: skip
    lines += table(header, body) + [""]
    return lines + compared(data["executors"], "executor")


def compared(part: dict, key: str) -> list[str]:
    """Alternating runs of two settings and the ratio of their images/s."""
    rows = [
        [
            r["pair"],
            r[key],
            num(r["train_images_per_s"], 1),
            num(r["wall_s"], 1),
            pct(r["last_top1"]),
        ]
        for r in part["runs"]
    ]
    lines = table(["pair", key, "train images/s", "wall s", "last top-1"], rows)
    name = next(k for k in part if k.startswith("ratio_"))
    ratios = ", ".join(f"{v:.3f}" for v in part[name])
    label = name[len("ratio_") :].replace("_over_", " / ")
    lines += [
        "",
        f"{label} images/s per pair: {ratios} (median "
        f"{part['median_ratio']:.3f}); identical top-1: "
        f"{part['same_top1']}.",
    ]
    return lines


def one(renderer, **kwargs):
    """A renderer of the only loaded file."""
    return lambda files: renderer(next(iter(files.values())), **kwargs)


def merged(renderer, **kwargs):
    """A renderer of the rows of all loaded files, in order."""

    def render(files):
        rows = [r for data in files.values() for r in data["rows"]]
        return renderer({"rows": rows}, **kwargs)

    return render


def h100_r11(files: dict[str, dict]) -> list[str]:
    resnet = files["train_step_jax_h100_resnet32_r11.json"]
    body = merged(train_step, per_round=False)(files)
    return body + ["", "ResNet-32: " + slow_fits(resnet)[0]]


R, B = "README.md", "BENCHMARKS.md"
H = "train_step_jax_h100_"
R11 = [H + "resnet32_r11.json", H + "head1000_r11.json"]
SHORT = [H + "resnet32.json", H + "head1000.json"]
JAX_HEAD = ["train_step_jax_head1000.json"]
TS = "train_step_*.json"
# NAME: (document, renderer of {file: data}[, files or a glob]); the
# files default to [NAME.json].
TABLES = {
    "quickstart": (R, one(quickstart, methods=("dl2pa",))),
    "quickstart_methods": (R, one(quickstart), ["quickstart.json"]),
    "quickstart_amd_epyc": (R, one(quickstart)),
    "fig4a_cpu": (R, one(fig4a_cpu)),
    "budget_cpu_selection": (R, one(budget_selection), ["budget_cpu.json"]),
    "budget_cpu": (R, one(budget_curve)),
    "inference_summary": (R, one(inference), ["bench_inference.json"]),
    "gpu_summary": (R, one(gpu_lt), ["gpu_cifar10_lt_h100.json"]),
    "train_step_ratios": (R, ratio_ranges, TS),
    "train_step_jax_head1000": (B, one(train_step)),
    "train_step_jax_head1000_profile": (B, one(train_step_profile), JAX_HEAD),
    "train_step_tensorflow_head1000": (B, one(train_step)),
    "train_step_tensorflow_resnet32": (B, one(train_step)),
    "train_step_jax_resnet32": (B, one(train_step)),
    "train_step_tensorflow_head1000_soft": (B, one(train_step, per_round=0)),
    "train_step_h100_r11": (B, h100_r11, R11),
    "train_step_h100_short": (B, merged(train_step, per_round=False), SHORT),
    "train_step_h100_profile": (B, one(train_step_profile), SHORT[1:]),
    "train_step_h100_fit": (
        B,
        one(train_step, per_round=0),
        [H + "resnet32_fit.json"],
    ),
    "train_step_bar": (B, train_step_bar, TS),
    "bench_train_step_backends": (B, one(train_step_backends)),
    "bench_train_step_backends_resnet32": (B, one(train_step_backends)),
    "prototypes_quiet": (B, one(prototypes)),
    "prototypes_10k_curve_quiet": (B, one(prototypes_curve)),
    "prototypes": (B, one(prototypes)),
    "bench_reassign_quiet": (B, one(reassign)),
    "bench_reassign_100k_quiet": (B, one(reassign)),
    "bench_reassign": (B, one(reassign)),
    "bench_reassign_10k": (B, one(reassign)),
    "bench_reassign_warm_10k": (B, one(reassign_warm)),
    "bench_reassign_warm_100k": (B, one(reassign_warm)),
    "bench_pipeline": (B, one(pipeline)),
    "bench_inference": (B, one(inference)),
    "imagenet_decode_speed": (B, one(decode_speed)),
    "fit_budget": (B, one(fit_budget)),
    "fit_precision_cpu": (
        B,
        one(lambda data: compared(data["precision"], "precision")),
    ),
    "bench_inference_head": (B, one(inference_head), ["bench_inference.json"]),
    "gpu_cifar10_lt_h100": (B, one(gpu_lt)),
    "gpu_cifar10_lowdim_h100": (B, one(gpu_lowdim)),
}


def files_of(name: str):
    spec = TABLES[name]
    return spec[2] if len(spec) > 2 else [f"{name}.json"]


# ------------------------------------------------------------------ driver


def load(results: Path, files) -> dict[str, dict] | None:
    paths = (
        sorted(results.glob(files))
        if isinstance(files, str)
        else [results / f for f in files]
    )
    if not paths or not all(p.exists() for p in paths):
        return None
    return {p.name: json.loads(p.read_text()) for p in paths}


def render(name: str, results: Path) -> str:
    """The body of region `name`: source lines, a blank line, the table."""
    renderer, files = TABLES[name][1], files_of(name)
    loaded = load(results, files)
    if loaded is None:
        return f"*{NOT_MEASURED}* (no `benchmarks/results/{files[0]}`)."
    sources = [line for n, d in loaded.items() for line in source(n, d)]
    if len(sources) == 1:
        return "\n".join(sources + [""] + renderer(loaded))
    files = ["Files:", ""] + ["- " + line for line in sources]
    return "\n".join(renderer(loaded) + [""] + files)


def regenerate(text: str, names: list[str], results: Path, doc: str) -> str:
    """`text` with the regions `names` rewritten from `results`."""
    for name in names:
        start, end = f"<!-- table:{name} -->\n", f"<!-- /table:{name} -->"
        if text.count(start) != 1 or text.count(end) != 1:
            raise SystemExit(f"{doc}: needs one `{start.strip()}` ... `{end}`.")
        head, rest = text.split(start)
        tail = rest.split(end)[1]
        text = head + start + render(name, results) + "\n" + end + tail
    return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--results", default=ROOT / "benchmarks" / "results")
    parser.add_argument("--readme", default=ROOT / "README.md")
    parser.add_argument("--benchmarks", default=ROOT / "BENCHMARKS.md")
    args = parser.parse_args(argv)
    stale = []
    for doc, path in (
        ("README.md", args.readme),
        ("BENCHMARKS.md", args.benchmarks),
    ):
        path = Path(path)
        names = [n for n, spec in TABLES.items() if spec[0] == doc]
        old = path.read_text()
        for name in names:
            single = regenerate(old, [name], Path(args.results), doc)
            if single != old:
                stale.append(f"{doc}:{name}")
        new = regenerate(old, names, Path(args.results), doc)
        if not args.check and new != old:
            path.write_text(new)
    if args.check and stale:
        print(
            "stale tables (run benchmarks/make_tables.py): " + ", ".join(stale)
        )
        return 1
    print("tables up to date" if args.check else f"rewrote {len(stale)} tables")
    return 0


if __name__ == "__main__":
    sys.exit(main())
