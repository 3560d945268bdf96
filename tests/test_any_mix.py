"""Mixes as users bring them: any level, any balance, sources that rest, a known subset of the
sources, and a class trained on its own added to a model (small versions of
benchmarks/separate_any.py)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
import torch
from typer.testing import CliRunner

from priorsep.api import Separator
from priorsep.cli import app
from priorsep.config import GaussianConfig, ModelConfig
from priorsep.data import toy
from priorsep.data.toy import ToyDataset
from priorsep.metrics import si_sdr
from priorsep.nn.registry import build_priors
from priorsep.separation.extract import extract_separate
from priorsep.separation.mixing import Mixing

pytestmark = pytest.mark.usefixtures("one_thread")
LENGTH = 4096
runner = CliRunner()


@pytest.fixture(scope="module")
def separator():
    return Separator.from_pretrained("toy")


@pytest.fixture(scope="module")
def sources():
    """Four validation mixes whose fundamentals are 48 Hz or more apart: two sources within
    about a cycle of each other per segment (validation mixes 2 and 5, 2.3 and 0.6 Hz apart)
    are the extraction's known limit (docs/benchmarks.md), whatever the level or presence."""
    return ToyDataset("validation", n_examples=7).batch([0, 1, 3, 6])[..., :LENGTH]


def improvement(estimates, truth):
    mix = truth.mean(1, keepdim=True).expand_as(truth)
    return si_sdr(estimates, truth) - si_sdr(mix, truth)


def separate(separator, mixes):
    return torch.stack([separator.separate_tensor(mix) for mix in mixes])


def test_the_level_of_the_file_changes_nothing_but_the_level_of_the_stems(separator, sources):
    mixes = sources.mean(1)
    plain = separate(separator, mixes)
    assert improvement(plain, sources).mean() > 30
    for level in (0.05, 2.0):
        scaled = separate(separator, mixes * level)
        # the same sources, scaled: the level is estimated, not assumed
        torch.testing.assert_close(scaled / level, plain, atol=2e-3 * float(plain.abs().max()),
                                   rtol=0)
        assert (improvement(scaled, sources) - improvement(plain, sources)).abs().max() < 0.5


def test_sources_at_their_own_levels_are_inside_their_priors(separator, sources):
    gains = torch.tensor([[1.0, 0.15, 0.6, 0.3], [0.2, 1.0, 0.1, 0.8],
                          [0.5, 0.5, 1.0, 0.12], [0.1, 0.3, 0.2, 1.0]])
    weighted = sources * gains[..., None]
    estimates = separate(separator, weighted.mean(1))
    gained = improvement(estimates, weighted)
    assert gained.mean() > 25 and (gained > 10).float().mean() >= 0.9


def test_a_class_that_is_not_in_the_mix_writes_silence(separator, sources):
    present = torch.tensor([[1, 0, 1, 0], [0, 1, 0, 1], [1, 1, 1, 0], [0, 0, 1, 1]]).bool()
    partial = sources * present[..., None]
    mixes = partial.mean(1)
    estimates = separate(separator, mixes)
    energy = (estimates / 4).pow(2).sum(-1) / mixes.pow(2).sum(-1, keepdim=True)
    assert (energy[~present] <= 1e-4).all()  # -40 dB of the mix at most
    assert (estimates[~present] == 0).float().mean() > 0.9  # mostly exact silence
    assert improvement(estimates, partial)[present].mean() > 25


def test_a_lone_source_comes_out_whole_and_the_others_silent(separator, sources):
    alone = sources.clone()
    alone[:, 1:] = 0  # the sine alone
    estimates = separate(separator, alone.mean(1))
    assert si_sdr(estimates[:, 0], alone[:, 0]).min() > 25
    assert (estimates[:, 1:] == 0).all()


def test_a_silent_segment_is_silent_in_every_slot(separator):
    estimates = separator.separate_tensor(torch.zeros(LENGTH))
    assert torch.equal(estimates, torch.zeros(4, LENGTH))


def test_known_absences_are_never_searched(separator, sources):
    partial = sources.clone()
    partial[:, [1, 3]] = 0
    mixes = partial.mean(1)
    result = extract_separate(separator.priors, mixes / 1.0, Mixing(),
                              separator.settings["extract"], classes=[0, 2])
    assert result.order.shape == (4, 2) and set(result.order.flatten().tolist()) == {0, 2}
    assert (result.sources[:, [1, 3]] == 0).all()
    assert improvement(result.sources, partial)[:, [0, 2]].mean() > 30


