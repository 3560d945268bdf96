"""The set of source priors of a model: one density per source name.

`SourcePriors` holds either one grouped FloWaveNet (convolutions with groups=N, every source in
one pass, still independent) or N separate FloWaveNets; both expose the same methods on
(batch, sources, time) tensors. Which is faster is measured by `benchmarks/grouped_vs_separate.py`.
`CombinedPriors` gathers sources from several models (e.g. per-source priors from different Hub
repos, see `priorsep.hub`) behind the same methods.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from priorsep.config import FlowConfig, ModelConfig
from priorsep.nn.flows import FloWaveNet


def receptive_field_bound(flow: FlowConfig) -> int:
    """An upper bound, in input samples, of the span one latent time step depends on.

    A coupling at block b (time scale 2**(b + early_squeezes)) sees (kernel-1)/2 * sum of
    dilations latent steps on each side; couplings compose, so the half-widths add up.
    """
    half_width_latent = (flow.kernel_size - 1) // 2 * (2**flow.n_layers - 1)
    half_width = 0
    for block in range(1, flow.n_blocks + 1):
        half_width += flow.n_flows * half_width_latent * 2 ** (block + flow.early_squeezes)
    return 2 * half_width + flow.frame_multiple


@functools.lru_cache(maxsize=32)
def receptive_field(config: ModelConfig) -> int:
    """Exact receptive field, in input samples: the span one latent time step depends on.

    The bound of `receptive_field_bound` is not reached, because every coupling reads only one
    half of the interleaved samples; the exact span is read off the architecture itself, as the
    support of the input gradient of one latent time step of a float64 copy with random
    weights (a structural property: it does not depend on the trained weights).
    """
    flow = FloWaveNet(dataclasses.replace(config.flow, cond_channels=0)).double().eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in flow.named_parameters():
            if ".net.out." in name:  # zero-initialised: would make every coupling the identity
                parameter.copy_(torch.randn(parameter.shape, generator=generator,
                                            dtype=torch.float64))
    multiple = config.flow.frame_multiple
    length = (3 * receptive_field_bound(config.flow) // multiple + 1) * multiple
    signal = torch.randn(1, 1, length, generator=generator, dtype=torch.float64)
    signal.requires_grad_(True)
    latent, _ = flow(signal)
    latent[0, :, latent.shape[2] // 2].sum().backward()
    support = (signal.grad[0, 0] != 0).nonzero().flatten()
    return int(support.max() - support.min() + 1)


def expand_sigma(sigma, sources: torch.Tensor) -> torch.Tensor:
    """Noise level(s) as a (batch, n_sources) tensor like `sources` (batch, n_sources, time).

    `sigma` is None (clean), a float, a 0-d tensor, or already (batch, n_sources).
    """
    sigma = torch.as_tensor(0.0 if sigma is None else sigma, dtype=sources.dtype,
                            device=sources.device)
    return sigma.expand(sources.shape[0], sources.shape[1]) if sigma.dim() < 2 else sigma


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

    def _parts(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        if self.config.grouped:
            return [tensor]
        return list(tensor.split(1, dim=1))

    def log_prob(self, sources: torch.Tensor, sigma=None) -> torch.Tensor:
        """Log-likelihood of each source under its own prior.

        Args:
            sources: (batch, n_sources, time), time a multiple of `config.flow.frame_multiple`.
            sigma: noise level(s) the priors condition on: float or (batch, n_sources).

        Returns:
            (batch, n_sources) log-likelihoods in nats (divide by time for nats/sample).
        """
        sigma = expand_sigma(sigma, sources)
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
            (n, n_sources, length), length rounded down to a multiple of the frame multiple.
        """
        device = next(self.parameters()).device
        factor = self.config.flow.frame_multiple
        length = length // factor * factor
        n_sources = len(self.sources)
        z = torch.randn(n, n_sources * factor, length // factor, generator=generator)
        z = (z * temperature).to(device)
        sigma = expand_sigma(sigma, z.new_zeros(n, n_sources, 1))
        # (n, N*F, T/F) -> (n, N, F, T/F): the latent channels of each source stay together
        z_parts = z.view(n, n_sources, factor, -1)
        outs = []
        for flow, zp, s in zip(self.flows, self._parts(z_parts), self._parts(sigma)):
            x, _ = flow.inverse(zp.reshape(n, -1, zp.shape[-1]), s)
            outs.append(x)
        return torch.cat(outs, dim=1)

    def receptive_field(self) -> int:
        return receptive_field(self.config)


class SourceRef(NamedTuple):
    """Source `source` of part `part` of a combination, known there as `name`."""

    name: str
    part: int
    source: str


def combine_configs(configs: Sequence[ModelConfig], selection: Sequence[SourceRef]) -> ModelConfig:
    """The configuration of priors gathered from several models, in `selection` order.

    The parts must share one sample rate and one kind of mixing. The combined `flow` is the part
    flow with the largest `frame_multiple`, which suits every part (all are powers of two);
    the noise range is the one every part was trained on (0, 0 if they share none).

    Raises:
        ValueError: the parts cannot be combined (sample rates or mixing differ, names repeat).
    """
    if not selection:
        raise ValueError("a combination needs at least one source")
    used = [configs[ref.part] for ref in selection]
    names = [ref.name for ref in selection]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"source name(s) {', '.join(repeated)} appear more than once")
    rates = sorted({config.sample_rate for config in used})
    if len(rates) > 1:
        raise ValueError(f"priors at different sample rates cannot be combined "
                         f"({', '.join(f'{rate} Hz' for rate in rates)})")
    mixings = sorted({config.mixing for config in used})
    if len(mixings) > 1:
        raise ValueError(f"priors built for different mixing cannot be combined "
                         f"({', '.join(mixings)})")
    gains = None
    if mixings == ["gains"]:
        gains = tuple(configs[ref.part].gains[configs[ref.part].sources.index(ref.source)]
                      for ref in selection)
    sigma_min = max(config.sigma_min for config in used)
    sigma_max = min(config.sigma_max for config in used)
    if sigma_min > sigma_max:
        sigma_min = sigma_max = 0.0
    flow = max((config.flow for config in used), key=lambda flow: flow.frame_multiple)
    return ModelConfig(sources=tuple(names), sample_rate=rates[0], flow=flow, grouped=False,
                       sigma_min=sigma_min, sigma_max=sigma_max, mixing=mixings[0], gains=gains)


