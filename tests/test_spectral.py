"""The spectral families (NMF, spectral VAE): trained on solos of two synthetic instruments,
they separate mixes of them, at any level, and give a resting part (nearly) nothing."""

from __future__ import annotations

import math

import pytest
import torch

from priorsep.api import Separator
from priorsep.config import ModelConfig, NMFConfig, SpectralVAEConfig, TrainConfig
from priorsep.metrics import si_sdr
from priorsep.nn.spectral import beta_divergence, fit_activations
from priorsep.training import train

RATE = 8000
SOURCES = ("organ", "bell")


def note(kind: str, length: int, generator: torch.Generator) -> torch.Tensor:
    """One note of a synthetic instrument: `organ` (harmonics 1-8 at 1/h, a low pitch) or
    `bell` (inharmonic partials 1, 2.76, 5.4, 8.9 of a higher pitch, decaying)."""
    time = torch.arange(length) / RATE
    if kind == "organ":
        f0 = [110.0, 131.0, 147.0, 165.0, 196.0][int(torch.randint(5, (1,), generator=generator))]
        partials = [(h * f0, 1 / h) for h in range(1, 9)]
        envelope = torch.ones(length)
    else:
        f0 = [520.0, 610.0, 700.0][int(torch.randint(3, (1,), generator=generator))]
        partials = [(r * f0, a) for r, a in ((1, 1), (2.76, 0.6), (5.4, 0.4), (8.9, 0.25))]
        envelope = torch.exp(-3 * time)
    phases = torch.rand(len(partials), generator=generator) * 2 * math.pi
    wave = sum(a * torch.sin(2 * math.pi * f * time + p)
               for (f, a), p in zip(partials, phases) if f < RATE / 2)
    return 0.2 * envelope * wave / max(a for _, a in partials)


class SyntheticSolos:
    """Solo crops of the two instruments, each crop a sequence of notes of 2048 samples."""

    sources = SOURCES

    def sample(self, generator: torch.Generator, batch: int, length: int) -> torch.Tensor:
        crops = torch.zeros(batch, len(SOURCES), length)
        for b in range(batch):
            for k, kind in enumerate(SOURCES):
                for start in range(0, length, 2048):
                    piece = note(kind, 2048, generator)[:length - start]
                    crops[b, k, start:start + piece.shape[0]] = piece
        return crops


@pytest.fixture(scope="module", params=["nmf", "vae"])
def trained(request, tmp_path_factory):
    architecture = (NMFConfig(n_fft=256, hop=64, rank=8, fit_iterations=100)
                    if request.param == "nmf" else
                    SpectralVAEConfig(n_fft=256, hop=64, rank=8, latent=4, hidden=32,
                                      warm_iterations=50, iterations=50))
    config = ModelConfig(sources=SOURCES, sample_rate=RATE, architecture=architecture)
    torch.manual_seed(0)
    priors = train(config, TrainConfig(steps=150, batch_size=4, crop_length=8192, lr=1e-2,
                                       seed=0), SyntheticSolos(),
                   tmp_path_factory.mktemp(request.param))
    return Separator(priors, batch_size=2)


def test_mixes_separate_far_above_the_mix(trained):
    truth = SyntheticSolos().sample(torch.Generator().manual_seed(7), 3, 16384)
    mix = trained.mixing(truth)
    estimates = trained.separate_tensor(mix)
    gain = si_sdr(estimates, truth) - si_sdr(mix[:, None].expand_as(truth), truth)
    assert float(gain.mean()) > 10, gain


def test_the_level_of_the_mix_does_not_change_the_result(trained):
    truth = SyntheticSolos().sample(torch.Generator().manual_seed(8), 2, 16384)
    mix = trained.mixing(truth)
    plain = trained.separate_tensor(mix)
    for level in (0.05, 2.0):
        scaled = trained.separate_tensor(mix * level) / level
        assert float(si_sdr(scaled, plain).min()) > 30


