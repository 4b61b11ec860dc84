"""Training-step overhead of the DL2PA head vs a softmax head.

Same backbone, two heads: `PrototypeLayer` + `IPMLoss` (with the class
statistics gathered in the step) vs `Dense(c)` + cross-entropy. Bar: the
DL2PA step is at most 5% slower. Cases:

- `resnet32`: CIFAR ResNet-32 (`keras_dlpa.models`, long-tailed variant,
  width 16, d = 64), c = 10, batch 128, 32x32 images.
- `head1000`: a small MLP backbone (256 -> 512 + BatchNorm, d = 512) and a
  c = 1000 head, batch 128: the head is a large share of the step.

Variants (sparse labels unless "soft"): `softmax`, `dl2pa` (defaults:
statistics on, label check on), `dl2pa_nocheck` (`validate_labels=False`),
`dl2pa_nostats` (`track_statistics=False`), `dl2pa_nocheck_nostats`,
`dl2pa_cs` (`class_scale=True`), `softmax_soft` / `dl2pa_soft` (mixup-like
soft labels (B, c), class scale on, as in the long-tailed recipe;
`dl2pa_soft_nostats` without the statistics),
`dl2pa_fit` (`dl2pa` trained with `ReassignCallback()`, as a real run is:
one reassignment at the end of each timed fit) and `dl2pa_fit_sync` (the
same plus a no-op batch hook, which makes Keras fetch every step's logs
from the device: what `ReassignCallback` cost before it dropped its batch
hook).

Each timing is one `model.fit` epoch of `--steps` batches on synthetic
in-memory arrays, after a warm-up fit (compilation). Repeats are
interleaved over the variants (round robin, shuffled order per round) so
that load from other jobs hits every variant alike; the table gives the
median step time and the ratio to the softmax variant of the same case and
label kind. One backend per process (KERAS_BACKEND, default tensorflow);
`--backend-subprocess both` runs TF and JAX one after the other (a file
each); `--backend-subprocess all` runs TF, JAX and PyTorch one after the
other and writes one file with every backend's rows (`backend` column;
default
`benchmarks/results/bench_train_step_backends.json`).

`--profile` (JAX only) lowers the jitted train step of each variant and
counts jaxpr equations, StableHLO ops, host callbacks and the fusions of
the compiled (XLA) program, a proxy for kernel launches on a GPU.

    python benchmarks/bench_train_step.py
    KERAS_BACKEND=jax python benchmarks/bench_train_step.py --profile
    python benchmarks/bench_train_step.py --backend-subprocess both
    python benchmarks/bench_train_step.py --backend-subprocess all
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
# The repo root first: the editable install may resolve `keras_dlpa` as a
# namespace package when run from elsewhere.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BATCH = 128
SOFT_VARIANTS = ("softmax_soft", "dl2pa_soft", "dl2pa_soft_nostats")
ALL_VARIANTS = (
    "softmax",
    "dl2pa",
    "dl2pa_nocheck",
    "dl2pa_nostats",
    "dl2pa_nocheck_nostats",
    "dl2pa_cs",
    "dl2pa_fit",
    "dl2pa_fit_sync",
    "softmax_soft",
    "dl2pa_soft",
    "dl2pa_soft_nostats",
)
CASES = {
    "resnet32": {"num_classes": 10, "dim": 64},
    "head1000": {"num_classes": 1000, "dim": 512},
}


def _backbone(case):
    import keras

    if case == "resnet32":
        from keras_dlpa.models import cifar_resnet32

        return cifar_resnet32("long_tailed", width=16)
    inputs = keras.Input((256,), name="features_in")
    x = keras.layers.Dense(512, use_bias=False, name="proj")(inputs)
    x = keras.layers.BatchNormalization(name="proj_bn")(x)
    return keras.Model(inputs, x, name="mlp_backbone")


def build_variant(case, variant):
    """Returns a compiled model for `(case, variant)`."""
    import keras
    import numpy as np

    import keras_dlpa

    c = CASES[case]["num_classes"]
    d = CASES[case]["dim"]
    keras.utils.set_random_seed(0)
    backbone = _backbone(case)
    features = backbone.outputs[0]
    soft = variant in SOFT_VARIANTS
    if variant.startswith("softmax"):
        outputs = keras.layers.Dense(c, name="logits")(features)
        loss = (
            keras.losses.CategoricalCrossentropy(from_logits=True)
            if soft
            else keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        )
        metric = (
            keras.metrics.CategoricalAccuracy(name="accuracy")
            if soft
            else keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        )
    else:
        rng = np.random.default_rng(0)
        prototypes = rng.standard_normal((c, d)).astype("float32")
        outputs = keras_dlpa.PrototypeLayer(
            prototypes,
            initial_assignment="random",
            track_statistics="nostats" not in variant,
            name="prototypes",
        )(features)
        loss = keras_dlpa.IPMLoss(
            class_scale=soft or variant == "dl2pa_cs",
            validate_labels="nocheck" not in variant,
        )
        metric = (
            keras.metrics.CategoricalAccuracy(name="accuracy")
            if soft
            else keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        )
    model = keras.Model(backbone.inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        loss=loss,
        metrics=[metric],
    )
    return model


def make_data(case, steps, soft, seed=0):
    """Synthetic arrays: `steps * 128` inputs and sparse or soft labels."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n = steps * BATCH
    c = CASES[case]["num_classes"]
    if case == "resnet32":
        x = rng.uniform(0, 255, (n, 32, 32, 3)).astype("float32")
    else:
        x = rng.standard_normal((n, 256)).astype("float32")
    labels = rng.integers(0, c, n)
    if not soft:
        return x, labels.astype("int32")
    other = rng.integers(0, c, n)
    lam = rng.beta(1.0, 1.0, (n, 1)).astype("float32")
    eye = np.eye(c, dtype="float32")
    return x, lam * eye[labels] + (1 - lam) * eye[other]


