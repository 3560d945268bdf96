"""Analytic Gaussian priors: the exact posterior is known, so samplers and encoders can be
checked against it."""

from __future__ import annotations

import math

import torch

from priorsep.separation.mixing import Mixing

MEANS = (0.5, -0.3, 0.1)
VARIANCES = (0.4, 0.2, 0.3)


class GaussianPriors:
    """Every sample of source k independent N(mu_k, v_k); noised at sigma, N(mu_k, v_k + sigma**2).

    Counts its calls: all of them, and those that build a graph (gradient evaluations).
    """

    def __init__(self, means=MEANS, variances=VARIANCES) -> None:
        self.means = torch.as_tensor(means)
        self.variances = torch.as_tensor(variances)
        self.sources = tuple(f"source{k}" for k in range(len(means)))
        self.calls = 0
        self.gradient_calls = 0

    def variance(self, sigma: float) -> torch.Tensor:
        return self.variances + sigma**2  # (n_sources,)

    def log_prob(self, sources: torch.Tensor, sigma) -> torch.Tensor:
        self.calls += 1
        self.gradient_calls += int(sources.requires_grad and torch.is_grad_enabled())
        sigma = torch.as_tensor(sigma, dtype=sources.dtype)
        sigma = sigma[..., None] if sigma.dim() == 2 else sigma  # (batch, n_sources, 1)
        variance = self.variances.to(sources)[:, None] + sigma**2
        mean = self.means.to(sources)[:, None]
        log_density = -0.5 * ((sources - mean) ** 2 / variance + torch.log(2 * math.pi * variance))
        return log_density.sum(dim=-1)


def closed_form_posterior(priors: GaussianPriors, mixing: Mixing, mix: torch.Tensor,
                          sigma: float, gamma: float):
    """Exact posterior of every time sample.

    Returns:
        mean (n_sources, time) and covariance (n_sources, n_sources), the same for every sample.
    """
    n_sources = len(priors.sources)
    weights = mixing.weights(n_sources, torch.float64)
    prior_precision = torch.diag(1 / priors.variance(sigma).double())
    precision = prior_precision + torch.outer(weights, weights) / gamma**2
    covariance = torch.linalg.inv(precision)
    rhs = ((prior_precision @ priors.means.double())[:, None]
           + weights[:, None] * mix.double() / gamma**2)
    return covariance @ rhs, covariance
