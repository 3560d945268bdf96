"""Model folders: save/load round trip keeps ActNorm state; broken folders give clear errors."""

from __future__ import annotations

import json
import os

import pytest
import torch

from priorsep.config import ModelConfig
from priorsep.errors import ModelFormatError
from priorsep.nn.prior import SourcePriors
from priorsep.storage import load_model, read_config, save_model
from tests.conftest import TINY_FLOW, randomize_couplings


@pytest.fixture
def trained_priors() -> SourcePriors:
    torch.manual_seed(0)
    priors = SourcePriors(ModelConfig(architecture=TINY_FLOW, sources=("drums", "bass")))
    priors.train()
    priors(torch.randn(4, 2, 64) * 0.3 + 0.1)  # ActNorm's data-dependent init
    randomize_couplings(priors)
    return priors.eval()


def test_save_load_round_trip_keeps_actnorm(tmp_path, trained_priors):
    save_model(trained_priors, tmp_path, {"name": "test priors"})
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "README.md", "config.json", "model.safetensors"]
    loaded = load_model(tmp_path)
    actnorm = loaded.flows[0].flow.layers[1].layers[0]
    assert int(actnorm.initialized) == 1
    loaded.train()  # a training-mode pass must not re-initialise a loaded ActNorm
    x = torch.randn(3, 2, 64)
    loaded(x * 5)
    loaded.eval()
    assert torch.equal(loaded.log_prob(x, 0.1), trained_priors.log_prob(x, 0.1))
    assert loaded.config == trained_priors.config


def test_config_json_describes_the_model(tmp_path, trained_priors):
    save_model(trained_priors, tmp_path)
    raw = json.loads((tmp_path / "config.json").read_text())
    assert raw["format_version"] == 3
    assert raw["model"]["sources"] == ["drums", "bass"]
    assert raw["model"]["family"] == "flowavenet"
    assert raw["model"]["architecture"]["n_blocks"] == TINY_FLOW.n_blocks
    config, info = read_config(tmp_path)
    assert config.sources == ("drums", "bass") and info["parameters"] > 0
    assert "library_name: priorsep" in (tmp_path / "README.md").read_text()


def test_broken_folders_name_the_file(tmp_path, trained_priors):
    with pytest.raises(ModelFormatError, match="config.json: missing"):
        load_model(tmp_path)
    save_model(trained_priors, tmp_path)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ModelFormatError, match="model.safetensors"):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelFormatError, match="config.json: invalid"):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"format_version": 99, "model": {}}))
    with pytest.raises(ModelFormatError, match="newer"):
        load_model(tmp_path)


def test_weights_of_another_architecture_are_rejected(tmp_path, trained_priors):
    save_model(trained_priors, tmp_path)
    raw = json.loads((tmp_path / "config.json").read_text())
    raw["model"]["architecture"]["n_layers"] = 3
    (tmp_path / "config.json").write_text(json.dumps(raw))
    with pytest.raises(ModelFormatError, match="does not match config.json"):
        load_model(tmp_path)


def test_written_files_get_the_usual_permissions(tmp_path, trained_priors):
    save_model(trained_priors, tmp_path)
    umask = os.umask(0)
    os.umask(umask)
    for name in ("config.json", "model.safetensors", "README.md"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask


def test_format_version_1_folders_load_as_flowavenet(tmp_path, trained_priors):
    save_model(trained_priors, tmp_path)
    raw = json.loads((tmp_path / "config.json").read_text())
    model = raw["model"]
    model["flow"] = model.pop("architecture")
    del model["family"]
    for end in ("min", "max"):  # versions 1 and 2 named the trained noise range sigma_min/max
        model[f"sigma_{end}"] = model.pop(f"trained_sigma_{end}")
    raw["format_version"] = 1
    (tmp_path / "config.json").write_text(json.dumps(raw))
    loaded = load_model(tmp_path)
    assert loaded.config == trained_priors.config and loaded.config.family == "flowavenet"


def test_an_unknown_family_is_a_format_error(tmp_path, trained_priors):
    save_model(trained_priors, tmp_path)
    raw = json.loads((tmp_path / "config.json").read_text())
    raw["model"]["family"] = "transformer"
    (tmp_path / "config.json").write_text(json.dumps(raw))
    with pytest.raises(ModelFormatError, match="unknown prior family 'transformer'"):
        load_model(tmp_path)
