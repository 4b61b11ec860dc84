"""The nested `ExperimentConfig`: built from flat or nested names, and
run directories of both `config.json` layouts (the flat one of earlier
versions, the nested one) read and resumed alike."""

import dataclasses
import json

import pytest

from keras_dlpa.cli.train import build_parser
from keras_dlpa.cli.train import config_from_args
from keras_dlpa.report import _run_title
from keras_dlpa.training import ExperimentConfig
from keras_dlpa.training import ModelConfig
from keras_dlpa.training import OptimisationConfig
from keras_dlpa.training.config import flat_config
from keras_dlpa.training.run_dir import RunSettingsError
from keras_dlpa.training.run_dir import check_resume


def test_config_from_dict_nested_flat_and_replace():
    nested = ExperimentConfig.from_dict(
        {"model": {"method": "softmax"}, "optimisation": {"epochs": 3}}
    )
    flat = ExperimentConfig.from_dict({"method": "softmax", "epochs": 3})
    built = ExperimentConfig(
        model=ModelConfig(method="softmax"),
        optimisation=OptimisationConfig(epochs=3),
    )
    assert nested == flat == built
    assert ExperimentConfig.from_dict(nested.flat()) == nested
    assert ExperimentConfig.from_dict(dataclasses.asdict(nested)) == nested
    again = nested.replace(epochs=5, out="runs/x")
    assert (again.optimisation.epochs, again.run.out) == (5, "runs/x")
    assert nested.optimisation.epochs == 3  # a new config
    with pytest.raises(ValueError, match="Unknown config field 'epoch'"):
        ExperimentConfig.from_dict({"epoch": 3})
    with pytest.raises(ValueError, match="'epochs' is a field of"):
        ExperimentConfig.from_dict({"model": {"epochs": 3}})
    with pytest.raises(ValueError, match="Unknown config field 'lr'"):
        nested.replace(lr=0.1)
    # Checks of a section, and across sections.
    with pytest.raises(ValueError, match="`epochs` must be an integer >= 1"):
        OptimisationConfig(epochs=0)
    with pytest.raises(ValueError, match="freeze_epochs=4, epochs=3"):
        nested.replace(freeze_epochs=4)
    for name, bad in (
        ("mixup_alpha", -1.0),
        ("cutmix_alpha", -0.5),
        ("random_erasing", 2.0),
        ("auto_augment", "rand"),
    ):
        with pytest.raises(ValueError, match=f"`{name}` must be"):
            nested.replace(**{name: bad})
    assert ExperimentConfig.from_dict({"source": "image_list"}).data.streaming


def _config_json(config, nested: bool) -> dict:
    """A `config.json` as `runner._prepare` writes it (nested) or as
    versions before the sections wrote it (every field at top level)."""
    given = json.loads(json.dumps(dataclasses.asdict(config)))
    resolved = json.loads(json.dumps(dataclasses.asdict(config)))
    resolved["model"]["dim"] = 32  # resolved from None
    resolved["run"]["executor"] = "tf"
    extras = {"num_classes": 3, "class_names": ["a", "b", "c"]}
    if nested:
        return {**resolved, **extras, "settings": given}
    return {**flat_config(resolved), **extras, "settings": flat_config(given)}


@pytest.mark.parametrize("nested", [True, False])
def test_both_config_json_layouts_resume_and_read_alike(nested, tmp_path):
    config = config_from_args(
        "cifar10_lt",
        build_parser("cifar10_lt").parse_args(["--quick", "--out", "r"]),
    )
    stored = _config_json(config, nested)
    assert ("optimisation" in stored) == nested
    assert ("epochs" in stored) == (not nested)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(stored))
    check_resume(config, tmp_path)
    check_resume(config.replace(epochs=9, verbose=0), tmp_path)  # resumable
    other = config.replace(seed=4, method="static")
    with pytest.raises(RunSettingsError, match="method: 'dl2pa' -> 'static'"):
        check_resume(other, tmp_path)
    with pytest.raises(RunSettingsError, match="seed: 0 -> 4"):
        check_resume(other, tmp_path)
    # Older still: no `settings`, the resolved fields (dim 32, not None).
    del stored["settings"]
    path.write_text(json.dumps(stored))
    with pytest.raises(RunSettingsError, match="dim: 32 -> None"):
        check_resume(config, tmp_path)
    # The readers: one flat view of either layout, the earlier one's.
    flat = flat_config(stored)
    old = _config_json(config, nested=False)
    assert flat_config(_config_json(config, nested=True)) == old
    assert (flat["method"], flat["dim"], flat["class_names"][0]) == (
        "dl2pa", 32, "a",
    )  # fmt: skip
    assert _run_title(flat, tmp_path) == "dl2pa | cifar10 | seed 0"
    assert ExperimentConfig.from_dict(
        {k: v for k, v in flat.items() if k in config.flat()}
    ) == config.replace(dim=32, executor="tf")