def test_a_resting_part_gets_next_to_nothing(trained):
    truth = SyntheticSolos().sample(torch.Generator().manual_seed(9), 2, 16384)
    truth[:, 1, 4096:12288] = 0  # the bell rests
    mix = trained.mixing(truth)
    estimates = trained.separate_tensor(mix)
    written = (trained.mixing.weights(2)[1] * estimates[:, 1, 5000:11000]).pow(2).sum()
    assert float(10 * torch.log10(written / mix[:, 5000:11000].pow(2).sum())) < -20


def test_the_mix_is_the_sum_of_the_contributions(trained):
    truth = SyntheticSolos().sample(torch.Generator().manual_seed(10), 1, 8192)
    mix = trained.mixing(truth)
    assert torch.allclose(trained.mixing(trained.separate_tensor(mix)), mix, atol=1e-5)


def test_misi_keeps_the_mix_and_changes_the_estimate(trained):
    truth = SyntheticSolos().sample(torch.Generator().manual_seed(11), 1, 8192)
    mix = trained.mixing(truth)
    masked = trained.separate_tensor(mix)
    trained.configure(phase="misi", misi_iterations=10)
    try:
        rebuilt = trained.separate_tensor(mix)
    finally:
        trained.configure(phase="mix")
    assert torch.allclose(trained.mixing(rebuilt), mix, atol=1e-5)
    assert not torch.allclose(rebuilt, masked, atol=1e-4)


def test_multiplicative_updates_lower_the_divergence():
    generator = torch.Generator().manual_seed(0)
    dictionary = torch.rand(20, 3, generator=generator) + 0.01
    truth = torch.rand(1, 3, 30, generator=generator)
    spectra = dictionary @ truth
    for beta in (0.0, 1.0, 2.0):
        few = fit_activations(spectra, dictionary, 2, beta)
        many = fit_activations(spectra, dictionary, 300, beta)
        assert (beta_divergence(spectra, dictionary @ many + 1e-9, beta).sum()
                < beta_divergence(spectra, dictionary @ few + 1e-9, beta).sum())
        assert float(beta_divergence(spectra, dictionary @ many + 1e-9, beta).mean()) < 1e-3


@pytest.mark.parametrize("prior,fields", [
    ("nmf", ["n_fft=256", "hop=64", "rank=8"]),
    ("vae", ["n_fft=256", "hop=64", "rank=8", "latent=4", "hidden=32", "iterations=30"])])
def test_train_and_separate_through_the_command_line(tmp_path, prior, fields):
    import soundfile
    from typer.testing import CliRunner

    from priorsep.cli import app
    from priorsep.storage import load_model

    solos = SyntheticSolos().sample(torch.Generator().manual_seed(3), 2, 16384)
    root = tmp_path / "solos"
    for k, name in enumerate(SOURCES):
        (root / name).mkdir(parents=True)
        for index in range(2):
            soundfile.write(root / name / f"{index}.wav", solos[index, k].numpy(), RATE)
    out = tmp_path / "model"
    sets = [item for field in fields for item in ("--set", field)]
    result = CliRunner().invoke(app, [
        "train", "--dataset", "folder", "--root", str(root), "--prior", prior,
        "--sample-rate", str(RATE), "--out", str(out), "--steps", "60", "--batch-size", "4",
        "--crop-length", "4096", "--lr", "1e-2", "-q", *sets])
    assert result.exit_code == 0, result.output
    assert load_model(out).config.family == prior
    truth = SyntheticSolos().sample(torch.Generator().manual_seed(4), 1, 16384)[0]
    mix = truth.mean(0)
    soundfile.write(tmp_path / "mix.wav", mix.numpy(), RATE, subtype="FLOAT")
    for phase in ("mix", "misi"):
        result = CliRunner().invoke(app, [
            "separate", str(tmp_path / "mix.wav"), "-m", str(out), "-o",
            str(tmp_path / phase), "--float32", "--phase", phase, "-q"])
        assert result.exit_code == 0, result.output
        stems = torch.stack([torch.from_numpy(soundfile.read(
            tmp_path / phase / "mix" / f"{name}.wav", dtype="float32")[0]) for name in SOURCES])
        gain = si_sdr(stems, truth) - si_sdr(mix.expand_as(truth), truth)
        assert float(gain.min()) > 8, (phase, gain)
    result = CliRunner().invoke(app, ["separate", str(tmp_path / "mix.wav"), "-m", "toy",
                                      "-o", str(tmp_path / "toy"), "--phase", "misi"])
    assert result.exit_code == 2 and "--phase applies to the wiener method" in result.output


