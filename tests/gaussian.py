"""Analytic Gaussian priors that count their calls: the exact posterior is known, so samplers
and encoders can be checked against it."""

from __future__ import annotations

import torch

from priorsep.config import GaussianConfig, ModelConfig
from priorsep.nn import gaussian
from priorsep.separation.mixing import Mixing

MEANS = (0.5, -0.3, 0.1)
VARIANCES = (0.4, 0.2, 0.3)


class GaussianPriors(gaussian.GaussianPriors):
    """The package's Gaussian family, counting its calls: all of them, and those that build a
    graph (gradient evaluations)."""

    def __init__(self, means=MEANS, variances=VARIANCES) -> None:
        sources = tuple(f"source{k}" for k in range(len(means)))
        super().__init__(ModelConfig(sources=sources, architecture=GaussianConfig(
            tuple(float(m) for m in means), tuple(float(v) for v in variances))))
        self.calls = 0
        self.gradient_calls = 0

    def log_prob(self, sources: torch.Tensor, sigma=None) -> torch.Tensor:
        self.calls += 1
        self.gradient_calls += int(sources.requires_grad and torch.is_grad_enabled())
        return super().log_prob(sources, sigma)

    def score(self, sources: torch.Tensor, sigma) -> torch.Tensor:
        self.calls += 1
        self.gradient_calls += 1
        return super().score(sources, sigma)


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
