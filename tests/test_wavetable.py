"""The generator priors: the exact toy reference, training from solos, staged extraction."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
import torch

from priorsep.config import ExtractConfig, ModelConfig, TrainConfig, WavetableConfig
from priorsep.data.toy import ToyDataset, ToySources
from priorsep.evaluation.diagnostics import assignment_accuracy, full_scale_response
from priorsep.metrics import si_sdr
from priorsep.nn.registry import build_priors
from priorsep.separation.extract import extract_separate
from priorsep.separation.mixing import Mixing
from priorsep.storage import load_model
from priorsep.training.priors import train

pytestmark = pytest.mark.usefixtures("one_thread")
LENGTH = 4096


@pytest.fixture(scope="module")
def exact():
    return build_priors(ModelConfig(architecture=WavetableConfig(exact=True))).eval()


@pytest.fixture(scope="module")
def validation():
    return ToyDataset("validation", n_examples=6).batch(range(6))[..., :LENGTH]


def test_exact_projection_recovers_every_toy_source(exact, validation):
    projected, latents = exact.project(validation)
    assert si_sdr(projected, validation).min() > 20  # the discontinuities of a square cost most
    params = ToyDataset("validation", n_examples=6)
    truth = torch.stack([params.params(i).frequency for i in range(6)]).float()
    assert (latents.f0 - truth).abs().max() < 0.1


def test_exact_priors_are_exclusive_and_class_discriminative(exact, validation):
    # given the whole mix (every source at its level), each prior returns one source of its
    # class: mostly one true source (a sine prior may take a square's fundamental, a part of
    # it), where a prior keeping the mix would score 1 on every source (rest 3)
    response = full_scale_response(exact, validation, Mixing(), 2.0)
    assert (response.top > 0.6).all() and (response.rest < 0.5 * response.top).all()
    # a solo is explained best by its own class (the profile evidence)
    log_prob = torch.stack([exact.log_prob(validation[:, [j] * 4], 0.1) for j in range(4)], 1)
    assert (log_prob.mean(0).argmax(dim=1) == torch.arange(4)).all()


def test_extraction_with_exact_priors_separates(exact, validation):
    mix = validation.mean(1)
    result = extract_separate(exact, mix, Mixing(), ExtractConfig(beam=2, sweeps=1))
    improvement = si_sdr(result.sources, validation) - si_sdr(mix[:, None].expand_as(validation),
                                                             validation)
    assert improvement.mean() > 30
    assert assignment_accuracy(result.sources, validation) == 1.0
    assert sorted(result.order[0].tolist()) == [0, 1, 2, 3]


def test_beam_never_scores_below_greedy(exact, validation):
    mix = validation.mean(1)
    greedy = extract_separate(exact, mix, Mixing(), ExtractConfig(beam=1, sweeps=0))
    beam = extract_separate(exact, mix, Mixing(), ExtractConfig(beam=3, sweeps=0))
    assert (beam.beam_evidence.max(-1).values >= greedy.beam_evidence[:, 0] - 1e-6).all()


def test_wavetables_train_from_solos_and_round_trip(tmp_path, validation):
    config = ModelConfig(architecture=WavetableConfig(segment_length=LENGTH))
    train_config = TrainConfig(steps=4, batch_size=8, crop_length=LENGTH, lr=3e-3,
                               checkpoint_every=2)
    priors = train(config, train_config, ToySources(), tmp_path / "model",
                   validation=validation)
    scores = priors.validation_scores(validation)
    assert min(scores) > 20  # reconstruction SI-SDR of held-out solos, dB
    assert priors.trained()
    # the learnt ranges hold the toy generator's: f0 in [27.5, 4186], RMS a * RMS(shape)
    assert (priors.f0_range[:, 0] < 1000).all() and (priors.f0_range[:, 1] > 2000).all()
    loaded = load_model(tmp_path / "model")
    torch.testing.assert_close(loaded.gain_range, priors.gain_range)
    torch.testing.assert_close(loaded.tables, priors.tables)
    mix = validation.mean(1)
    result = extract_separate(loaded, mix, Mixing(), ExtractConfig())
    improvement = si_sdr(result.sources, validation) - si_sdr(mix[:, None].expand_as(validation),
                                                             validation)
    assert improvement.mean() > 20


def test_samples_are_one_source_of_their_class_within_the_prior_levels(exact):
    samples = exact.sample(3, LENGTH, generator=torch.Generator().manual_seed(0))
    rms = samples.pow(2).mean(-1).sqrt()
    _, _, low, high = exact.bounds()
    assert ((rms >= low * 0.999) & (rms <= high * 1.001)).all()
    # the prior's levels span the learnt range widened by 40 dB below and 20 dB above
    torch.testing.assert_close(low, exact.gain_range[:, 0] / 100)
    torch.testing.assert_close(high, exact.gain_range[:, 1] * 10)
    projected, _ = exact.project(samples)
    assert si_sdr(projected, samples).min() > 20


def instrument(shape: str, notes: list[float], rate: int = 16000, note_seconds: float = 0.5,
               seed: int = 0) -> np.ndarray:
    """A solo of harmonic notes: 'reed' (odd harmonics) or 'string' (all, 1/h), with a 5 ms
    fade at every note boundary."""
    rng = np.random.default_rng(seed)
    length = int(note_seconds * rate)
    time = np.arange(length) / rate
    fade = np.minimum(1.0, np.minimum(np.arange(length), np.arange(length)[::-1]) / 80)
    harmonics = range(1, 16, 2) if shape == "reed" else range(1, 16)
    pieces = []
    for f0 in notes:
        phase = rng.uniform(0, 2 * np.pi)
        tone = sum(np.sin(2 * np.pi * h * f0 * time + h * phase) / h for h in harmonics
                   if h * f0 < rate / 2)
        pieces.append(0.3 * tone * fade)
    return np.concatenate(pieces).astype(np.float32)


def test_wavetables_train_on_a_folder_of_instrument_solos_and_separate_a_mix(tmp_path):
    from typer.testing import CliRunner

    from priorsep.cli import app

    root = tmp_path / "solos"
    for name, shape, notes in (("reed", "reed", [220.0, 247.5, 277.2, 293.7, 330.0, 370.0]),
                               ("string", "string", [440.0, 494.0, 523.3, 587.3, 659.3, 740.0])):
        (root / name).mkdir(parents=True)
        for index in range(2):
            soundfile.write(root / name / f"{index}.wav",
                            instrument(shape, notes[index::2] * 2, seed=index), 16000)
    out = tmp_path / "model"
    result = CliRunner().invoke(app, [
        "train", "--dataset", "folder", "--root", str(root), "--prior", "wavetable",
        "--out", str(out), "--steps", "3", "--batch-size", "4", "--crop-length", "2048",
        "--lr", "3e-3", "-q"])
    assert result.exit_code == 0, result.output
    priors = load_model(out)
    assert priors.config.family == "wavetable" and priors.sources == ("reed", "string")
    # a mix of one note of each (held-out pitches inside the learnt ranges), through separate
    reed = instrument("reed", [261.6], note_seconds=0.256, seed=5)[:4096]
    string = instrument("string", [554.4], note_seconds=0.256, seed=6)[:4096]
    soundfile.write(tmp_path / "mix.wav", (reed + string) / 2, 16000, subtype="FLOAT")
    result = CliRunner().invoke(app, ["separate", str(tmp_path / "mix.wav"), "-m", str(out),
                                      "-o", str(tmp_path / "stems"), "--float32", "-q"])
    assert result.exit_code == 0, result.output
    stems = torch.stack([torch.from_numpy(soundfile.read(
        tmp_path / "stems" / "mix" / f"{name}.wav", dtype="float32")[0]) for name in
        ("reed", "string")])
    truth = torch.from_numpy(np.stack([reed, string]))
    assert (si_sdr(stems, truth) - si_sdr(torch.from_numpy((reed + string) / 2).expand(2, -1),
                                          truth)).min() > 10
