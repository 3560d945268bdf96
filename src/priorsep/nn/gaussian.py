"""Analytic Gaussian priors: the reference family, with a known posterior and no parameters.

Every sample of source k is independent N(mu_k, v_k); noised at level sigma it is
N(mu_k, v_k + sigma**2), so log-density, score, denoiser and samples are closed-form. Samplers,
the separator and evaluation are checked against it (its posterior under a linear mix is
Gaussian too).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from priorsep.config import GaussianConfig, ModelConfig, TrainConfig
from priorsep.nn.interface import SourcePrior, expand_sigma


class GaussianPriors(SourcePrior):
    """N(means[k], variances[k] + sigma**2) per sample of source k.

    Args:
        config: the model configuration; `config.architecture` is a `GaussianConfig` with one
            mean and variance per source.
    """

    has_log_prob = True

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        arch: GaussianConfig = config.architecture
        if len(arch.means) != len(config.sources):
            raise ValueError(f"{len(arch.means)} means for {len(config.sources)} sources")
        self.register_buffer("means", torch.tensor(arch.means), persistent=False)
        self.register_buffer("variances", torch.tensor(arch.variances), persistent=False)

    def variance(self, sigma) -> torch.Tensor:
        """(n_sources,) variances of the noised priors at a float sigma."""
        return self.variances + float(sigma) ** 2

    def _moments(self, sources: torch.Tensor, sigma) -> tuple[torch.Tensor, torch.Tensor]:
        sigma = expand_sigma(sigma, sources)[..., None]  # (B, N, 1)
        return self.means.to(sources)[:, None], self.variances.to(sources)[:, None] + sigma**2

    def log_prob(self, sources: torch.Tensor, sigma=None) -> torch.Tensor:
        mean, variance = self._moments(sources, sigma)
        log_density = -0.5 * ((sources - mean) ** 2 / variance + torch.log(2 * math.pi * variance))
        return log_density.sum(dim=-1)

    def score(self, sources: torch.Tensor, sigma) -> torch.Tensor:
        mean, variance = self._moments(sources, sigma)
        return (mean - sources) / variance

    def sample(self, n: int, length: int, sigma=None, temperature: float = 1.0,
               generator: torch.Generator | None = None, progress=None) -> torch.Tensor:
        noise = torch.randn(n, len(self.sources), length, generator=generator)
        mean, variance = self._moments(noise, sigma)
        return mean + temperature * variance.sqrt() * noise

    def receptive_field(self) -> int:
        return 1

    def training_loss(self, model: nn.Module, clean: torch.Tensor, generator: torch.Generator,
                      config: TrainConfig) -> torch.Tensor:
        """Nothing to learn: the negative log-likelihood (nats/sample), for the record."""
        return -self.log_prob(clean.to(self.device), 0.0).mean() / clean.shape[-1]

    def summary(self) -> str:
        arch = self.config.architecture
        return ("analytic Gaussian priors, " + ", ".join(
            f"N({mean:g}, {variance:g})" for mean, variance in zip(arch.means, arch.variances)))
