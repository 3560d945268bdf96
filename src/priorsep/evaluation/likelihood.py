"""The likelihood experiments: cross-likelihood, noise conditioning, constant and random inputs,
Gaussian noise against its level.

Every figure is a mean log-likelihood in nats per sample (the flow's exact log-density of a
whole excerpt divided by its length). Noise is drawn once from a seeded CPU generator and scaled
to each level (common random numbers), so two entries of a table differ by the level only.
Every function returns a JSON-ready dict; tables are lists of rows.

Reference: the cross-likelihood and noise-conditioning experiments of Jayaram & Thickstun 2020
(BASIS), arXiv 2002.07942, and of the thesis this package starts from (M. Frank, University of
Amsterdam), Table 2 and Figs. 9-12.
"""

from __future__ import annotations

import math

import torch

from priorsep.evaluation.levels import Priors, PriorsUnderTest
from priorsep.metrics import cross_likelihood
from priorsep.nn.interface import validation_log_likelihood
from priorsep.separation import CountCallback

GAUSSIAN_SIGMAS: tuple[float, ...] = tuple(10 ** (k / 4) for k in range(-12, 1))
"""Levels of the pure-noise inputs: 13 geometric steps from 0.001 to 1."""
RANDOM_INPUT_STD = 0.5
"""The thesis' N(0, 0.5) random input, read as a standard deviation of 0.5."""

"""(steps done, total steps) of one section."""