def test_separate_sources_writes_only_the_chosen_stems(tmp_path, sources):
    partial = sources[0].clone()
    partial[[1, 3]] = 0
    soundfile.write(tmp_path / "mix.wav", partial.mean(0).numpy(), 16000, subtype="FLOAT")
    result = runner.invoke(app, ["separate", str(tmp_path / "mix.wav"), "-m", "toy", "-o",
                                 str(tmp_path / "out"), "--sources", "square,sine",
                                 "--float32"])
    assert result.exit_code == 0, result.output
    written = sorted(path.name for path in (tmp_path / "out" / "mix").iterdir())
    assert written == ["sine.wav", "square.wav"]
    for k, name in ((0, "sine"), (2, "square")):
        stem, _ = soundfile.read(tmp_path / "out" / "mix" / f"{name}.wav", dtype="float32")
        assert float(si_sdr(torch.from_numpy(stem), partial[k])) > 30
    result = runner.invoke(app, ["separate", str(tmp_path / "mix.wav"), "-m", "toy", "-o",
                                 str(tmp_path / "out2"), "--sources", "sine,flute"])
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert "no source flute" in result.output and not (tmp_path / "out2").exists()


def test_spectral_priors_share_the_mix_among_the_chosen_sources_only():
    from importlib.resources import files

    audio, rate = soundfile.read(files("priorsep") / "examples" / "chorale_mix.wav",
                                 dtype="float32", frames=3 * 16000)
    mix = torch.from_numpy(audio)
    separator = Separator.from_pretrained("chorales-nmf", method="wiener", phase="mix")
    separator.only(["violin", "bassoon"])
    stems = separator.separate_audio(mix[None], rate)
    assert sorted(stems) == ["bassoon", "violin"]
    weights = separator.mixing.weights(4)
    total = weights[0] * stems["violin"][0] + weights[3] * stems["bassoon"][0]
    # two Wiener shares of the mix: together they are the whole mix
    assert float((total - mix).pow(2).mean() / mix.pow(2).mean()) < 1e-4


def test_samplers_separate_the_chosen_sources_under_the_mix():
    config = ModelConfig(sources=("a", "b", "c"),
                         architecture=GaussianConfig((0.0,) * 3, (0.3, 0.2, 0.5)))
    separator = Separator(build_priors(config), method="diffusion", segment_length=256)
    separator.configure(steps=8)
    separator.only(["c", "a"])
    mix = 0.3 * torch.randn(256, generator=torch.Generator().manual_seed(0))
    stems = separator.separate_audio(mix[None], 16000)
    assert sorted(stems) == ["a", "c"]
    # the projection constraint holds for the two: a_a s_a + a_c s_c is the mix
    torch.testing.assert_close((stems["a"][0] + stems["c"][0]) / 3, mix, atol=1e-4, rtol=0)


def test_a_class_trained_alone_joins_a_model_as_one_more_prior(tmp_path):
    rng = np.random.Generator(np.random.PCG64(7))
    folder = tmp_path / "solos" / "pulse"
    folder.mkdir(parents=True)
    for index in range(24):
        params = toy.params_from_uniform(torch.from_numpy(rng.random((3, 1))))
        wave = toy.render(params, 16000, 16000, names=("pulse",))[0]
        soundfile.write(folder / f"{index}.wav", wave.numpy(), 16000, subtype="FLOAT")
    result = runner.invoke(app, ["train", "--dataset", "folder", "--root",
                                 str(tmp_path / "solos"), "--prior", "wavetable", "--steps",
                                 "40", "--batch-size", "8", "--crop-length", str(LENGTH),
                                 "--lr", "3e-3", "--quiet", "-o", str(tmp_path / "pulse")])
    assert result.exit_code == 0, result.output
    combined = Separator.from_pretrained(f"toy,{tmp_path / 'pulse'}")
    assert combined.sources == toy.SOURCES + ("pulse",) and combined.method == "extract"
    four = ToyDataset("validation", n_examples=3).batch(range(3))[..., :LENGTH]
    params = toy.params_from_uniform(torch.from_numpy(rng.random((3, 3, 1))))
    five = torch.cat([four, toy.render(params, LENGTH, 16000, names=("pulse",))], dim=1)
    estimates = separate(combined, five.mean(1))
    assert improvement(estimates, five).mean() > 20


def test_one_chosen_source_with_two_stems_writes_it_and_silence(tmp_path, sources):
    soundfile.write(tmp_path / "mix.wav", sources[0, 0].numpy() / 4, 16000, subtype="FLOAT")
    result = runner.invoke(app, ["separate", str(tmp_path / "mix.wav"), "-m", "toy", "-o",
                                 str(tmp_path / "out"), "--sources", "sine", "--two-stems",
                                 "sine", "--float32"])
    assert result.exit_code == 0, result.output
    rest, _ = soundfile.read(tmp_path / "out" / "mix" / "no_sine.wav", dtype="float32")
    assert not rest.any()


def test_a_refining_sampler_keeps_known_absences_silent(separator, sources):
    from priorsep.config import ExtractConfig, LangevinConfig

    partial = sources[:2].clone()
    partial[:, [1, 3]] = 0
    config = ExtractConfig(refine="langevin")
    result = extract_separate(separator.priors, partial.mean(1), Mixing(), config,
                              langevin=LangevinConfig(n_levels=1, steps_per_level=2),
                              classes=[0, 2])
    assert (result.sources[:, [1, 3]] == 0).all()
    assert result.sources[:, [0, 2]].abs().amax(-1).min() > 0.1
