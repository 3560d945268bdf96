"""How a `Separator` turns segments of a mix into sources: one small strategy per method.

Each strategy knows its name (what the command line and `separation.json` call it), how many prior
evaluations a batch of segments costs (for progress), and how to separate a batch. `METHODS`
lists the names; `api.Separator` builds the strategy it needs from its settings.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from priorsep.amortised import posterior_estimate
from priorsep.config import DiffusionConfig, ExtractConfig, LangevinConfig, WienerConfig
from priorsep.nn.interface import SourcePrior
from priorsep.nn.posterior import PosteriorEncoder
from priorsep.separation import CountCallback
from priorsep.separation.diffusion import diffusion_separate
from priorsep.separation.extract import extract_separate, extraction_steps
from priorsep.separation.langevin import langevin_separate
from priorsep.separation.mixing import Mixing
from priorsep.separation.wiener import wiener_separate


@dataclass(frozen=True)
class Diffusion:
    """The diffusion sampler with the mix as a constraint (score priors' default)."""

    config: DiffusionConfig
    name = "diffusion"

    @property
    def evaluations(self) -> int:
        return self.config.total_evaluations

    def separate(self, priors: SourcePrior, segments: torch.Tensor, mixing: Mixing,
                 progress: CountCallback | None = None) -> torch.Tensor:
        return diffusion_separate(priors, segments, mixing, self.config,
                                  progress=progress).sources


@dataclass(frozen=True)
class Langevin:
    """(Annealed) Langevin posterior sampling (density priors' default)."""

    config: LangevinConfig
    name = "langevin"

    @property
    def evaluations(self) -> int:
        return self.config.total_steps

    def separate(self, priors: SourcePrior, segments: torch.Tensor, mixing: Mixing,
                 progress: CountCallback | None = None,
                 initial: torch.Tensor | None = None) -> torch.Tensor:
        return langevin_separate(priors, segments, mixing, self.config, initial=initial,
                                 progress=progress).sources


@dataclass(frozen=True)
class Posterior:
    """One pass of the amortised encoder: its mean, or the average of `samples` draws."""

    encoder: PosteriorEncoder
    samples: int = 0
    seed: int = 0
    name = "posterior"
    evaluations = 0

    def separate(self, priors: SourcePrior, segments: torch.Tensor, mixing: Mixing,
                 progress: CountCallback | None = None) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed)
        return posterior_estimate(self.encoder, segments, mixing, self.samples, generator)


@dataclass(frozen=True)
class RefinedPosterior:
    """The encoder's estimate starts a (short) Langevin run."""

    posterior: Posterior
    langevin: Langevin
    name = "posterior+langevin"

    @property
    def evaluations(self) -> int:
        return self.langevin.evaluations

    def separate(self, priors: SourcePrior, segments: torch.Tensor, mixing: Mixing,
                 progress: CountCallback | None = None) -> torch.Tensor:
        initial = self.posterior.separate(priors, segments, mixing)
        return self.langevin.separate(priors, segments, mixing, progress, initial=initial)


@dataclass(frozen=True)
class Extract:
    """Staged extraction by evidence, sweeps, then the optional refinement by a sampler
    (`priorsep.separation.extract`; the generator priors' default)."""

    config: ExtractConfig
    langevin: LangevinConfig
    diffusion: DiffusionConfig
    n_sources: int
    name = "extract"

    @property
    def evaluations(self) -> int:
        return extraction_steps(self.n_sources, self.config)

    def separate(self, priors: SourcePrior, segments: torch.Tensor, mixing: Mixing,
                 progress: CountCallback | None = None) -> torch.Tensor:
        return extract_separate(priors, segments, mixing, self.config, self.langevin,
                                self.diffusion, progress=progress).sources


@dataclass(frozen=True)
class Wiener:
    """The posterior mean under the Gaussian composite model (`priorsep.separation.wiener`;
    the spectral families' default): variances fitted to the mix, Wiener shares, optional
    MISI phases."""

    config: WienerConfig
    name = "wiener"
    evaluations = 1

    def separate(self, priors: SourcePrior, segments: torch.Tensor, mixing: Mixing,
                 progress: CountCallback | None = None) -> torch.Tensor:
        return wiener_separate(priors, segments, mixing, self.config, progress)


Strategy = Diffusion | Langevin | Posterior | RefinedPosterior | Extract | Wiener
METHODS: tuple[str, ...] = tuple(cls.name for cls in (Langevin, Diffusion, Posterior,
                                                      RefinedPosterior, Extract, Wiener))
"""The method names, as the command line and separation.json write them."""


def build_strategy(name: str, langevin: LangevinConfig, diffusion: DiffusionConfig,
                   encoder: PosteriorEncoder | None = None, samples: int = 0,
                   extract: ExtractConfig | None = None, n_sources: int = 0,
                   wiener: WienerConfig | None = None) -> Strategy:
    """The strategy called `name`, from a Separator's settings (the posterior methods need
    `encoder`; their draws are seeded by the Langevin seed; extraction counts its work by
    `n_sources`)."""
    if name == Wiener.name:
        return Wiener(wiener or WienerConfig())
    if name == Extract.name:
        return Extract(extract or ExtractConfig(), langevin, diffusion, n_sources)
    if name == Diffusion.name:
        return Diffusion(diffusion)
    if name == Langevin.name:
        return Langevin(langevin)
    if encoder is None:
        raise ValueError(f"method {name} needs an amortised posterior encoder")
    posterior = Posterior(encoder, samples, langevin.seed)
    if name == Posterior.name:
        return posterior
    if name == RefinedPosterior.name:
        return RefinedPosterior(posterior, Langevin(langevin))
    raise ValueError(f"unknown method {name!r}; choose {', '.join(METHODS)}")
