"""Training the amortised posterior against frozen priors, storing it, separating with it."""

from __future__ import annotations

import json

import pytest
import soundfile
import torch
from typer.testing import CliRunner

from priorsep.amortised import (
    MixesOfSolos,
    posterior_estimate,
    train_posterior,
)
from priorsep.api import Separator
from priorsep.cli import app
from priorsep.config import FlowConfig, PosteriorConfig, TrainConfig
from priorsep.data.toy import ToySources
from priorsep.errors import CheckpointError, UsageError
from priorsep.separation.mixing import Mixing
from priorsep.storage import (
    CARD_NAME,
    POSTERIOR_CONFIG_NAME,
    POSTERIOR_NAME,
    load_model,
    load_posterior,
    read_config,
)
from tests.conftest import save_toy_priors
from tests.hub_server import FakeHub
from tests.test_hub import hub  # noqa: F401 (the fixture)

FLOW = FlowConfig(early_squeezes=1, n_blocks=1, n_flows=1, n_layers=2, residual_channels=8,
                  skip_channels=8, cond_channels=4)
POSTERIOR = PosteriorConfig(squeezes=2, n_layers=3, residual_channels=8, skip_channels=8,
                            sigma=0.1, gamma=0.1)
runner = CliRunner()


@pytest.fixture(scope="module")
def priors_folder(tmp_path_factory):
    return save_toy_priors(tmp_path_factory.mktemp("priors"), FLOW,
                           {"n_levels": 1, "steps_per_level": 4, "mode": "fixed",
                            "sigma_min": 0.1, "sigma_max": 0.1, "init": "mix"})


def _train(priors_folder, out, steps, resume=False):
    priors = load_model(priors_folder)
    data = MixesOfSolos(ToySources(), Mixing.from_config(priors.config))
    config = TrainConfig(steps=steps, batch_size=2, crop_length=256, lr=3e-3,
                         checkpoint_every=1)
    return train_posterior(priors, POSTERIOR, config, data, out, resume=resume,
                           priors_info=read_config(priors_folder)[1],
                           validation=Mixing("mean")(ToySources().sample(
                               torch.Generator().manual_seed(5), 2, 256)))


def test_training_raises_the_elbo_and_stores_the_encoder_with_the_priors(priors_folder,
                                                                          tmp_path):
    losses = []
    priors = load_model(priors_folder)
    data = MixesOfSolos(ToySources(), Mixing.from_config(priors.config))
    config = TrainConfig(steps=40, batch_size=4, crop_length=256, lr=3e-3, checkpoint_every=20)
    encoder = train_posterior(priors, POSTERIOR, config, data, tmp_path / "out",
                              priors_info=read_config(priors_folder)[1],
                              on_progress=lambda p: losses.append(p.loss))
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.2  # -ELBO falls (nats/sample)
    out = tmp_path / "out"
    assert not (out / "checkpoint.pt").exists()
    assert (out / POSTERIOR_NAME).is_file()
    info = json.loads((out / "config.json").read_text())["info"]
    assert info["posterior"]["config"]["sigma"] == 0.1
    assert info["separation"]["steps_per_level"] == 4  # the priors' own info is kept
    assert "Amortised posterior" in (out / CARD_NAME).read_text()
    loaded = load_posterior(out)
    mix = Mixing("mean")(ToySources().sample(torch.Generator().manual_seed(1), 2, 256))
    mixing = Mixing("mean")
    torch.testing.assert_close(posterior_estimate(loaded, mix, mixing),
                               posterior_estimate(encoder, mix, mixing))
    assert load_posterior(priors_folder) is None
    typed = json.loads((out / POSTERIOR_CONFIG_NAME).read_text())
    assert typed["config"] == info["posterior"]["config"] and typed["parameters"] > 0
    # a folder written before posterior.json: the config in the card's info still loads
    (out / POSTERIOR_CONFIG_NAME).unlink()
    torch.testing.assert_close(posterior_estimate(load_posterior(out), mix, mixing),
                               posterior_estimate(encoder, mix, mixing))


def test_resume_continues_bit_for_bit(priors_folder, tmp_path):
    straight = _train(priors_folder, tmp_path / "a", steps=4)
    _train(priors_folder, tmp_path / "b", steps=2)
    # a finished run deletes its checkpoint: continue from a run interrupted at step 2
    interrupted = tmp_path / "c"
    priors = load_model(priors_folder)
    data = MixesOfSolos(ToySources(), Mixing.from_config(priors.config))
    config = TrainConfig(steps=4, batch_size=2, crop_length=256, lr=3e-3, checkpoint_every=1)

    def stop_at_two(progress):
        if progress.step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_posterior(priors, POSTERIOR, config, data, interrupted, on_progress=stop_at_two)
    # the checkpoint of step 1 is there (step 2's was not reached): resume from it
    resumed = _train(priors_folder, interrupted, steps=4, resume=True)
    for (name, value), other in zip(straight.state_dict().items(),
                                    resumed.state_dict().values()):
        assert torch.equal(value, other), name
    with pytest.raises(CheckpointError, match="nothing to resume"):
        _train(priors_folder, tmp_path / "d", steps=4, resume=True)


