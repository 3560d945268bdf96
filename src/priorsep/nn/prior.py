"""The set of source priors of a model: one density per source name.

`SourcePriors` holds either one grouped FloWaveNet (convolutions with groups=N, every source in
one pass, still independent) or N separate FloWaveNets; both expose the same methods on
(batch, sources, time) tensors. Which is faster is measured by `benchmarks/grouped_vs_separate.py`.
"""

from __future__ import annotations

import torch
from torch import nn

from priorsep.config import ModelConfig
from priorsep.nn.flows import FloWaveNet


def receptive_field(config: ModelConfig) -> int:
    """Exact receptive field, in input samples, of one output latent of the whole flow.

    A coupling at block b (time scale 2**b) sees (kernel-1)*sum(dilations) latent steps around
    its input; couplings compose, so the half-widths add up, scaled to input samples.
    """
    flow = config.flow
    half_width_latent = (flow.kernel_size - 1) // 2 * (2**flow.n_layers - 1)
    half_width = 0
    for block in range(1, flow.n_blocks + 1):
        half_width += flow.n_flows * half_width_latent * 2**block
    return 2 * half_width + 2**flow.n_blocks


class SourcePriors(nn.Module):
    """Independent densities p_k(s_k), one per source of `config.sources`.

    Args:
        config: the model configuration (sources, architecture, grouped or not).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        n_sources = len(config.sources)
        if config.grouped:
            self.flows = nn.ModuleList([FloWaveNet(config.flow, groups=n_sources)])
        else:
            self.flows = nn.ModuleList(FloWaveNet(config.flow) for _ in range(n_sources))

    @property
    def sources(self) -> tuple[str, ...]:
        return self.config.sources

    def _sigma(self, sources: torch.Tensor, sigma) -> torch.Tensor:
        sigma = torch.as_tensor(0.0 if sigma is None else sigma, dtype=sources.dtype,
                                device=sources.device)
        return sigma.expand(sources.shape[0], sources.shape[1]) if sigma.dim() < 2 else sigma

    def _parts(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        if self.config.grouped:
            return [tensor]
        return list(tensor.split(1, dim=1))

    def log_prob(self, sources: torch.Tensor, sigma=None) -> torch.Tensor:
        """Log-likelihood of each source under its own prior.

        Args:
            sources: (batch, n_sources, time), time a multiple of 2**n_blocks.
            sigma: noise level(s) the priors condition on: float or (batch, n_sources).

        Returns:
            (batch, n_sources) log-likelihoods in nats (divide by time for nats/sample).
        """
        sigma = self._sigma(sources, sigma)
        parts = [
            flow.log_prob(x, s)
            for flow, x, s in zip(self.flows, self._parts(sources), self._parts(sigma))
        ]
        return torch.cat(parts, dim=1)

    def forward(self, sources: torch.Tensor, sigma=None) -> torch.Tensor:
        """Same as `log_prob` (so that DistributedDataParallel wraps the right call)."""
        return self.log_prob(sources, sigma)

    @torch.no_grad()
    def sample(self, n: int, length: int, sigma=None, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw `n` signals per source through the inverse flow at temperature `temperature`.

        Returns:
            (n, n_sources, length) with length rounded down to a multiple of 2**n_blocks.
        """
        device = next(self.parameters()).device
        factor = 2**self.config.flow.n_blocks
        length = length // factor * factor
        n_sources = len(self.sources)
        z = torch.randn(n, n_sources * factor, length // factor, generator=generator)
        z = (z * temperature).to(device)
        sigma = self._sigma(z.new_zeros(n, n_sources, 1), sigma)
        # (n, N*F, T/F) -> (n, N, F, T/F): the latent channels of each source stay together
        z_parts = z.view(n, n_sources, factor, -1)
        outs = []
        for flow, zp, s in zip(self.flows, self._parts(z_parts), self._parts(sigma)):
            x, _ = flow.inverse(zp.reshape(n, -1, zp.shape[-1]), s)
            outs.append(x)
        return torch.cat(outs, dim=1)

    def receptive_field(self) -> int:
        return receptive_field(self.config)