def gaussian_noise(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Standard normal noise from a CPU generator seeded with `seed` (device-independent)."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def table_summary(table: torch.Tensor) -> dict:
    """How clearly a cross-likelihood table (rows: data, columns: prior) has its diagonal.

    Returns:
        `own_prior_best`: per data row, whether its own prior gives it the highest likelihood;
        `own_data_best`: per prior column, whether its own data scores highest under it;
        `diagonal_margin`: smallest diagonal entry minus largest off-diagonal entry (positive
        when every diagonal entry beats every off-diagonal one).
    """
    n = table.shape[0]
    diagonal = table.diagonal()
    off_diagonal = table[~torch.eye(n, dtype=torch.bool)]
    margin = float(diagonal.min() - off_diagonal.max()) if n > 1 else math.nan
    return {
        "own_prior_best": [bool(table[i].argmax() == i) for i in range(n)],
        "own_data_best": [bool(table[:, j].argmax() == j) for j in range(n)],
        "diagonal_margin": margin,
    }


def _table(table: torch.Tensor, sigma: float) -> dict:
    return {"sigma": sigma, "table": table.tolist(), **table_summary(table)}


def cross_section(model: PriorsUnderTest, sources: torch.Tensor,
                  progress: CountCallback | None = None) -> dict:
    """Mean log-likelihood of each source's held-out data under each prior (clean priors).

    Args:
        sources: (n, n_sources, time) held-out excerpts, in the model's source order.

    Returns:
        {"sigma", "table": N x N rows (data) by columns (prior), and `table_summary`'s keys}.
    """
    table = cross_likelihood(model.priors, sources, model.base_sigma)
    if progress is not None:
        progress(1, 1)
    return _table(table, model.base_sigma)


def noise_section(model: PriorsUnderTest, sources: torch.Tensor, seed: int,
                  progress: CountCallback | None = None) -> dict:
    """Held-out data noised at each level under the priors of each level, and the
    cross-likelihood matrix at each level (data noised at that level).

    Args:
        sources: (n, n_sources, time) held-out excerpts.
        seed: seeds the one noise draw that every level scales.

    Returns:
        {"data_sigmas": [0, levels...], "prior_sigmas": levels,
         "by_source": {source: rows (data sigma) x columns (prior level)},
         "mean_over_sources": the same averaged over the sources,
         "cross_likelihood": one `cross_section`-like table per level}.
    """
    levels = model.levels
    data_sigmas = [0.0] + [level.sigma for level in levels]
    noise = gaussian_noise(tuple(sources.shape), seed)
    total = len(data_sigmas) * len(levels) + len(levels)
    done = 0
    by_level = torch.zeros(len(data_sigmas), len(levels), len(model.sources), dtype=torch.float64)
    for d, data_sigma in enumerate(data_sigmas):
        noisy = sources + data_sigma * noise
        for p, level in enumerate(levels):
            by_level[d, p] = torch.tensor(
                validation_log_likelihood(level.priors, noisy, level.sigma), dtype=torch.float64)
            done += 1
            if progress is not None:
                progress(done, total)
    tables = []
    for level in levels:
        table = cross_likelihood(level.priors, sources + level.sigma * noise, level.sigma)
        tables.append(_table(table, level.sigma))
        done += 1
        if progress is not None:
            progress(done, total)
    return {
        "data_sigmas": data_sigmas,
        "prior_sigmas": [level.sigma for level in levels],
        "by_source": {source: by_level[:, :, k].tolist()
                      for k, source in enumerate(model.sources)},
        "mean_over_sources": by_level.mean(dim=2).tolist(),
        "cross_likelihood": tables,
    }


def _own_log_likelihood(priors: Priors, inputs: torch.Tensor, sigma: float) -> list[float]:
    """Mean log-likelihood (nats/sample) of `inputs` (n, time), the same signal for every
    source, under each source's prior: (n_sources,) as a list."""
    n_sources = len(priors.sources)
    return validation_log_likelihood(priors, inputs[:, None, :].expand(-1, n_sources, -1)
                                     .contiguous(), sigma)


def constant_inputs(length: int, seed: int, n_random: int) -> dict[str, torch.Tensor]:
    """The probe inputs of the constant section: name -> (n, length)."""
    return {
        "constant 0": torch.zeros(1, length),
        "constant 1": torch.ones(1, length),
        f"N(0, {RANDOM_INPUT_STD}²)": RANDOM_INPUT_STD * gaussian_noise((n_random, length), seed),
    }


def constant_section(model: PriorsUnderTest, length: int, seed: int, n_random: int = 4,
                     progress: CountCallback | None = None) -> dict:
    """Constant 0, constant 1 and N(0, 0.5²) noise under every prior, clean and at each level.

    Args:
        length: samples per input (a full receptive field, rounded up to the length multiple).
        n_random: independent draws of the random input (averaged).

    Returns:
        {"length", "inputs": names, "conditions": [{"sigma", "label"}],
         "log_likelihood": {input: rows (condition) x columns (source)}}.
    """
    inputs = constant_inputs(length, seed, n_random)
    conditions = [("clean" if model.base_sigma == 0 else f"base, sigma={model.base_sigma:g}",
                   model.base_sigma, model.priors)]
    conditions += [(f"sigma={level.sigma:g}", level.sigma, level.priors) for level in model.levels]
    total = len(inputs) * len(conditions)
    done = 0
    results: dict[str, list[list[float]]] = {}
    for name, signal in inputs.items():
        rows = []
        for _, sigma, priors in conditions:
            rows.append(_own_log_likelihood(priors, signal, sigma))
            done += 1
            if progress is not None:
                progress(done, total)
        results[name] = rows
    return {
        "length": length,
        "inputs": list(inputs),
        "random_input_std": RANDOM_INPUT_STD,
        "conditions": [{"label": label, "sigma": sigma} for label, sigma, _ in conditions],
        "log_likelihood": results,
    }


def gaussian_log_density(sigma: float) -> float:
    """E[log N(x; 0, sigma²)] per sample = -1/2 log(2 pi e sigma²): what a density that knew the
    noise exactly would score."""
    return -0.5 * math.log(2 * math.pi * math.e * sigma**2)


def gaussian_section(model: PriorsUnderTest, sources: torch.Tensor, seed: int,
                     n_noise: int = 4, noise_sigmas: tuple[float, ...] = GAUSSIAN_SIGMAS,
                     progress: CountCallback | None = None) -> dict:
    """Pure Gaussian noise of growing level under each (clean) prior, next to the prior's own
    held-out data.

    Args:
        sources: (n, n_sources, time) held-out excerpts; the noise has the same length.
        n_noise: noise excerpts per level.

    Returns:
        {"noise_sigmas", "log_likelihood": {source: one value per level},
         "data_log_likelihood": {source: own data}, "gaussian_log_density": per level,
         "noise_beats_data": {source: the levels whose noise scores above the data}}.
    """
    time = sources.shape[-1]
    noise = gaussian_noise((n_noise, time), seed)
    total = len(noise_sigmas) + 1
    data = validation_log_likelihood(model.priors, sources, model.base_sigma)
    if progress is not None:
        progress(1, total)
    curves = torch.zeros(len(noise_sigmas), len(model.sources), dtype=torch.float64)
    for index, sigma in enumerate(noise_sigmas):
        curves[index] = torch.tensor(
            _own_log_likelihood(model.priors, sigma * noise, model.base_sigma),
            dtype=torch.float64)
        if progress is not None:
            progress(index + 2, total)
    return {
        "sigma": model.base_sigma,
        "noise_sigmas": list(noise_sigmas),
        "log_likelihood": {source: curves[:, k].tolist()
                           for k, source in enumerate(model.sources)},
        "data_log_likelihood": dict(zip(model.sources, data)),
        "gaussian_log_density": [gaussian_log_density(sigma) for sigma in noise_sigmas],
        "noise_beats_data": {
            source: [sigma for sigma, value in zip(noise_sigmas, curves[:, k].tolist())
                     if value > data[k]]
            for k, source in enumerate(model.sources)},
    }