@pytest.mark.parametrize("model", ["chorales", "chorales-nmf"])
def test_the_bundled_chorale_models_separate_the_bundled_chorale(tmp_path, model):
    import soundfile
    from typer.testing import CliRunner

    from priorsep.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["example", str(tmp_path / "chorale.wav"), "--name", "chorale"])
    assert result.exit_code == 0, result.output
    mix, rate = soundfile.read(tmp_path / "chorale.wav", dtype="float32")
    assert rate == 16000 and mix.shape == (160000,)
    result = runner.invoke(app, ["separate", str(tmp_path / "chorale.wav"), "-m", model,
                                 "-o", str(tmp_path / "stems"), "--float32", "--duration", "4",
                                 "-q"])
    assert result.exit_code == 0, result.output
    stems = torch.stack([torch.from_numpy(soundfile.read(
        tmp_path / "stems" / "chorale" / f"{name}.wav", dtype="float32")[0])
        for name in ("violin", "clarinet", "saxophone", "bassoon")])
    mix = torch.from_numpy(mix[:stems.shape[-1]])
    assert torch.allclose(stems.mean(0), mix, atol=1e-4)  # the mix is their mean
    for stem in stems:  # every stem its own part: none is (a scaled copy of) the mix
        correlation = (stem * mix).sum() / (stem.norm() * mix.norm())
        assert float(correlation) < 0.9
    # the parts are not each other either: the soprano's stem barely correlates with the bass's
    assert abs(float((stems[0] * stems[3]).sum() / (stems[0].norm() * stems[3].norm()))) < 0.2


def test_the_chorale_example_refuses_an_unknown_name(tmp_path):
    from typer.testing import CliRunner

    from priorsep.cli import app

    result = CliRunner().invoke(app, ["example", str(tmp_path / "x.wav"), "--name", "drums"])
    assert result.exit_code == 2 and "choose toy or chorale" in result.output


def test_the_wiener_method_needs_a_spectral_family():
    from priorsep.config import GaussianConfig
    from priorsep.errors import CapabilityError
    from priorsep.nn.registry import build_priors

    gaussian = build_priors(ModelConfig(sources=SOURCES, architecture=GaussianConfig(
        (0.0, 0.0), (1.0, 1.0))))
    separator = Separator(gaussian, method="wiener", segment_length=256)
    with pytest.raises(CapabilityError, match="give no power spectra"):
        separator.separate_tensor(torch.randn(256))


def test_the_vae_combines_its_fit_with_the_nmf_warm_start(trained):
    """nmf_weight 1 gives exactly the warm start's variances, 0 the VAE's own, and 0.5 their
    geometric mean."""
    import dataclasses

    priors = trained.priors
    if priors.config.family != "vae":
        pytest.skip("the product of experts is the VAE's")
    truth = SyntheticSolos().sample(torch.Generator().manual_seed(12), 1, 8192)
    spectra = priors.transform.stft(trained.mixing(truth))
    original = priors.config
    fits = {}
    try:
        for weight in (0.0, 0.5, 1.0):
            priors.config = dataclasses.replace(original, architecture=dataclasses.replace(
                original.architecture, nmf_weight=weight))
            fits[weight] = priors.mix_variances(spectra)
    finally:
        priors.config = original
    warm = priors.nmf.mix_variances(spectra)
    assert torch.allclose(fits[1.0], warm, rtol=1e-4)
    assert not torch.allclose(fits[0.0], warm, rtol=1e-2)
    assert torch.allclose(fits[0.5], (fits[0.0] * fits[1.0]).sqrt(), rtol=1e-3)
