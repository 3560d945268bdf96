"""The search for the latent (f0, phase, gain) of one periodic source in a signal.

For each class k with wavetable W_k and learnt ranges of f0 and gain, the search finds the
latents that explain the most energy of a residual r with one source of that class:

    fit(f0, theta, g) = ||r||**2 - ||r - g W_k(frac(f0 t + theta))||**2 = 2 g c - g**2 e,

c the inner product of r with the rendering at gain 1 and e its energy; the best gain is
c / e clamped to the class's gain range. Phase and gain are solved for every trial f0 at once
(`oscillators.fold_by_phase` and `phase_correlation`: all `bins` phase offsets in one FFT), so
the search is over f0 alone: the residual's strongest spectral peaks (and, for sources whose
fundamental is weak, their subharmonics) are the trials, the best few per class are kept after
a first grid around each, and nested grids, each `refine_points` points over the spacing of
the one before, narrow them down to a small fraction of a cycle per segment (low notes need
f0 to much better than 0.1 Hz over a quarter second). It returns every candidate with its
fit, best first, so a beam or a diagnostic can read them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from priorsep.nn.oscillators import (
    fold_by_phase,
    phase_correlation,
    resample_table,
    spectral_peaks,
)


@dataclass(frozen=True)
class SearchSettings:
    """How finely the f0 search looks.

    Args:
        peaks: strongest spectral peaks of the residual taken as trial f0s.
        subharmonics: each peak p also proposes p / 2 ... p / subharmonics (a fundamental
            weaker than its harmonics; 1: the peaks alone).
        candidates: trials kept per class after the first refinement grid.
        oversample: the first refinement grid spans +-1 / (oversample * duration) Hz.
        rounds: nested refinement grids.
        refine_points: points per refinement grid (odd).
        search_bins: phase bins while refining (the final fit uses the tables' own).
    """

    peaks: int = 10
    subharmonics: int = 1
    candidates: int = 3
    oversample: int = 2
    rounds: int = 4
    refine_points: int = 9
    search_bins: int = 1024


@dataclass(frozen=True)
class LatentCandidates:
    """Candidate latents per signal and class, best fit first: each (batch, n_classes, n).

    `fit` is the energy explained (`||r||**2 - ||r - x||**2`); -inf marks no candidate (f0 range
    empty)."""

    f0: torch.Tensor
    phase: torch.Tensor
    gain: torch.Tensor
    fit: torch.Tensor


def phase_gain_fit(residual: torch.Tensor, f0: torch.Tensor, tables: torch.Tensor,
                   gain_low: torch.Tensor, gain_high: torch.Tensor, sample_rate: int,
                   bins: int | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Best phase and gain at every trial f0, and the energy they explain.

    Args:
        residual: (batch, n_classes, time), what class k sees in row k, with f0
            (batch, n_classes, n_trials); or (batch, time), seen by every class, with f0
            (batch, n_trials), the same trials for every class (folded once).
        tables: (n_classes, table_bins); gain_low, gain_high: (n_classes,).
        bins: phase bins (default: the tables' own).

    Returns:
        (phase in cycles, gain, fit), each (batch, n_classes, n_trials).
    """
    bins = bins or tables.shape[-1]
    tables = resample_table(tables, bins).to(residual.dtype)
    sums, counts = fold_by_phase(residual, f0, bins, sample_rate)  # (B, [K,] n, bins)
    if residual.dim() == 2:
        sums, counts = sums[:, None], counts[:, None]
    correlation = phase_correlation(sums, tables[:, None])  # (B, K, n, bins)
    energy = phase_correlation(counts, tables.pow(2)[:, None]).clamp_min(1e-9)
    low, high = gain_low[:, None, None], gain_high[:, None, None]
    gain = torch.minimum(torch.maximum(correlation / energy, low), high)
    fit = 2 * gain * correlation - gain.pow(2) * energy
    best, index = fit.max(dim=-1)
    return index.double() / bins, torch.gather(gain, -1, index[..., None])[..., 0], best


def search_latents(residual: torch.Tensor, tables: torch.Tensor, f0_low: torch.Tensor,
                   f0_high: torch.Tensor, gain_low: torch.Tensor, gain_high: torch.Tensor,
                   sample_rate: int, settings: SearchSettings = SearchSettings(),
                   trials: torch.Tensor | None = None) -> LatentCandidates:
    """The latents of one source of every class in `residual`, candidates best first.

    Args:
        residual: (batch, n_classes, time), row k searched with class k's table, or
            (batch, time), searched with every table.
        tables: (n_classes, bins); f0_low, f0_high, gain_low, gain_high: (n_classes,).
        trials: (batch, n_classes, n) f0s to start from instead of the spectral peaks (a
            pitch tracker's, for solos).

    Returns:
        `LatentCandidates`, each (batch, n_classes, settings.candidates).
    """
    residual = residual.float()
    length = residual.shape[-1]
    n_classes = tables.shape[0]
    if trials is None:
        peaks = spectral_peaks(residual, settings.peaks, sample_rate, float(f0_low.min()) * 0.9,
                               min(float(f0_high.max()) * 1.1, sample_rate / 2))
        f0 = torch.cat([peaks / divisor for divisor in range(1, settings.subharmonics + 1)], -1)
    else:
        f0 = trials.double()
    expanded = residual if residual.dim() == 3 else residual[:, None].expand(-1, n_classes, -1)
    spacing = sample_rate / (settings.oversample * length)
    offsets = torch.linspace(-1.0, 1.0, settings.refine_points, dtype=torch.float64,
                             device=residual.device)
    low, high = f0_low.double()[:, None, None], f0_high.double()[:, None, None]
    for round_ in range(settings.rounds):
        trials = f0[..., None] + spacing * offsets  # (B, [K,] C, P)
        if trials.dim() == 4:
            trials = trials.clamp(low, high)
        _, _, trial_fit = phase_gain_fit(residual if trials.dim() == 3 else expanded,
                                         trials.flatten(-2), tables, gain_low, gain_high,
                                         sample_rate, settings.search_bins)
        if trials.dim() == 3:  # the shared first grid: every class read it
            trials = trials[:, None].expand(-1, n_classes, -1, -1).clamp(low, high)
        trial_fit = trial_fit.view(trials.shape)
        best = trial_fit.argmax(dim=-1, keepdim=True)
        f0 = torch.gather(trials, -1, best)[..., 0]
        if round_ == 0:  # keep the best few trials per class
            keep = torch.gather(trial_fit, -1, best)[..., 0].topk(
                min(settings.candidates, f0.shape[-1]), dim=-1).indices
            f0 = torch.gather(f0, -1, keep)
        spacing = spacing * 2 / (settings.refine_points - 1)
    phase, gain, fit = phase_gain_fit(expanded, f0, tables, gain_low, gain_high, sample_rate)
    order = fit.argsort(dim=-1, descending=True)
    return LatentCandidates(*(torch.gather(value, -1, order) for value in (f0, phase, gain, fit)))


def posterior_mean_by_zoom(signals: torch.Tensor,
                           render: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                           f0: torch.Tensor, phase: torch.Tensor, gain_low: torch.Tensor,
                           gain_high: torch.Tensor, variance: torch.Tensor, sample_rate: int,
                           rounds: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The posterior mean of a source near a found latent, by nested (f0, theta) grids.

    Around (f0, theta), a 5 x 9 grid spanning +-half a sample of time shift (f0 moves the end
    of the segment by that much, theta the start), the gain profiled at every point (clamped
    to its range); `rounds` times, each grid 4 times narrower around the best point of the
    last; then the likelihood-weighted mean of the renderings of the finest grid, and the log
    of its mean likelihood. The edges of a square or sawtooth sampled at discrete times must
    fall between the right samples: hundreds of edges in a segment leave a window far narrower
    than a phase bin of the search.

    Args:
        signals: (batch, n, time); render(f0, phase) -> (batch, n, time) at gain 1;
        f0, phase: (batch, n); gain_low, gain_high: (n,); variance: (batch, n) of the noise.

    Returns:
        (mean (batch, n, time) float64, log mean likelihood of the finest grid (batch, n)).
    """
    length = signals.shape[-1]
    signals = signals.double()
    f0, phase = f0.double(), phase.double()
    width = 0.5  # half-width of the grid, in samples of time shift
    for _ in range(rounds):
        points, renders, log_likelihoods = [], [], []
        cycles_per_sample = f0 / sample_rate
        for f0_offset in torch.linspace(-width, width, 5).tolist():
            for phase_offset in torch.linspace(-width, width, 9).tolist():
                trial_f0 = f0 * (1 + f0_offset / length)  # moves the end by f0_offset
                trial_phase = phase + phase_offset * cycles_per_sample
                unit = render(trial_f0, trial_phase).double()
                inner = (signals * unit).sum(-1)
                energy = unit.pow(2).sum(-1).clamp_min(1e-9)
                gain = torch.minimum(torch.maximum(inner / energy, gain_low.double()),
                                     gain_high.double())
                points.append((trial_f0, trial_phase))
                renders.append(gain[..., None] * unit)
                log_likelihoods.append((2 * gain * inner - gain.pow(2) * energy)
                                       / (2 * variance))
        log_likelihoods = torch.stack(log_likelihoods)  # (G, B, N)
        best = log_likelihoods.argmax(0, keepdim=True)
        f0 = torch.gather(torch.stack([point[0] for point in points]), 0, best)[0]
        phase = torch.gather(torch.stack([point[1] for point in points]), 0, best)[0]
        width = width / 4
    weights = torch.softmax(log_likelihoods, dim=0)  # the last, finest grid
    mean = (weights[..., None] * torch.stack(renders)).sum(0)
    return mean, torch.logsumexp(log_likelihoods, 0) - math.log(len(renders))


def log_uniform_density(value: torch.Tensor, low: torch.Tensor, high: torch.Tensor
                        ) -> torch.Tensor:
    """log p(value) of a density uniform in log value over [low, high] (same shapes, or
    low and high broadcast over the last dimension)."""
    return -torch.log(value.clamp_min(1e-12)) - torch.log(torch.log(high / low.clamp_min(1e-12)))


def latent_price(dimensions: int, length: int) -> float:
    """What explaining a signal of `length` samples with `dimensions` fitted latent numbers
    costs in evidence: the Bayesian information criterion's (d / 2) log T (Schwarz 1978),
    the log of how much narrower their posterior is than their prior."""
    return 0.5 * dimensions * math.log(length)


def noise_log_likelihood(signals: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """log N(x; 0, sigma**2) of each row: signals (..., time), sigma (...) -> (...) float64
    (nothing but noise: a source absent)."""
    variance = sigma.double().pow(2)
    return (-signals.double().pow(2).sum(-1) / (2 * variance)
            - 0.5 * signals.shape[-1] * torch.log(2 * math.pi * variance))
