"""Each recipe runs one tiny epoch end to end and writes the run schema."""

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds
from conftest import image_folder as _image_folder

from keras_dlpa.cli.train import build_parser
from keras_dlpa.cli.train import config_from_args
from keras_dlpa.training.config import flat_config

RECIPES_DIR = Path(__file__).resolve().parents[1] / "recipes"
METRIC_KEYS = (
    "epoch",
    "loss",
    "accuracy",
    "val_top1",
    "val_top5",
    "val_many",
    "val_medium",
    "val_few",
    "learning_rate",
)
EVAL_KEYS = ("top1", "top5", "many", "medium", "few", "per_class_accuracy")
TINY = ["--epochs", "1", "--depth", "8", "--verbose", "0", "--seed", "1"]


@pytest.fixture(autouse=True)
def _prototype_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_DLPA_CACHE", str(tmp_path / "cache"))


def _recipe(name):
    spec = importlib.util.spec_from_file_location(
        f"recipe_{name}", RECIPES_DIR / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(name, argv, expect=0):
    """Runs the recipe's `main`; asserts its exit code (errors: 1 line)."""
    from keras_dlpa.cli.train import main

    assert _recipe(name).main is main  # the script is the shared entry
    code = main(argv, recipe=name)
    assert code == expect
    return code


def _script(name, *args):
    """Runs `python recipes/NAME.py ARGS` in a subprocess; asserts exit 0."""
    import subprocess
    import sys

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env["PYTHONPATH"] = str(RECIPES_DIR.parent)
    result = subprocess.run(
        [sys.executable, str(RECIPES_DIR / f"{name}.py"), *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _check_run_dir(run_dir, method, num_classes, dim, test, plots):
    run_dir = Path(run_dir)
    for name in (
        "config.json",
        "metrics.csv",
        "metrics.json",
        "evaluation.json",
        "model.keras",
        "best.keras",
        "checkpoints/epoch-000001.json",
    ):
        assert (run_dir / name).is_file(), name
    nested = json.loads((run_dir / "config.json").read_text())
    # The sections (resolved) and `settings` (as given), then the extras.
    assert (nested["model"]["method"], nested["model"]["dim"]) == (method, dim)
    assert "seed" in nested["run"] and "dataset" in nested["data"]
    assert nested["settings"]["model"]["method"] == method
    config = flat_config(nested)
    assert config["num_classes"] == num_classes
    assert len(config["class_names"]) == num_classes
    rows = json.loads((run_dir / "metrics.json").read_text())
    assert [r["epoch"] for r in rows] == [0]
    for key in METRIC_KEYS:
        assert key in rows[0], key
    if method == "dl2pa":
        assert 0.0 <= rows[0]["assignment_changed"] <= 1.0
        assert "assignment_cost" in rows[0]
    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    assert evaluation["selection"] == "val_top1"
    assert len(evaluation["train_counts"]) == num_classes
    assert evaluation["class_names"] == config["class_names"]
    parts = [evaluation["last"], evaluation["best"]]
    if test:
        parts += [evaluation["test"]["last"], evaluation["test"]["best"]]
    else:
        assert "test" not in evaluation
    for part in parts:
        for key in EVAL_KEYS:
            assert key in part, key
        assert len(part["per_class_accuracy"]) == num_classes
        assert 0.0 <= part["top1"] <= part["top5"] <= 1.0
        assert part["epoch"] == 0
    # Validation top-1 logged during training = the final evaluation.
    assert rows[0]["val_top1"] == pytest.approx(evaluation["last"]["top1"])
    if method == "softmax":
        assert not (run_dir / "final_state.npz").exists()
    else:
        state = np.load(run_dir / "final_state.npz")
        assert state["prototypes"].shape == (num_classes, dim)
        assert sorted(state["assignment"]) == list(range(num_classes))
    if plots:
        assert list((run_dir / "plots").glob("*.png"))
    return config, evaluation


def _fields(config, **expected):
    """Asserts `config`'s fields (flat names) hold `expected`."""
    flat = config.flat()
    assert {name: flat[name] for name in expected} == expected


def test_cifar100_lt_defaults_are_the_paper_setting():
    args = build_parser("cifar100_lt").parse_args([])
    config = config_from_args("cifar100_lt", args)
    assert (config.model.method, config.data.imbalance) == ("dl2pa", 0.01)
    assert config.optimisation.epochs == 200
    _fields(
        config, batch_size=128, learning_rate=0.1, warmup_epochs=5,
        milestones=(160, 180), weight_decay=2e-4, mixup_alpha=1.0,
        class_scale=True, backbone="resnet32_lt_cifar100",
        out="runs/cifar100_lt-dl2pa-0.01-0",
    )  # fmt: skip
    balanced = config_from_args(
        "cifar100", build_parser("cifar100").parse_args(["--dim", "10"])
    )
    _fields(
        balanced, epochs=250, learning_rate=0.01, milestones=(100, 200),
        mixup_alpha=0, class_scale=False, imbalance=None,
    )  # fmt: skip


def test_imagenet_recipes_defaults_are_the_reference_settings():
    lt = config_from_args(
        "imagenet_lt", build_parser("imagenet_lt").parse_args([])
    )
    _fields(
        lt, epochs=105, batch_size=1024, learning_rate=0.5, warmup_epochs=5,
        lr_decay="cosine", weight_decay=2e-5, backbone="resnet50_imagenet",
        dim=512, streaming=True, auto_augment="trivial", random_erasing=0.1,
        mixup_alpha=0.2, cutmix_alpha=1.0,
    )  # fmt: skip
    one_k = config_from_args(
        "imagenet",
        build_parser("imagenet").parse_args(["--classes", "200"]),
    )
    _fields(one_k, epochs=100, class_subset="200")
    tune = config_from_args(
        "finetune",
        build_parser("finetune").parse_args(
            ["--image-dir", "x", "--backbone", "convnext_tiny"]
        ),
    )
    _fields(
        tune, backbone="convnext_tiny", weights="imagenet", freeze_epochs=1,
        trunk_lr_scale=0.1,
    )  # fmt: skip


def test_imbalance_outside_unit_interval_is_an_error():
    args = build_parser("cifar10_lt").parse_args(["--imbalance", "100"])
    with pytest.raises(ValueError, match=r"imbalance.*\(0, 1\]"):
        config_from_args("cifar10_lt", args)


def test_cifar100_lt_one_epoch_tfds(tmp_path):
    out = tmp_path / "run"
    argv = TINY + [
        "--quick",
        "--width",
        "2",
        "--dim",
        "99",  # long-tailed backbone (d = 8) + projection to 99
        "--imbalance",
        "0.5",
        "--batch-size",
        "32",
        "--no-report",
        # Mock labels are random: the smallest class heads the profile.
        "--allow-data-drop",
        "--out",
        str(out),
    ]
    with tfds.testing.mock_data(num_examples=1500):
        _run("cifar100_lt", argv)
    config, evaluation = _check_run_dir(
        out, "dl2pa", 100, 99, test=True, plots=False
    )
    assert config["mixup_alpha"] == 1.0
    assert config["test_size"] == 1500
    assert config["val_size"] + sum(config["train_counts"]) < 1500
    assert config["data_report"]["lost_to_smallest_class"] > 0


def test_cifar100_balanced_one_epoch_tfds(tmp_path):
    out = tmp_path / "run"
    argv = TINY + [
        "--quick",
        "--width",
        "2",
        "--dim",
        "100",
        "--method",
        "static",
        "--batch-size",
        "32",
        "--no-report",
        "--out",
        str(out),
    ]
    with tfds.testing.mock_data(num_examples=1500):
        _run("cifar100", argv)
    config, _ = _check_run_dir(out, "static", 100, 100, test=True, plots=False)
    assert config["imbalance"] is None and config["mixup_alpha"] == 0.0


def test_cifar10_lt_one_epoch_image_folder(tmp_path, capsys):
    folder = _image_folder(tmp_path / "train", 10, 12)
    out = tmp_path / "run"
    argv = TINY + [
        "--width",
        "2",
        "--method",
        "softmax",
        "--imbalance",
        "0.5",
        "--batch-size",
        "16",
        "--image-dir",
        str(folder),
        "--out",
        str(out),
    ]
    _run("cifar10_lt", argv)
    config, evaluation = _check_run_dir(
        out, "softmax", 10, 8, test=False, plots=True
    )
    # Validation first (round(12 * 0.1) = 1 per class), then the
    # long-tailed profile on the remaining 11 per class.
    expected = [int(11 * 0.5 ** (k / 9)) for k in range(10)]
    assert evaluation["train_counts"] == expected
    assert config["val_size"] == 10
    # Resuming a finished run is refused without --resume.
    _run("cifar10_lt", argv, expect=1)
    assert "FileExistsError" in capsys.readouterr().err


def test_etf_with_too_small_dim_is_a_clear_error(tmp_path, capsys):
    folder = _image_folder(tmp_path / "train", 10, 4)
    argv = TINY + [
        "--width",
        "2",  # d = 8 < c - 1 = 9
        "--batch-size",
        "8",
        "--method",
        "etf",
        "--imbalance",
        "1.0",
        "--image-dir",
        str(folder),
        "--out",
        str(tmp_path / "run"),
    ]
    _run("cifar10_lt", argv, expect=1)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ValueError" in err[0] and "d=8 and c=10" in err[0]


def test_recipe_scripts_show_help():
    for name in (
        "cifar100_lt",
        "cifar10_lt",
        "cifar100",
        "imagenet_lt",
        "imagenet",
        "finetune",
    ):
        assert os.path.isfile(RECIPES_DIR / f"{name}.py")
        parser = build_parser(name)
        assert "--resume" in parser.format_help()


def test_bad_flags_are_one_line_usage_errors(capsys):
    from keras_dlpa.cli import main as cli_main
    from keras_dlpa.cli.train import main

    assert main(["--imbalance", "100"], recipe="cifar10_lt") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "imbalance" in err[0] and "(0, 1]" in err[0]
    assert "Traceback" not in err[0]
    missing = str(Path("no") / "such" / "folder")
    assert cli_main(["train", "cifar10_lt", "--image-dir", missing]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "FileNotFoundError" in err[0] and "such" in err[0]
    assert cli_main(["train", "cifar10_lt", "--time-limit", "-3"]) == 2


@pytest.mark.large
def test_main_job_script_quick_on_the_cifar100_archive(
    tmp_path, monkeypatch, cifar100_cache
):
    """`python recipes/cifar100_lt.py --image-dir <archive> --quick`."""
    from conftest import CIFAR100_PNG as CIFAR100_ARCHIVE

    monkeypatch.setenv("KERAS_DLPA_CACHE", str(cifar100_cache))
    out = tmp_path / "run"
    result = _script(
        "cifar100_lt", "--image-dir", CIFAR100_ARCHIVE, "--quick",
        "--epochs", 1, "--out", out,
    )  # fmt: skip
    assert "/step" in result.stdout and "last" in result.stdout
    # --quick: ResNet-8 of width 8, so d = 4 * 8 = 32.
    config, evaluation = _check_run_dir(
        out, "dl2pa", 100, 32, test=False, plots=True
    )
    assert config["class_names"][:3] == ["apple", "aquarium_fish", "baby"]
    assert config["val_size"] == 1000  # 10 of each class's 100 (--quick)
    assert config["train_counts"][0] == 90 and config["mixup_alpha"] == 1.0


@pytest.mark.large
def test_balanced_cifar100_script_quick_in_a_subprocess(tmp_path):
    """`python recipes/cifar100.py --quick` on a generated class folder."""
    folder = _image_folder(tmp_path / "train", 6, 30, size=16)
    out = tmp_path / "run"
    _script(
        "cifar100", "--image-dir", folder, "--quick", "--epochs", 1,
        "--dim", 3, "--method", "static", "--batch-size", 16, "--no-report",
        "--out", out,
    )  # fmt: skip
    config, _ = _check_run_dir(out, "static", 6, 3, test=False, plots=False)
    assert config["imbalance"] is None and config["mixup_alpha"] == 0.0


def test_every_config_field_is_described_once_in_its_metadata():
    """Each field's help is its metadata, and the docstrings of its section
    and of `ExperimentConfig` (`help(...)`) are generated from it; a name
    belongs to one section only."""
    from keras_dlpa.training.config import SECTIONS
    from keras_dlpa.training.config import ExperimentConfig
    from keras_dlpa.training.config import config_fields

    names = [field.name for _, field in config_fields()]
    assert len(names) == len(set(names)) == len(ExperimentConfig().flat())
    top = " ".join(ExperimentConfig.__doc__.split())
    for section, field in config_fields():
        text = " ".join(field.metadata["help"].split())
        assert text, field.name
        for doc in (" ".join(SECTIONS[section].__doc__.split()), top):
            assert f"{field.name} (default `{field.default!r}`" in doc
            assert f"): {text}." in doc, field.name


def test_flags_map_back_to_their_fields_and_the_main_flag_wins():
    def config(recipe, *argv):
        return config_from_args(recipe, build_parser(recipe).parse_args(argv))

    tuned = config(
        "cifar10_lt", "--lr", "0.05", "--mixup", "0", "--milestones", "3,4",
        "--no-report", "--no-download", "--sync-bn", "--dataset", "stl10",
    )  # fmt: skip
    _fields(
        tuned, learning_rate=0.05, mixup_alpha=0.0, milestones=(3, 4),
        dataset="stl10", report=False, download=False, sync_batch_norm=True,
        out="runs/cifar10_lt-stl10-dl2pa-0.01-0",
    )  # fmt: skip
    # Not given: the recipe's value, then --quick's.
    _fields(config("cifar10_lt"), report=True, epochs=200)
    assert config("cifar10_lt", "--quick").optimisation.epochs == 3
    _fields(config("cifar10_lt", "--quick", "--epochs", "5"), epochs=5)
    lists = ("--train-list", "t", "--val-dir", "dir", "--test-dir", "tdir")
    assert config("imagenet_lt", *lists).data.val_list == "dir"
    both = config("imagenet_lt", *lists, "--val-list", "v", "--test-list", "t")
    assert (both.data.val_list, both.data.test_list) == ("v", "t")
    with pytest.raises(SystemExit):
        build_parser("cifar10_lt").parse_args(["--val-dir", "x"])
