"""The toy dataset: parameter ranges, waveform shapes, a bit-identical test split."""

from __future__ import annotations

import hashlib
import math

import torch

from priorsep.data.toy import SOURCES, ToyDataset, ToySources, random_params, render
from priorsep.separation.mixing import Mixing


def test_test_split_is_bit_identical_across_instances_and_order():
    first = ToyDataset("test", 20)
    second = ToyDataset("test", 20)
    forward = first.batch(range(20))
    backward = torch.stack([second[i] for i in reversed(range(20))]).flip(0)
    assert torch.equal(forward, backward)
    assert forward.dtype == torch.float32 and forward.shape == (20, 4, 16000)


def test_test_split_regression_hash():
    """The published split must never change: a hash of its first examples, pinned."""
    data = ToyDataset("test", 3).batch(range(3))
    digest = hashlib.sha256(data.numpy().tobytes()).hexdigest()[:16]
    assert digest == "32899a54783accd6"


def test_splits_differ_and_sample_rate_is_a_parameter():
    assert not torch.equal(ToyDataset("test")[0], ToyDataset("validation")[0])
    thesis = ToyDataset("test", 2, sample_rate=14700)
    assert thesis[0].shape == (4, 14700)


def test_parameter_ranges_and_statistics():
    params = random_params(torch.Generator().manual_seed(0), 4000)
    assert 27.5 <= params.frequency.min() and params.frequency.max() <= 4186
    assert 0.8 <= params.amplitude.min() and params.amplitude.max() <= 1.0
    assert 0 <= params.phase.min() and params.phase.max() < 2 * math.pi
    assert abs(params.frequency.mean().item() - (27.5 + 4186) / 2) < 40
    assert abs(params.amplitude.mean().item() - 0.9) < 0.005


def test_waveform_shapes():
    """Low frequency, unit amplitude: each class has its textbook power and peak."""
    n = len(SOURCES)
    params = random_params(torch.Generator().manual_seed(0), 1)
    params = type(params)(torch.full((1, n), 50.0, dtype=torch.float64),
                          torch.ones(1, n, dtype=torch.float64), params.phase)
    waves = render(params, 16000, 16000)[0]
    power = waves.pow(2).mean(dim=1)
    # sine 1/2, sawtooth 1/3, square 1, triangle 1/3
    assert torch.allclose(power, torch.tensor([0.5, 1 / 3, 1.0, 1 / 3]), atol=5e-3)
    assert waves.abs().max() <= 1.0
    assert set(waves[2].unique().tolist()) == {-1.0, 1.0}


def test_training_batches_are_resumable_and_sources_independent():
    data = ToySources()
    generator = torch.Generator().manual_seed(3)
    state = generator.get_state()
    first = data.sample(generator, 4, 512)
    generator.set_state(state)
    assert torch.equal(first, data.sample(generator, 4, 512))
    assert first.shape == (4, 4, 512)


def test_the_default_mixing_is_the_toys_mean():
    sources = ToyDataset("test", 1)[0]
    assert torch.allclose(Mixing()(sources[None])[0], sources.sum(0) / 4)
