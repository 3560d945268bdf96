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

from priorsep.config import FlowConfig, ModelConfig, TrainConfig
from priorsep.nn.flows import FloWaveNet
from priorsep.nn.interface import Proposal, SourcePrior, draw_sigma, expand_sigma


def receptive_field_bound(flow: FlowConfig) -> int:
    """An upper bound, in input samples, of the span one latent time step depends on.

    A coupling at block b (time scale 2**(b + early_squeezes)) sees (kernel-1)/2 * sum of
    dilations latent steps on each side; couplings compose, so the half-widths add up.
    """
    half_width_latent = (flow.kernel_size - 1) // 2 * (2**flow.n_layers - 1)
    half_width = 0
    for block in range(1, flow.n_blocks + 1):
        half_width += flow.n_flows * half_width_latent * 2 ** (block + flow.early_squeezes)
    return 2 * half_width + flow.length_multiple


@functools.lru_cache(maxsize=32)
def receptive_field(config: ModelConfig) -> int:
    """Exact receptive field, in input samples: the span one latent time step depends on.

    The bound of `receptive_field_bound` is not reached, because every coupling reads only one
    half of the interleaved samples; the exact span is read off the architecture itself, as the
    support of the input gradient of one latent time step of a float64 copy with random
    weights (a structural property: it does not depend on the trained weights).
    """
    flow = FloWaveNet(dataclasses.replace(config.architecture, cond_channels=0)).double().eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in flow.named_parameters():
            if ".net.out." in name:  # zero-initialised: would make every coupling the identity
                parameter.copy_(torch.randn(parameter.shape, generator=generator,
                                            dtype=torch.float64))
    multiple = config.length_multiple
    length = (3 * receptive_field_bound(config.architecture) // multiple + 1) * multiple
    signal = torch.randn(1, 1, length, generator=generator, dtype=torch.float64)
    signal.requires_grad_(True)
    latent, _ = flow(signal)
    latent[0, :, latent.shape[2] // 2].sum().backward()
    support = (signal.grad[0, 0] != 0).nonzero().flatten()
    return int(support.max() - support.min() + 1)


class SourcePriors(SourcePrior):
    """Independent FloWaveNet densities p_k(s_k), one per source of `config.sources`.

    Args:
        config: the model configuration (sources, a `FlowConfig` architecture, grouped or not).
    """

    has_log_prob = True

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        n_sources = len(config.sources)
        if config.grouped:
            self.flows = nn.ModuleList([FloWaveNet(config.architecture, groups=n_sources)])
        else:
            self.flows = nn.ModuleList(FloWaveNet(config.architecture) for _ in range(n_sources))

    def log_prob(self, sources: torch.Tensor, sigma=None) -> torch.Tensor:
        """Log-likelihood of each source under its own prior.

        Args:
            sources: (batch, n_sources, time), time a multiple of `config.length_multiple`.
            sigma: noise level(s) the priors condition on: float or (batch, n_sources).

        Returns:
            (batch, n_sources) log-likelihoods in nats (divide by time for nats/sample).
        """
        sigma = expand_sigma(sigma, sources)
        parts = [
            flow.log_prob(x, s)
            for flow, x, s in zip(self.flows, self.per_module(sources), self.per_module(sigma))
        ]
        return torch.cat(parts, dim=1)

    def forward(self, sources: torch.Tensor, sigma=None) -> torch.Tensor:
        """Same as `log_prob` (so that DistributedDataParallel wraps the right call)."""
        return self.log_prob(sources, sigma)

    @torch.no_grad()
    def sample(self, n: int, length: int, sigma=None, temperature: float = 1.0,
               generator: torch.Generator | None = None, progress=None) -> torch.Tensor:
        """Draw `n` signals per source through the inverse flow at temperature `temperature`.

        Returns:
            (n, n_sources, length), length rounded down to a multiple of `length_multiple`.
        """
        device = self.device
        factor = self.config.length_multiple
        length = length // factor * factor
        n_sources = len(self.sources)
        z = torch.randn(n, n_sources * factor, length // factor, generator=generator)
        z = (z * temperature).to(device)
        sigma = expand_sigma(sigma, z.new_zeros(n, n_sources, 1))
        # (n, N*F, T/F) -> (n, N, F, T/F): the latent channels of each source stay together
        z_parts = z.view(n, n_sources, factor, -1)
        outs = []
        for flow, zp, s in zip(self.flows, self.per_module(z_parts), self.per_module(sigma)):
            x, _ = flow.inverse(zp.reshape(n, -1, zp.shape[-1]), s)
            outs.append(x)
        return torch.cat(outs, dim=1)

    def receptive_field(self) -> int:
        return receptive_field(self.config)

    def prepare(self, clean: torch.Tensor) -> None:
        """ActNorm's data-dependent initialisation from a first batch (before DDP syncs)."""
        self.train()
        with torch.no_grad():
            self(clean.to(self.device), 0.0)

    def training_loss(self, model: nn.Module, clean: torch.Tensor, generator: torch.Generator,
                      config: TrainConfig) -> torch.Tensor:
        """Negative log-likelihood (nats/sample) of the examples, noised at levels drawn by
        `draw_sigma`, plus `config.score_weight` times denoising score matching."""
        batch, n_sources, length = clean.shape
        sigma = draw_sigma(config, generator, batch, n_sources)
        noise = torch.randn(clean.shape, generator=generator)
        device = self.device
        noisy = (clean + sigma[..., None] * noise).to(device)
        sigma, noise = sigma.to(device), noise.to(device)
        score_matching = config.score_weight > 0
        noisy.requires_grad_(score_matching)
        log_prob = model(noisy, sigma)  # (B, N) nats
        loss = -log_prob.mean() / length
        if score_matching:
            loss = loss + config.score_weight * score_matching_loss(log_prob, noisy, noise, sigma)
        return loss

    def summary(self) -> str:
        flow = self.config.architecture
        return (f"FloWaveNet: {flow.early_squeezes} early squeezes (groups of "
                f"{2**flow.early_squeezes} samples), {flow.n_blocks} blocks x {flow.n_flows} "
                f"flows x {flow.n_layers} WaveNet layers, width {flow.residual_channels}, "
                f"noise-level embedding {flow.cond_channels}, {flow.permutation}"
                + (", DCT frame transform" if flow.frame_transform == "dct" else ""))


def score_matching_loss(log_prob: torch.Tensor, noisy: torch.Tensor, noise: torch.Tensor,
                        sigma: torch.Tensor) -> torch.Tensor:
    """Denoising score matching of the noised examples, weighted by sigma**2.

    For y = x + sigma * eps the best score is E[(x - y) / sigma**2 | y], so the loss
    mean (sigma * grad log p_sigma(y) + eps)**2 over the noised examples' samples is minimal
    where the prior's gradient is that of the true noised density. Clean examples (sigma = 0)
    do not count. The graph of the gradient is kept, so the loss trains it.

    Reference: Vincent 2011, "A Connection Between Score Matching and Denoising Autoencoders";
    Song & Ermon 2019, arXiv 1907.05600 (the sigma**2 weighting).

    Args:
        log_prob: (batch, n_sources) of `noisy`, built with a graph.
        noisy, noise: (batch, n_sources, time); sigma: (batch, n_sources).
    """
    (score,) = torch.autograd.grad(log_prob.sum(), noisy, create_graph=True)
    error = (sigma[..., None] * score + noise).pow(2).mean(dim=-1)  # (B, N)
    noised = (sigma > 0).to(error.dtype)
    return (error * noised).sum() / noised.sum().clamp_min(1)


class SourceRef(NamedTuple):
    """Source `source` of part `part` of a combination, known there as `name`."""

    name: str
    part: int
    source: str


def combine_configs(configs: Sequence[ModelConfig], selection: Sequence[SourceRef]) -> ModelConfig:
    """The configuration of priors gathered from several models, in `selection` order.

    The parts must share one sample rate and one kind of mixing. The combined `flow` is the part
    flow with the largest `length_multiple`, which suits every part (all are powers of two);
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
    sigma_min = max(config.trained_sigma_min for config in used)
    sigma_max = min(config.trained_sigma_max for config in used)
    if sigma_min > sigma_max:
        sigma_min = sigma_max = 0.0
    flow = max((config.architecture for config in used), key=lambda flow: flow.length_multiple)
    return ModelConfig(sources=tuple(names), sample_rate=rates[0], architecture=flow, grouped=False,
                       trained_sigma_min=sigma_min, trained_sigma_max=sigma_max,
                       mixing=mixings[0], gains=gains)


class CombinedPriors(SourcePrior):
    """Source priors gathered from several models, behaving like one `SourcePriors`.

    Source k of the combination is source `selection[k].source` of `parts[selection[k].part]`.
    Each part evaluates once per call on all of its own sources; a source of a part that the
    combination does not use gets zeros (the priors are independent, so this changes nothing
    but wasted work).

    Args:
        parts: the models, each loaded once.
        selection: one `SourceRef` per source of the combination, in order.
    """

    def __init__(self, parts: Sequence[SourcePrior], selection: Sequence[SourceRef]) -> None:
        selection = tuple(SourceRef(*ref) for ref in selection)
        super().__init__(combine_configs([part.config for part in parts], selection))
        self.parts = nn.ModuleList(parts)
        self.selection = selection
        # per part used: (its index, its sources' places in the combination, their channels)
        self._members: list[tuple[int, list[int], list[int]]] = []
        for index, part in enumerate(parts):
            positions = [k for k, ref in enumerate(self.selection) if ref.part == index]
            channels = [part.sources.index(self.selection[k].source) for k in positions]
            if positions:
                self._members.append((index, positions, channels))
        order = [k for _, positions, _ in self._members for k in positions]
        self.register_buffer("_restore", torch.argsort(torch.tensor(order)), persistent=False)
        used = [self.parts[index] for index, _, _ in self._members]
        self.has_log_prob = all(part.has_log_prob for part in used)
        methods = {part.preferred_method for part in used} - {"wiener"}  # one model's fit
        self.preferred_method = methods.pop() if len(methods) == 1 else None
        lengths = {part.segment_length for part in used} - {None}
        self._segment_length = max(lengths) if lengths else None

    @property
    def segment_length(self) -> int | None:
        return self._segment_length

    def score(self, sources: torch.Tensor, sigma) -> torch.Tensor:
        """grad log p_sigma of each source under its own prior, each part on its sources.

        Args:
            sources: (batch, n_sources, time); sigma: float or (batch, n_sources).

        Returns:
            (batch, n_sources, time).
        """
        sigma = expand_sigma(sigma, sources)
        pieces = []
        for index, positions, channels in self._members:
            part = self.parts[index]
            part_sources = self._part_input(index, positions, channels, sources)
            part_sigma = self._part_input(index, positions, channels, sigma)
            pieces.append(part.score(part_sources, part_sigma)[:, channels])
        return torch.cat(pieces, dim=1)[:, self._restore]

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
            sources: (batch, n_sources, time), time a multiple of `config.length_multiple`.
            sigma: noise level(s) the priors condition on: float or (batch, n_sources).

        Returns:
            (batch, n_sources) log-likelihoods in nats.
        """
        sigma = expand_sigma(sigma, sources)
        pieces = []
        for index, positions, channels in self._members:
            part_sources = self._part_input(index, positions, channels, sources)
            part_sigma = self._part_input(index, positions, channels, sigma)
            pieces.append(self.parts[index].log_prob(part_sources, part_sigma)[:, channels])
        return torch.cat(pieces, dim=1)[:, self._restore]  # back to the combination's order

    def forward(self, sources: torch.Tensor, sigma=None) -> torch.Tensor:
        """Same as `log_prob`."""
        return self.log_prob(sources, sigma)

    @torch.no_grad()
    def sample(self, n: int, length: int, sigma=None, temperature: float = 1.0,
               generator: torch.Generator | None = None, progress=None) -> torch.Tensor:
        """Draw `n` signals per source, each part through its own inverse flow.

        Returns:
            (n, n_sources, length) with length rounded down to `config.length_multiple`.
        """
        multiple = self.config.length_multiple
        length = length // multiple * multiple
        sigma = expand_sigma(sigma, torch.zeros(n, len(self.sources), 1))
        pieces = []
        for index, positions, channels in self._members:
            part_sigma = self._part_input(index, positions, channels, sigma)
            drawn = self.parts[index].sample(n, length, part_sigma, temperature, generator)
            pieces.append(drawn[:, channels].to(self._restore.device))
        return torch.cat(pieces, dim=1)[:, self._restore]

    def receptive_field(self) -> int:
        return max(self.parts[index].receptive_field() for index, _, _ in self._members)

    @torch.no_grad()
    def propose(self, residual: torch.Tensor, sigma: float, weights: torch.Tensor,
                classes: list[int] | None = None) -> Proposal:
        """Every class's proposal from its own part (a generator part searches its latents);
        where some parts give the evidence of silence and others do not, the others' classes
        are never silent (-inf)."""
        wanted = set(range(len(self.sources)) if classes is None else classes)
        batch, time = residual.shape
        sources = residual.new_zeros(batch, len(self.sources), time)
        evidence = residual.new_full((batch, len(self.sources)), -torch.inf)
        silence = None
        for index, positions, channels in self._members:
            chosen = [(k, c) for k, c in zip(positions, channels, strict=True) if k in wanted]
            if not chosen:
                continue
            part = self.parts[index]
            part_weights = weights.new_ones(len(part.sources))
            part_weights[channels] = weights[positions].to(part_weights)
            mine, theirs = [k for k, _ in chosen], [c for _, c in chosen]
            proposal = part.propose(residual, sigma, part_weights, classes=theirs)
            sources[:, mine] = proposal.sources[:, theirs].to(sources)
            evidence[:, mine] = proposal.evidence[:, theirs].to(evidence)
            if proposal.silence is not None:
                if silence is None:
                    silence = torch.full_like(evidence, -torch.inf)
                silence[:, mine] = proposal.silence[:, theirs].to(silence)
        return Proposal(sources, evidence, silence)
