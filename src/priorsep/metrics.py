"""Separation metrics (SI-SDR, SDR) and likelihood tables."""

from __future__ import annotations

import torch

from priorsep.nn.interface import SourcePrior


def si_sdr(estimate: torch.Tensor, reference: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale-invariant SDR in dB over the last axis.

    Reference: Le Roux et al. 2019, "SDR - half-baked or well done?", arXiv 1811.02508.
    """
    estimate = estimate - estimate.mean(dim=-1, keepdim=True)
    reference = reference - reference.mean(dim=-1, keepdim=True)
    scale = (estimate * reference).sum(-1, keepdim=True) / (reference.pow(2).sum(-1, keepdim=True)
                                                           + eps)
    target = scale * reference
    residual = estimate - target
    return 10 * torch.log10((target.pow(2).sum(-1) + eps) / (residual.pow(2).sum(-1) + eps))


def sdr(estimate: torch.Tensor, reference: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Plain signal-to-distortion ratio in dB over the last axis (no projection)."""
    error = (estimate - reference).pow(2).sum(-1)
    return 10 * torch.log10((reference.pow(2).sum(-1) + eps) / (error + eps))


@torch.inference_mode()
def cross_likelihood(priors: SourcePrior, sources: torch.Tensor, sigma: float = 0.0,
                     batch_size: int = 8) -> torch.Tensor:
    """Mean log-likelihood (nats/sample) of every source's data under every prior.

    Args:
        sources: (n, n_sources, time) held-out solo sources, in the priors' source order.
        sigma: noise level given to the priors (the data is not noised here).

    Returns:
        (n_sources, n_sources): entry [i, j] is source i's data under prior j.
    """
    device = priors.device
    n, n_sources, time = sources.shape
    table = torch.zeros(n_sources, n_sources, dtype=torch.float64)
    for i in range(n_sources):
        for chunk in sources[:, i : i + 1].split(batch_size):
            # every prior sees source i's signal: (b, 1, T) -> (b, N, T)
            data = chunk.expand(-1, n_sources, -1).to(device)
            table[i] += priors.log_prob(data, sigma).double().sum(dim=0).cpu()
    return table / (n * time)