def _callbacks(variant):
    """The fit callbacks of `variant` (fresh instances)."""
    import keras

    import keras_dlpa

    if not variant.startswith("dl2pa_fit"):
        return []

    class BatchHook(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            pass

    callbacks = [keras_dlpa.ReassignCallback()]
    return callbacks + [BatchHook()] if variant.endswith("_sync") else callbacks


def _fit_seconds(model, x, y, variant):
    callbacks = _callbacks(variant)
    start = time.perf_counter()
    model.fit(
        x,
        y,
        batch_size=BATCH,
        epochs=1,
        verbose=0,
        shuffle=False,
        callbacks=callbacks,
    )
    return time.perf_counter() - start


def time_case(case, variants, steps, repeats, seed=0):
    """Interleaved timing; returns rows with median step time and ratios."""
    data = {soft: make_data(case, steps, soft) for soft in (False, True)}
    models = {}
    for variant in variants:
        models[variant] = build_variant(case, variant)
        x, y = data[variant in SOFT_VARIANTS]
        print(f"  {case} {variant}: compile + warm-up", flush=True)
        _fit_seconds(models[variant], x, y, variant)  # compile + warm-up
        _fit_seconds(models[variant], x, y, variant)
    times = {v: [] for v in variants}
    rng = random.Random(seed)
    for _ in range(repeats):
        order = list(variants)
        rng.shuffle(order)
        for variant in order:
            x, y = data[variant in SOFT_VARIANTS]
            seconds = _fit_seconds(models[variant], x, y, variant)
            times[variant].append(seconds / steps)
            print(f"  {case} {variant}: {1000 * times[variant][-1]:.2f} ms")
    rows = []
    for variant in variants:
        median = statistics.median(times[variant])
        base = "softmax_soft" if variant in SOFT_VARIANTS else "softmax"
        rows.append(
            {
                "case": case,
                "variant": variant,
                "step_ms": 1000 * median,
                "images_per_s": BATCH / median,
                "baseline": base,
                "times_ms": [round(1000 * t, 2) for t in times[variant]],
            }
        )
    medians = {r["variant"]: r["step_ms"] for r in rows}
    for row in rows:
        if row["baseline"] in medians:
            row["ratio"] = row["step_ms"] / medians[row["baseline"]]
            # Ratio per round (same round = same load), then the median.
            per_round = [
                t / b for t, b in zip(row["times_ms"], times_of(rows, row))
            ]
            row["ratio_paired"] = statistics.median(per_round)
    return rows


def times_of(rows, row):
    for other in rows:
        if other["variant"] == row["baseline"]:
            return other["times_ms"]
    return row["times_ms"]


def profile_case(case, variants):
    """JAX: op counts of each variant's train step (traced and compiled)."""
    import re

    import jax
    import keras

    rows = []
    for variant in variants:
        model = build_variant(case, variant)
        x, y = make_data(case, 1, variant in SOFT_VARIANTS)
        model.train_on_batch(x, y)
        state = (
            [v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables],
            [v.value for v in model.optimizer.variables],
            [v.value for v in model.metrics_variables],
        )
        batch = (keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(y))
        jaxpr = jax.make_jaxpr(model.train_step)(state, batch)
        lowered = jax.jit(model.train_step).lower(state, batch)
        hlo = lowered.as_text()
        compiled = lowered.compile().as_text()
        rows.append(
            {
                "case": case,
                "variant": variant,
                "jaxpr_eqns": _count_eqns(jaxpr.jaxpr),
                "stablehlo_ops": len(
                    re.findall(r"^\s*(?:%\S+ = )?\"?stablehlo\.", hlo, re.M)
                ),
                "host_callbacks": hlo.count("callback"),
                "compiled_fusions": len(
                    re.findall(
                        r"^\s*(?:ROOT )?\S+ = \S+ fusion\(", compiled, re.M
                    )
                ),
                "compiled_custom_calls": len(
                    re.findall(r"custom-call\(", compiled)
                ),
                "compiled_instructions": len(
                    re.findall(r"^\s+(?:ROOT )?\S+ = ", compiled, re.M)
                ),
            }
        )
    return rows


def _count_eqns(jaxpr):
    total = 0
    for eqn in jaxpr.eqns:
        total += 1
        for param in eqn.params.values():
            inner = getattr(param, "jaxpr", None)
            if inner is not None:
                total += _count_eqns(getattr(inner, "jaxpr", inner))
    return total


def _run_all(argv):
    """Runs this script once per backend (TF, JAX, PyTorch) and writes one
    JSON with all their rows, each with its `backend`."""
    import json

    from _common import machine_info
    from _common import print_table
    from _common import write_results

    rest = _without_backend_and_out(argv)
    backends = ("tensorflow", "jax", "torch")
    rows, runs = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for backend in backends:
            path = Path(tmp) / f"{backend}.json"
            cmd = [sys.executable, str(Path(__file__).resolve()), *rest]
            cmd += ["--out", str(path)]
            env = dict(os.environ, KERAS_BACKEND=backend)
            print(f"== KERAS_BACKEND={backend}: {' '.join(cmd)}", flush=True)
            subprocess.run(cmd, env=env, check=True)
            data = json.loads(path.read_text())
            rows += [{"backend": backend, **row} for row in data["rows"]]
            runs[backend] = {
                "machine": data["machine"],
                "profile": data["profile"],
            }
    print_table(rows, ["backend", "case", "variant", "step_ms", "ratio_paired"])
    first = runs[backends[0]]
    machine = dict(machine_info(), keras_backend="+".join(backends))
    write_results(
        "bench_train_step_backends",
        {
            "backend": "+".join(backends),
            "batch_size": BATCH,
            "steps_per_fit": int(_option(rest, "--steps") or 8),
            "repeats": int(_option(rest, "--repeats") or 5),
            "command": "python "
            + " ".join([f"benchmarks/{Path(__file__).name}"] + argv),
            "rows": rows,
            "profile": first["profile"],
            # Overrides write_results' own: the backend names all three.
            "machine": machine,
            "machines": {b: r["machine"] for b, r in runs.items()},
        },
        _option(argv, "--out"),
    )
    return 0


def _without_backend_and_out(argv):
    rest, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg.startswith(("--backend-subprocess", "--out")):
            skip = "=" not in arg
        else:
            rest.append(arg)
    return rest


def _run_both(argv):
    """Runs this script once per backend; `--out X.json` -> `X_<backend>`."""
    rest = _without_backend_and_out(argv)
    out = _option(argv, "--out")
    code = 0
    for backend in ("tensorflow", "jax"):
        cmd = [sys.executable, str(Path(__file__).resolve()), *rest]
        if out:
            path = Path(out)
            cmd += ["--out", str(path.with_stem(f"{path.stem}_{backend}"))]
        env = dict(os.environ, KERAS_BACKEND=backend)
        print(f"== KERAS_BACKEND={backend}: {' '.join(cmd)}", flush=True)
        code = subprocess.call(cmd, env=env) or code
    return code


def _option(argv, name):
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default="resnet32,head1000")
    parser.add_argument(
        "--variants",
        default=",".join(ALL_VARIANTS),
        help="comma-separated; the softmax baselines are always added",
    )
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--resnet-steps",
        type=int,
        default=None,
        help="steps per fit for resnet32 (default --steps)",
    )
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--no-timing", action="store_true")
    parser.add_argument(
        "--backend-subprocess", choices=("both", "all"), default=None
    )
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if args.backend_subprocess == "all":
        return _run_all(sys.argv[1:] if argv is None else argv)
    if args.backend_subprocess:
        return _run_both(sys.argv[1:] if argv is None else argv)

    import keras
    from _common import print_table
    from _common import write_results

    backend = keras.backend.backend()
    variants = [v for v in args.variants.split(",") if v]
    for v in variants:
        if v not in ALL_VARIANTS + SOFT_VARIANTS:
            parser.error(f"unknown variant {v!r}; choose from {ALL_VARIANTS}")
    rows, profile = [], []
    for case in args.cases.split(","):
        chosen = list(variants)
        for base, kind in (("softmax", False), ("softmax_soft", True)):
            if base not in chosen and any(
                (v in SOFT_VARIANTS) == kind for v in chosen
            ):
                chosen.insert(0, base)
        if not args.no_timing:
            steps = args.steps
            if case == "resnet32" and args.resnet_steps:
                steps = args.resnet_steps
            case_rows = time_case(case, chosen, steps, args.repeats)
            rows += case_rows
            print_table(
                case_rows,
                [
                    "case",
                    "variant",
                    "step_ms",
                    "images_per_s",
                    "ratio",
                    "ratio_paired",
                ],
            )
        if args.profile and backend == "jax":
            case_profile = profile_case(case, chosen)
            profile += case_profile
            print_table(case_profile)
    write_results(
        f"train_step_{backend}",
        {
            "backend": backend,
            "batch_size": BATCH,
            "steps_per_fit": args.steps,
            "resnet_steps_per_fit": args.resnet_steps or args.steps,
            "repeats": args.repeats,
            "command": "python "
            + " ".join([f"benchmarks/{Path(__file__).name}"] + sys.argv[1:]),
            "rows": rows,
            "profile": profile,
        },
        args.out,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
