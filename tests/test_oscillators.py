"""The generator priors' signal processors against closed forms."""

from __future__ import annotations

import math

import torch

from priorsep.nn.oscillators import (
    fold_by_phase,
    fundamental,
    phase_correlation,
    phase_positions,
    render_table,
    resample_table,
    spectral_peaks,
    yin,
)

RATE = 16000


def sine_table(bins: int = 1024) -> torch.Tensor:
    return torch.sin(2 * math.pi * torch.arange(bins, dtype=torch.float64) / bins)


def test_render_table_of_a_sine_table_is_the_sine():
    f0, phase = torch.tensor(441.3), torch.tensor(0.2)
    positions = phase_positions(f0, phase, 2048, RATE)
    rendered = render_table(sine_table(4096), positions)
    time = torch.arange(2048, dtype=torch.float64) / RATE
    expected = torch.sin(2 * math.pi * (441.3 * time + 0.2))
    assert (rendered - expected).abs().max() < 1e-5  # linear interpolation, 4096 bins


def test_fold_at_the_true_period_gives_the_waveform_and_correlation_its_phase():
    bins, theta = 256, 0.3125  # theta on the bin grid: 80 bins
    f0 = torch.tensor([[523.1]], dtype=torch.float64)
    signal = 0.7 * render_table(sine_table(bins), phase_positions(f0[0, 0], torch.tensor(theta),
                                                                  8000, RATE))
    sums, counts = fold_by_phase(signal[None].float(), f0, bins, RATE)
    average = sums / counts.clamp_min(1)
    shifted = torch.roll(sine_table(bins), -round(theta * bins)).float()
    seen = counts[0, 0] > 0
    assert (average[0, 0][seen] - 0.7 * shifted[seen]).abs().max() < 0.03
    correlation = phase_correlation(sums, sine_table(bins).float())
    assert int(correlation[0, 0].argmax()) == round(theta * bins)


def test_spectral_peaks_and_fundamental_of_a_sine():
    time = torch.arange(4096, dtype=torch.float64) / RATE
    signal = 0.5 * torch.cos(2 * math.pi * 1000.37 * time + 1.0) + 0.1 * torch.cos(
        2 * math.pi * 3000.0 * time)
    peaks = spectral_peaks(signal, 2, RATE)
    assert abs(float(peaks[0]) - 1000.37) < 0.5 and abs(float(peaks[1]) - 3000.0) < 0.5
    amplitude = fundamental(signal, torch.tensor(1000.37, dtype=torch.float64), RATE)
    assert abs(float(amplitude.abs()) - 0.5) < 0.01
    assert abs(float(amplitude.angle()) - 1.0) < 0.01


def test_resample_table_keeps_a_band_limited_table():
    table = sine_table(64) + 0.5 * torch.cos(3 * 2 * math.pi * torch.arange(64) / 64)
    torch.testing.assert_close(resample_table(resample_table(table, 256), 64), table)


def test_yin_finds_a_weak_fundamental_that_the_strongest_peak_misses():
    time = torch.arange(4096, dtype=torch.float64) / RATE
    tone = 0.1 * torch.sin(2 * math.pi * 110.0 * time) + sum(
        torch.sin(2 * math.pi * h * 110.0 * time) / h for h in range(2, 10))
    noise = torch.randn(4096, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    f0, aperiodicity = yin(torch.stack([tone, noise]), RATE, 50.0, 2000.0)
    assert abs(float(f0[0]) - 110.0) < 0.5 and float(aperiodicity[0]) < 0.05
    assert float(aperiodicity[1]) > 0.5  # noise has no period
    assert abs(float(spectral_peaks(tone, 1, RATE)[0]) - 220.0) < 1.0  # the peak: a harmonic