class CombinedPriors(nn.Module):
    """Source priors gathered from several models, behaving like one `SourcePriors`.

    Source k of the combination is source `selection[k].source` of `parts[selection[k].part]`.
    Each part evaluates once per call on all of its own sources; a source of a part that the
    combination does not use gets zeros (the priors are independent, so this changes nothing
    but wasted work).

    Args:
        parts: the models, each loaded once.
        selection: one `SourceRef` per source of the combination, in order.
    """

    def __init__(self, parts: Sequence[SourcePriors], selection: Sequence[SourceRef]) -> None:
        super().__init__()
        self.parts = nn.ModuleList(parts)
        self.selection = tuple(SourceRef(*ref) for ref in selection)
        self.config = combine_configs([part.config for part in parts], self.selection)
        # per part: positions in the combination and the matching channels of the part
        self._routes: list[tuple[int, list[int], list[int]]] = []
        for index, part in enumerate(parts):
            positions = [k for k, ref in enumerate(self.selection) if ref.part == index]
            channels = [part.sources.index(self.selection[k].source) for k in positions]
            if positions:
                self._routes.append((index, positions, channels))
        order = [k for _, positions, _ in self._routes for k in positions]
        self.register_buffer("_restore", torch.argsort(torch.tensor(order)), persistent=False)

    @property
    def sources(self) -> tuple[str, ...]:
        return self.config.sources

    def _part_input(self, index: int, positions: list[int], channels: list[int],
                    tensor: torch.Tensor) -> torch.Tensor:
        """(batch, n_sources, ...) of the combination -> (batch, n_part_sources, ...) of a part."""
        n_part = len(self.parts[index].sources)
        if channels == list(range(n_part)):
            return tensor[:, positions]
        out = tensor.new_zeros(tensor.shape[0], n_part, *tensor.shape[2:])
        out[:, channels] = tensor[:, positions]
        return out

    def log_prob(self, sources: torch.Tensor, sigma=None) -> torch.Tensor:
        """Log-likelihood of each source under its own prior.

        Args:
            sources: (batch, n_sources, time), time a multiple of `config.flow.frame_multiple`.
            sigma: noise level(s) the priors condition on: float or (batch, n_sources).

        Returns:
            (batch, n_sources) log-likelihoods in nats.
        """
        sigma = expand_sigma(sigma, sources)
        pieces = []
        for index, positions, channels in self._routes:
            part_sources = self._part_input(index, positions, channels, sources)
            part_sigma = self._part_input(index, positions, channels, sigma)
            pieces.append(self.parts[index].log_prob(part_sources, part_sigma)[:, channels])
        return torch.cat(pieces, dim=1)[:, self._restore]  # back to the combination's order

    def forward(self, sources: torch.Tensor, sigma=None) -> torch.Tensor:
        """Same as `log_prob`."""
        return self.log_prob(sources, sigma)

    @torch.no_grad()
    def sample(self, n: int, length: int, sigma=None, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw `n` signals per source, each part through its own inverse flow.

        Returns:
            (n, n_sources, length) with length rounded down to `config.flow.frame_multiple`.
        """
        multiple = self.config.flow.frame_multiple
        length = length // multiple * multiple
        sigma = torch.as_tensor(0.0 if sigma is None else sigma, dtype=torch.float32)
        if sigma.dim() < 2:
            sigma = sigma.expand(n, len(self.sources))
        pieces = []
        for index, positions, channels in self._routes:
            part_sigma = self._part_input(index, positions, channels, sigma)
            drawn = self.parts[index].sample(n, length, part_sigma, temperature, generator)
            pieces.append(drawn[:, channels].to(self._restore.device))
        return torch.cat(pieces, dim=1)[:, self._restore]

    def receptive_field(self) -> int:
        return max(receptive_field(self.parts[index].config) for index, _, _ in self._routes)
