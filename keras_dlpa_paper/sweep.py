"""Run several recipe runs as separate processes, resumably.

`keras-dlpa reproduce` (and through it the GPU campaign,
`benchmarks/gpu/run.sh`) uses this to run many recipes/methods/seeds side
by side on one machine: each job is one `recipes/<recipe>.py` process
with its own run directory and log, an optional deadline (`--deadline`,
so it stops after the last epoch that fits and can be resumed later),
and

- a job whose `evaluation.json` says `completed: true` is skipped, unless
  its `--epochs` asks for more epochs than it ran (then it is resumed to
  train the rest);
- a job with a checkpoint is resumed (`--resume`);
- a job whose run directory holds a run (complete or not) with other
  settings than the job's is `"refused"` with one line naming them (e.g.
  a `--quick --epochs 2` smoke run in the directory of a full run; only
  `run_dir.RESUMABLE_SETTINGS` such as `--epochs` may differ), and is
  neither skipped as complete nor started;
- no job starts once the deadline has passed;
- a failed job is reported without stopping the others;
- a job with `after` (names of earlier jobs, e.g. the softmax run whose
  weights an `ours_star` run reads) starts only once those have finished,
  and only if they are complete; otherwise it is `"blocked"` (not
  started; the next sweep runs it once they are). Other jobs keep the
  `parallel` slots busy meanwhile.

`save_report` writes a sweep's `report.json` with the machine it was
written on (grids and studies alike).
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class SweepOptions:
    """How `reproduce` and `run_study` run their jobs.

    Attributes:
        quick: add the grid's or study's `quick_args` (tiny CI runs).
        parallel: runs at once (one process each).
        deadline: Unix time passed to every run (`--deadline`).
        report_only: only write the report from the runs on disk.
        extra_args: more recipe flags for every run (e.g. `--epochs 2`).
    """

    quick: bool = False
    parallel: int = 1
    deadline: float | None = None
    report_only: bool = False
    extra_args: tuple = ()


@dataclasses.dataclass
class Job:
    """One recipe run.

    Attributes:
        name: unique job name (log file name).
        recipe: a `keras_dlpa.training.RECIPES` name; the job runs
            `python -m keras_dlpa train RECIPE ...`, the code path of
            `recipes/RECIPE.py`.
        args: recipe flags (without `--out`, `--resume`, `--deadline`).
        out: the run directory.
        after: names of earlier jobs of the same sweep that must be
            complete before this one starts.
    """

    name: str
    recipe: str
    args: list
    out: str
    after: tuple = ()


def data_args(data) -> list:
    """The recipe flags that read `data`: `--npz` for a prepared `.npz`
    (`write_prepared_splits`), `--image-dir` for images, none for `None`
    or `"tfds"` (the recipes then read TensorFlow Datasets)."""
    if data is None or str(data) == "tfds":
        return []
    return ["--npz" if str(data).endswith(".npz") else "--image-dir", str(data)]


def _requested_epochs(args) -> int | None:
    """The last `--epochs N` of a job's flags, else None."""
    args = [str(a) for a in args]
    values = [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--epochs"]
    return int(values[-1]) if values else None


def job_status(out, epochs: int | None = None) -> str:
    """`"complete"`, `"partial"` (has a checkpoint) or `"new"`.

    A complete run with fewer epochs than `epochs` is `"partial"`: the
    sweep resumes it to train the rest (its other settings must be the
    same, which `--resume` checks).
    """
    out = Path(out)
    evaluation = out / "evaluation.json"
    if evaluation.is_file():
        try:
            found = json.loads(evaluation.read_text())
            done = found.get("epochs_done")
            short = epochs is not None and done is not None and done < epochs
            if found.get("completed", True) and not short:
                return "complete"
        except (OSError, json.JSONDecodeError):
            pass
    if any((out / "checkpoints").glob("epoch-*.json")):
        return "partial"
    return "new"


def settings_conflict(job: Job) -> str | None:
    """How the job's settings differ from the run in its directory
    (`"name: stored -> new; ..."`), or None (same settings, or no run).

    Compares what `--resume` compares (`run_dir.resume_differences`): the
    job's flags parsed by its recipe's parser against `config.json`.
    """
    path = Path(job.out) / "config.json"
    if not path.is_file():
        return None
    from keras_dlpa.cli.train import build_parser
    from keras_dlpa.cli.train import config_from_args
    from keras_dlpa.training.run_dir import resume_differences

    argv = [str(a) for a in job.args] + ["--out", str(job.out)]
    try:
        args = build_parser(job.recipe).parse_args(argv)
        config = config_from_args(job.recipe, args)
    except (SystemExit, ValueError, TypeError):
        return None  # bad flags: the job's own run says so when started
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return "config.json unreadable"
    differences = resume_differences(config, stored)
    return "; ".join(differences) or None


def job_environment(env: dict | None, parallel: int) -> dict:
    """The jobs' environment (`os.environ` by default); with several jobs
    at once, JAX may not take 75 % of the accelerator's memory up front
    (`XLA_PYTHON_CLIENT_PREALLOCATE=false`, unless set)."""
    env = dict(os.environ if env is None else env)
    if parallel > 1:
        env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    return env


def _command(job: Job, status: str, deadline: float | None) -> list[str]:
    from keras_dlpa.training.recipes import RECIPES

    if job.recipe not in RECIPES:
        raise ValueError(
            f"Job {job.name!r}: unknown recipe {job.recipe!r}; expected one "
            f"of {sorted(RECIPES)}."
        )
    # `keras-dlpa train RECIPE` is the code path of `recipes/RECIPE.py`.
    command = [sys.executable, "-m", "keras_dlpa", "train", job.recipe]
    command += [str(a) for a in job.args]
    command += ["--out", str(job.out)]
    if status == "partial":
        command.append("--resume")
    if deadline is not None:
        command += ["--deadline", repr(float(deadline))]
    return command


def run_jobs(
    jobs: list[Job],
    log_dir,
    parallel: int = 1,
    deadline: float | None = None,
    env: dict | None = None,
    poll_s: float = 1.0,
) -> dict:
    """Runs `jobs`, `parallel` at a time; returns a result per job name.

    Each result has `status` (`"skipped"` when already complete,
    `"refused"` when its run directory holds a run with other settings
    (`settings_conflict`), `"blocked"` when a job of its `after` is not
    complete, `"not started"` once `deadline` has passed (these never
    started, `returncode` None), else the status it started from), `returncode`,
    `log` (path) and `evaluation` (the run's `evaluation.json`, or
    `None`). Progress goes to stdout, one line per job start and end.
    Jobs start in list order, except that a job waiting for its `after`
    lets later jobs take the free slots.
    """
    if int(parallel) != parallel or parallel < 1:
        raise ValueError(f"`parallel` must be >= 1. Received: {parallel}")
    names = [job.name for job in jobs]
    if len(set(names)) != len(names):
        raise ValueError(f"Job names must be unique. Received: {names}")
    for index, job in enumerate(jobs):
        for dependency in job.after:
            if dependency not in names[:index]:
                raise ValueError(
                    f"Job {job.name!r}: `after` must name earlier jobs of "
                    f"the same sweep. Received: after={tuple(job.after)}; "
                    f"earlier jobs: {names[:index]}"
                )
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    env = job_environment(env, parallel)
    pending = list(jobs)
    running: dict[str, tuple] = {}
    results = {}
    while pending or running:
        while len(running) < parallel:
            job = _next_ready(pending, results)
            if job is None:
                break
            pending.remove(job)
            status = job_status(job.out, _requested_epochs(job.args))
            log = log_dir / f"{job.name}.log"
            conflict = None if status == "new" else settings_conflict(job)
            if conflict is not None:
                results[job.name] = _result(job, "refused", None, log)
                results[job.name]["evaluation"] = None
                print(
                    f"[sweep] {job.name}: refused, {job.out} holds a run "
                    f"with other settings ({conflict}); move it away or "
                    "use another sweep directory",
                    flush=True,
                )
                continue
            if status == "complete":
                results[job.name] = _result(job, "skipped", 0, log)
                print(f"[sweep] {job.name}: complete, skipped", flush=True)
                continue
            missing = [d for d in job.after if not _completed(results[d])]
            if missing:
                results[job.name] = _result(job, "blocked", None, log)
                print(
                    f"[sweep] {job.name}: blocked, waits for "
                    f"{', '.join(missing)} (not complete)",
                    flush=True,
                )
                continue
            if deadline is not None and time.time() >= deadline:
                results[job.name] = _result(job, "not started", None, log)
                print(
                    f"[sweep] {job.name}: not started, the deadline has passed",
                    flush=True,
                )
                continue
            handle = open(log, "a", encoding="utf-8")
            process = subprocess.Popen(
                _command(job, status, deadline),
                stdout=handle,
                stderr=subprocess.STDOUT,
                env=env,
            )
            running[job.name] = (job, status, process, handle, log)
            print(f"[sweep] {job.name}: started ({status})", flush=True)
        for name in list(running):
            job, status, process, handle, log = running[name]
            if process.poll() is None:
                continue
            handle.close()
            del running[name]
            results[name] = _result(job, status, process.returncode, log)
            print(
                f"[sweep] {name}: exit {process.returncode}, "
                f"{'completed' if _completed(results[name]) else 'not done'}",
                flush=True,
            )
        if running:
            time.sleep(poll_s)
    return {name: results[name] for name in names}


def _next_ready(pending: list[Job], results: dict) -> Job | None:
    """The first pending job whose `after` jobs have all finished."""
    for job in pending:
        if all(dependency in results for dependency in job.after):
            return job
    return None


def _completed(result: dict) -> bool:
    evaluation = result.get("evaluation") or {}
    return bool(evaluation.get("completed"))


def _result(job: Job, status: str, returncode: int | None, log: Path) -> dict:
    path = Path(job.out) / "evaluation.json"
    evaluation = None
    if path.is_file():
        evaluation = json.loads(path.read_text(encoding="utf-8"))
    return {
        "status": status,
        "returncode": None if returncode is None else int(returncode),
        "log": str(log),
        "out": str(job.out),
        "evaluation": evaluation,
    }


def save_report(out: Path, report: dict) -> dict:
    """Adds `written` and `machine` to `report`, writes it to
    `out/report.json` and returns it. The runs' own machines are in each
    run's `config.json`."""
    import keras

    written = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    report["written"] = written
    report["machine"] = {
        "date": written,
        "hostname": platform.node(),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "keras_backend": keras.backend.backend(),
        "loadavg_1_5_15": list(os.getloadavg()),
    }
    text = json.dumps(report, indent=2, default=str)
    (Path(out) / "report.json").write_text(text + "\n")
    return report