def test_separator_methods(priors_folder, tmp_path):
    _train(priors_folder, tmp_path / "model", steps=3)
    mix = 0.3 * torch.randn(1, 600)
    posterior = Separator.from_pretrained(str(tmp_path / "model"), method="posterior")
    estimate = posterior.separate_tensor(mix)
    assert estimate.shape == (1, 4, 600)
    expected = posterior_estimate(posterior.encoder, mix, posterior.mixing)  # one segment
    torch.testing.assert_close(estimate, expected)
    refined = Separator.from_pretrained(str(tmp_path / "model"), method="posterior+langevin")
    assert refined.settings["langevin"].steps_per_level == 1  # a quarter of the stored 4
    refined_estimate = refined.separate_tensor(mix)
    assert not torch.allclose(refined_estimate, estimate)
    # the same separator switched to plain Langevin ignores its encoder
    refined.method = "langevin"
    plain = Separator.from_pretrained(str(tmp_path / "model"), steps_per_level=1)
    torch.testing.assert_close(refined.separate_tensor(mix), plain.separate_tensor(mix))
    with pytest.raises(UsageError, match="no amortised posterior"):
        Separator.from_pretrained(str(priors_folder), method="posterior")
    with pytest.raises(UsageError, match="unknown method"):
        Separator.from_pretrained(str(priors_folder), method="vae")


def test_cli_train_posterior_then_separate(priors_folder, tmp_path):
    out = tmp_path / "model"
    result = runner.invoke(app, ["train-posterior", str(priors_folder), "--out", str(out),
                                 "--steps", "2", "--batch-size", "2", "--crop-length", "256",
                                 "--layers", "2", "--width", "8", "--squeezes", "1",
                                 "--sigma", "0.1", "--gamma", "0.1", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    mix = tmp_path / "mix.wav"
    soundfile.write(mix, (0.2 * torch.randn(1000)).numpy(), 8000)
    for method in ("posterior", "posterior+langevin"):
        stems = tmp_path / method
        result = runner.invoke(app, ["separate", str(mix), "-o", str(stems), "--model", str(out),
                                     "--method", method, "--quiet"])
        assert result.exit_code == 0, result.output
        written = sorted(p.name for p in (stems / "mix").iterdir())
        assert written == ["sawtooth.wav", "sine.wav", "square.wav", "triangle.wav"]
        assert soundfile.info(stems / "mix" / "sine.wav").frames == 1000
    result = runner.invoke(app, ["separate", str(mix), "-o", str(tmp_path / "x"), "--model",
                                 str(priors_folder), "--method", "posterior"])
    assert result.exit_code == UsageError.exit_code
    assert "no amortised posterior" in result.stderr
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["separate", str(mix), "-o", str(tmp_path / "x"), "--model",
                                 str(out), "--method", "posterior", "--steps", "10"])
    assert result.exit_code == UsageError.exit_code and "--steps" in result.stderr
    result = runner.invoke(app, ["train-posterior", str(priors_folder), "--out",
                                 str(tmp_path / "y"), "--crop-length", "100"])
    assert result.exit_code == UsageError.exit_code and "multiple of" in result.stderr
    result = runner.invoke(app, ["train-posterior", str(priors_folder), "--out",
                                 str(tmp_path / "y"), "--layers", "0"])
    assert result.exit_code == UsageError.exit_code
    assert "--layers: must be a whole number of at least 1" in result.stderr  # not n_layers


def test_hub_model_brings_its_posterior(hub: FakeHub, priors_folder, tmp_path):  # noqa: F811
    _train(priors_folder, tmp_path / "model", steps=1)
    hub.publish_folder("owner/amortised", tmp_path / "model")
    separator = Separator.from_pretrained("owner/amortised", method="posterior")
    local = load_posterior(tmp_path / "model")
    for (name, value), other in zip(local.state_dict().items(),
                                    separator.encoder.state_dict().values()):
        assert torch.equal(value, other), name


def test_bundled_toy_model_separates_the_example_in_one_pass():
    """The shipped encoder proposes sources that mix back to the example mix (its likelihood
    term), from one forward pass."""
    from importlib.resources import as_file, files

    from priorsep.audio import read_audio

    separator = Separator.from_pretrained("toy-flow", method="posterior")
    with as_file(files("priorsep") / "examples" / "toy_mix.wav") as path:
        audio, rate = read_audio(str(path))
    stems = separator.separate_audio(audio, rate)
    assert sorted(stems) == sorted(separator.sources)
    estimate = torch.cat([stems[source] for source in separator.sources])  # (N, time)
    remix = separator.mixing(estimate)
    residual = (remix - audio[0]).pow(2).mean() / audio[0].pow(2).mean()
    assert residual < 0.05  # the estimates mix back to within -13 dB of the mix


def test_train_posterior_names_the_real_reason_it_refuses(tmp_path):
    """A model of another family is refused for its family, a combination for being one."""
    from typer.testing import CliRunner

    from priorsep.cli import app

    runner = CliRunner()
    common = ["-o", str(tmp_path / "out"), "--steps", "1"]
    result = runner.invoke(app, ["train-posterior", "toy-exact", *common])
    assert result.exit_code == 2, result.output
    assert "flowavenet priors" in result.output and "wavetable" in result.output
    assert "combination" not in result.output
    result = runner.invoke(app, ["train-posterior", "toy-flow,chorales-nmf", *common, "-q"])
    assert result.exit_code == 2, result.output
    assert "not a combination of several" in result.output
