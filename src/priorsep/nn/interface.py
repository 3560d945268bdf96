"""The source-prior interface every prior family implements, and what all families share.

A set of source priors holds one prior p_k per source name and works on (batch, n_sources, time)
tensors, source k of the input under prior k. Every family gives the score
grad log p_sigma(x) of its noise-smoothed density; a density family (the FloWaveNet flows) also
gives `log_prob` and derives its score by autograd, a score family (the denoisers of
`priorsep.nn.score`) derives its score from a denoiser through Tweedie's formula and has no
`log_prob` (`has_log_prob` is False and the call raises `CapabilityError`). Samplers, the
separator, training and evaluation see only this interface.

Reference: nflows' `Distribution` (the interface) and `Flow(Distribution)` (one implementation);
Song & Ermon 2019, arXiv 1907.05600 (scores of noise-smoothed densities).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from priorsep.config import ModelConfig, TrainConfig
from priorsep.errors import CapabilityError


def expand_sigma(sigma, sources: torch.Tensor) -> torch.Tensor:
    """Noise level(s) as a (batch, n_sources) tensor like `sources` (batch, n_sources, time).

    `sigma` is None (clean), a float, a 0-d tensor, or already (batch, n_sources).
    """
    sigma = torch.as_tensor(0.0 if sigma is None else sigma, dtype=sources.dtype,
                            device=sources.device)
    return sigma.expand(sources.shape[0], sources.shape[1]) if sigma.dim() < 2 else sigma


def draw_sigma(config: TrainConfig, generator: torch.Generator, batch: int, n_sources: int,
               with_clean: bool = True) -> torch.Tensor:
    """Training noise levels (batch, n_sources), log-uniform in [draw_sigma_min, draw_sigma_max].

    With `with_clean` (the density families), a share `config.clean_fraction` of them is 0, and
    all are 0 when `draw_sigma_max` is 0; without (the score family), every level is > 0.
    """
    if with_clean and config.draw_sigma_max <= 0:
        return torch.zeros(batch, n_sources)
    low = math.log(max(config.draw_sigma_min, 1e-4))
    high = math.log(max(config.draw_sigma_max, 1e-4))
    uniform = torch.rand(2 if with_clean else 1, batch, n_sources, generator=generator)
    sigma = torch.exp(low + uniform[0] * (high - low))
    if not with_clean:
        return sigma
    return torch.where(uniform[1] < config.clean_fraction, torch.zeros_like(sigma), sigma)


def tweedie_gain(priors: SourcePrior, clean: torch.Tensor, sigma: float,
                 generator: torch.Generator | None = None,
                 batch_size: int = 8) -> list[float]:
    """How much each source's own prior denoises its data, in dB.

    `10 log10(||sigma eps||**2 / ||D(x + sigma eps) - x||**2)` per source, summed over the
    examples, where D is Tweedie's denoiser `y + sigma**2 grad log p_sigma(y)`.

    Args:
        clean: (n, n_sources, time) held-out sources in the priors' order.

    Returns:
        One gain per source (dB).
    """
    generator = generator or torch.Generator().manual_seed(0)
    noise_energy = torch.zeros(clean.shape[1], dtype=torch.float64)
    error_energy = torch.zeros(clean.shape[1], dtype=torch.float64)
    for chunk in clean.split(batch_size):
        noise = sigma * torch.randn(chunk.shape, generator=generator)
        denoised = priors.denoise((chunk + noise).to(priors.device), sigma).cpu()
        noise_energy += noise.double().pow(2).sum(dim=(0, 2))
        error_energy += (denoised - chunk).double().pow(2).sum(dim=(0, 2))
    return (10 * torch.log10(noise_energy / error_energy.clamp_min(1e-20))).tolist()


@dataclass(frozen=True)
class Proposal:
    """What every class proposes to extract from a residual, and how well it explains it.

    `sources` (batch, n_sources, time): class k's estimate of its source; `evidence`
    (batch, n_sources): log p_k,sigma of what class k sees (or the family's stated proxy);
    `silence` (batch, n_sources) or None: for a family whose prior gives silence a
    probability, the evidence that class k is silent (all it sees noise), on the same scale;
    `evidence` is then that of the class sounding."""

    sources: torch.Tensor
    evidence: torch.Tensor
    silence: torch.Tensor | None = None


class SourcePrior(nn.Module):
    """Independent priors p_k(s_k), one per source of `config.sources` (the interface).

    Subclasses set `has_log_prob` and implement `score` (or `log_prob`, from which the default
    `score` differentiates), `sample`, `receptive_field`, `training_loss`, `validation_scores`
    and `summary`.

    Args:
        config: the model configuration (sources, sample rate, family and architecture).
    """

    has_log_prob: ClassVar[bool] = False
    has_power_spectra: ClassVar[bool] = False
    """Whether the family gives every source's spectral variances given a mix
    (`mix_variances`, `source_variances`, `transform`): what the wiener method needs."""
    separation_batch: ClassVar[int] = 4
    """Segments a `Separator` separates together by default (a family whose fit of one
    segment is large asks for fewer)."""
    prepare_batch: ClassVar[int | None] = None
    """Crops `prepare` sees before the first step (None: one training batch); a family whose
    data-dependent start is a fit of its own (the spectral families' batch NMF) asks for more."""
    preferred_method: ClassVar[str | None] = None
    """The separation method the family works best with (None: langevin for a density,
    diffusion for a score family)."""
    validation_name: ClassVar[str] = "validation log-likelihood (nats/sample)"
    """What `validation_scores` returns, with its unit (for logs and model cards); a family
    without a density names its own."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config

    @property
    def sources(self) -> tuple[str, ...]:
        return self.config.sources

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def length_multiple(self) -> int:
        """Input lengths must be a multiple of this."""
        return self.config.length_multiple

    @property
    def segment_length(self) -> int | None:
        """The segment length the priors were built for (None: any multiple of
        `length_multiple` works alike)."""
        return None

    def per_module(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        """(batch, n_sources, ...) split as a family's modules hold the sources: whole for one
        grouped module (`config.grouped`), else one source per module."""
        return [tensor] if self.config.grouped else list(tensor.split(1, dim=1))

    @property
    def device(self) -> torch.device:
        for tensor in self.parameters():
            return tensor.device
        for tensor in self.buffers():
            return tensor.device
        return torch.device("cpu")

    def log_prob(self, sources: torch.Tensor, sigma=None) -> torch.Tensor:
        """Log-density of each source under its own prior, noise-smoothed at level sigma.

        Args:
            sources: (batch, n_sources, time), time a multiple of `length_multiple`.
            sigma: float or (batch, n_sources).

        Returns:
            (batch, n_sources) in nats.

        Raises:
            CapabilityError: the family has no density (see `has_log_prob`).
        """
        raise CapabilityError(f"{self.config.family} priors have no log-density "
                              "(score only)")

    def score(self, sources: torch.Tensor, sigma) -> torch.Tensor:
        """grad_x log p_sigma(x) for every source, detached; runs under `torch.no_grad`.

        The default differentiates `log_prob` of a detached leaf (no parameter gradient is
        computed or accumulated).

        Args:
            sources: (batch, n_sources, time).
            sigma: float or (batch, n_sources).

        Returns:
            (batch, n_sources, time).
        """
        return self.log_prob_and_score(sources, sigma)[1]

    def log_prob_and_score(self, sources: torch.Tensor,
                           sigma) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(log_prob or None when the family has none, score) from one evaluation."""
        if not self.has_log_prob:
            return None, self.score(sources, sigma)
        with torch.enable_grad():
            leaf = sources.detach().requires_grad_(True)
            log_prob = self.log_prob(leaf, sigma)
            (gradient,) = torch.autograd.grad(log_prob.sum(), leaf)
        return log_prob.detach(), gradient

    def denoise(self, noisy: torch.Tensor, sigma) -> torch.Tensor:
        """Tweedie's estimate of the clean sources, y + sigma**2 grad log p_sigma(y).

        Args:
            noisy: (batch, n_sources, time); sigma: float or (batch, n_sources), positive.

        Returns:
            (batch, n_sources, time).
        """
        sigma = expand_sigma(sigma, noisy)
        return noisy + sigma[..., None].pow(2) * self.score(noisy, sigma)

    def propose(self, residual: torch.Tensor, sigma: float, weights: torch.Tensor,
                classes: list[int] | None = None) -> Proposal:
        """Every class's estimate of its own source in a residual, with its evidence.

        The residual holds `weights[k] * s_k` plus the other sources, which class k treats as
        noise of level sigma (in its source's scale): it sees `x_k = residual / weights[k]`,
        proposes the denoiser's D_k(x_k, sigma) and scores it by log p_k,sigma(x_k) where the
        family has a density; a family without one scores it by the proxy
        `-||x_k - D_k(x_k, sigma)||**2 / (2 sigma**2)` (how much of x_k the proposal leaves).
        A generator family overrides this with a search in its latent space.

        Args:
            residual: (batch, time); weights: (n_sources,) positive mixing weights.
            classes: the classes whose proposals are needed (default: all); the others may be
                computed anyway.

        Returns:
            A `Proposal`.
        """
        inputs = residual[:, None] / weights.to(residual)[:, None]  # (B, N, T)
        sources = self.denoise(inputs, sigma)
        if self.has_log_prob:
            evidence = self.log_prob(inputs, sigma)
        else:
            evidence = -(inputs - sources).pow(2).sum(-1) / (2 * float(sigma) ** 2)
        return Proposal(sources, evidence)

    def sample(self, n: int, length: int, sigma=None, temperature: float = 1.0,
               generator: torch.Generator | None = None,
               progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
        """Draw `n` signals per source.

        Args:
            progress: called with (done, total) as the drawing goes, by a family that draws
                step by step (the WaveNet); one that draws in one pass does not call it.

        Returns:
            (n, n_sources, length'), length' = length rounded down to `length_multiple`.
        """
        raise NotImplementedError

    def receptive_field(self) -> int:
        """Samples of input one output sample depends on."""
        raise NotImplementedError

    def prepare(self, clean: torch.Tensor) -> None:
        """Data-dependent initialisation before the first training step (default: none)."""

    def training_loss(self, model: nn.Module, clean: torch.Tensor, generator: torch.Generator,
                      config: TrainConfig) -> torch.Tensor:
        """The family's training objective on a batch of clean sources (a scalar).

        Args:
            model: this module or its DistributedDataParallel wrapper: call it, not `self`,
                so that gradients are synchronised.
            clean: (batch, n_sources, time) on the CPU; the loss moves what it needs.
            generator: the CPU generator of all random draws (noise levels, noise).
        """
        raise NotImplementedError

    def validation_scores(self, sources: torch.Tensor) -> list[float]:
        """The family's validation figure per source (see `validation_name`): for a family with
        a density, the mean log-likelihood of clean held-out sources."""
        if not self.has_log_prob:
            raise NotImplementedError
        return validation_log_likelihood(self, sources)

    def summary(self) -> str:
        """One line describing the architecture (for model cards and `priorsep models`)."""
        raise NotImplementedError


@torch.inference_mode()
def validation_log_likelihood(priors: SourcePrior, sources: torch.Tensor,
                              sigma: float = 0.0, batch_size: int = 8) -> list[float]:
    """Mean log-likelihood (nats/sample) of each source under its own prior."""
    was_training = priors.training
    priors.eval()
    totals = torch.zeros(sources.shape[1], dtype=torch.float64)
    for chunk in sources.split(batch_size):
        totals += priors.log_prob(chunk.to(priors.device), sigma).double().sum(dim=0).cpu()
    priors.train(was_training)
    return (totals / (sources.shape[0] * sources.shape[2])).tolist()
