"""The toy dataset: sine, sawtooth, square and triangle waves, generated on the fly.

Per example and source independently: frequency uniform over the piano range
[27.5 Hz, 4186 Hz], amplitude uniform [0.8, 1.0], phase uniform [0, 2 pi). The mix is the mean.
The fixed splits draw each example's parameters from `numpy.random.SeedSequence((seed, split,
index))`, so an example depends only on its index, and render them in float64 on the CPU
before casting to float32: the test split is the same on every run and machine.

Reference: the toy experiment of Jayaram & Thickstun 2020 (BASIS), arXiv 2002.07942.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

SOURCES: tuple[str, ...] = ("sine", "sawtooth", "square", "triangle")
EXTRA_SOURCES: tuple[str, ...] = ("pulse",)
"""Shapes the generator can render that are not in the toy dataset: a class to train on its
own and add to a model of the four (a pulse wave of 25 % duty cycle, zero mean)."""
SPLITS = {"train": (0, 5000), "validation": (1, 500), "test": (2, 1500)}
"""Split name -> (split id in the seed, default number of examples)."""
DEFAULT_SEED = 2020


@dataclass(frozen=True)
class ToyParams:
    """Oscillator parameters, each (n_sources,) or (batch, n_sources), float64."""

    frequency: torch.Tensor
    amplitude: torch.Tensor
    phase: torch.Tensor


def render(params: ToyParams, length: int, sample_rate: int,
           names: tuple[str, ...] = SOURCES) -> torch.Tensor:
    """Render the waveforms (the four of the dataset by default).

    Args:
        params: tensors of shape (..., len(names)), in the order of `names`.
        length: samples per signal.

    Returns:
        (..., len(names), length) float32.
    """
    time = torch.arange(length, dtype=torch.float64) / sample_rate
    cycles = params.frequency[..., None] * time + params.phase[..., None] / (2 * math.pi)
    frac = cycles - torch.floor(cycles)  # (..., n, length) in [0, 1)
    waves = torch.stack([shape(name, frac[..., k, :]) for k, name in enumerate(names)],
                        dim=-2)
    return (waves * params.amplitude[..., None]).to(torch.float32)


def shape(name: str, positions: torch.Tensor) -> torch.Tensor:
    """One period of a toy waveform at phase positions in [0, 1), amplitude 1 (same dtype)."""
    if name == "sine":
        return torch.sin(2 * math.pi * positions)
    if name == "sawtooth":
        return 2 * positions - 1
    if name == "square":
        return torch.where(positions < 0.5, 1.0, -1.0).to(positions.dtype)
    if name == "triangle":
        return 1 - 4 * torch.abs(positions - 0.5)
    if name == "pulse":  # +1 for a quarter of the period, -1/3 for the rest: zero mean
        return torch.where(positions < 0.25, 1.0, -1.0 / 3.0).to(positions.dtype)
    raise ValueError(f"the toy generator has no source {name!r}")


FREQUENCY_RANGE = (27.5, 4186.0)
"""Hz: the piano's range."""
AMPLITUDE_RANGE = (0.8, 1.0)


def params_from_uniform(uniform: torch.Tensor) -> ToyParams:
    """Parameters from uniform draws (3, ..., n_sources) in [0, 1): frequency, amplitude and
    phase, each uniform over its range."""
    (low_f, high_f), (low_a, high_a) = FREQUENCY_RANGE, AMPLITUDE_RANGE
    return ToyParams(frequency=low_f + uniform[0] * (high_f - low_f),
                     amplitude=low_a + uniform[1] * (high_a - low_a),
                     phase=uniform[2] * 2 * math.pi)


def random_params(generator: torch.Generator, batch: int) -> ToyParams:
    """Independent parameters for `batch` examples of every source, from a torch generator."""
    return params_from_uniform(
        torch.rand(3, batch, len(SOURCES), generator=generator, dtype=torch.float64))


def random_sources(generator: torch.Generator, batch: int, length: int,
                   sample_rate: int = 16000) -> torch.Tensor:
    """A training batch of solo sources, (batch, 4, length) float32 (sources independent)."""
    return render(random_params(generator, batch), length, sample_rate)


class ToyDataset:
    """A fixed split of toy examples; item i is its sources, (4, length) float32.

    Args:
        split: "train", "validation" or "test".
        n_examples: how many (default: 5000 / 500 / 1500 as in the paper).
        sample_rate: Hz (16 kHz as in the paper; the thesis used 14.7 kHz).
        duration: seconds per example.
        seed: base seed; the default gives the published split.
    """

    sources = SOURCES

    def __init__(self, split: str = "test", n_examples: int | None = None,
                 sample_rate: int = 16000, duration: float = 1.0,
                 seed: int = DEFAULT_SEED) -> None:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
        split_id, default_n = SPLITS[split]
        self.split_id = split_id
        self.n_examples = default_n if n_examples is None else n_examples
        self.sample_rate = sample_rate
        self.length = int(round(duration * sample_rate))
        self.seed = seed

    def __len__(self) -> int:
        return self.n_examples

    def params(self, index: int) -> ToyParams:
        rng = np.random.Generator(np.random.PCG64(
            np.random.SeedSequence((self.seed, self.split_id, index))))
        return params_from_uniform(
            torch.from_numpy(rng.random((3, len(SOURCES)), dtype=np.float64)))

    def __getitem__(self, index: int) -> torch.Tensor:
        if not 0 <= index < self.n_examples:
            raise IndexError(index)
        return render(self.params(index), self.length, self.sample_rate)

    def batch(self, indices) -> torch.Tensor:
        """Stack examples: (len(indices), 4, length)."""
        return torch.stack([self[i] for i in indices])


class ToySources:
    """Endless training batches of toy sources, drawn from a torch generator (resumable)."""

    sources = SOURCES

    def __init__(self, sample_rate: int = 16000) -> None:
        self.sample_rate = sample_rate

    def sample(self, generator: torch.Generator, batch: int, length: int) -> torch.Tensor:
        """(batch, 4, length) float32, every source drawn independently."""
        return random_sources(generator, batch, length, self.sample_rate)
