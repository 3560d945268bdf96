"""How a `Separator` turns segments of a mix into sources: one small strategy per method, and
the registry of methods by name.

Each strategy knows its name (what the command line and `separation.json` call it), which
settings sections it reads (`priorsep.config.SECTIONS`: `own` sections whose fields
`Separator.configure` sets by name, and the `sampler` section that takes `steps` and the
remaining fields), how many prior evaluations a batch of segments costs (for progress), how
to build itself from the settings (`build`) and how to separate a batch. A new method is one
strategy here (its work in a module of `priorsep.separation`) and one entry in `METHODS`;
with settings of its own, its dataclass in `SECTIONS`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import torch

from priorsep.amortised import posterior_estimate
from priorsep.config import (
    DiffusionConfig,
    ExtractConfig,
    LangevinConfig,
    SeparationSettings,
    WienerConfig,
)
from priorsep.nn.interface import SourcePrior
from priorsep.nn.posterior import PosteriorEncoder
from priorsep.separation import CountCallback
from priorsep.separation.diffusion import diffusion_separate
from priorsep.separation.extract import extract_separate, extraction_steps
from priorsep.separation.langevin import langevin_separate
from priorsep.separation.mixing import Mixing
from priorsep.separation.wiener import wiener_separate


@dataclass(frozen=True)
class Context:
    """What a strategy may need besides its settings: the number of sources, the amortised
    posterior encoder (the posterior methods) and how many of its draws to average."""

    n_sources: int
    encoder: PosteriorEncoder | None = None
    samples: int = 0


class Strategy:
    """One separation method (see the module docstring); each is a frozen dataclass of what
    it needs, built by `build`. The defaults: no sections of its own, no sampler, no encoder,
    the stored settings used as they are."""

    name: ClassVar[str]
    own: ClassVar[tuple[str, ...]] = ()
    needs_encoder: ClassVar[bool] = False
    takes_classes: ClassVar[bool] = False
    """Whether `separate` can leave classes known absent out (its `classes`); a Separator
    gives the other methods a combination of the present sources instead."""

    @property
    def evaluations(self) -> int:
        """Prior evaluations a batch costs (for progress)."""
        raise NotImplementedError

    @classmethod
    def build(cls, settings: SeparationSettings, context: Context) -> Strategy:
        raise NotImplementedError

    @staticmethod
    def sampler(settings: SeparationSettings) -> str | None:
        """The section that takes `steps` and the fields no own section has (None: they are
        moot for this method)."""
        return None

    @staticmethod
    def stored(settings: SeparationSettings) -> SeparationSettings:
        """A model's stored settings as this method uses them."""
        return settings

    def separate(self, priors: SourcePrior, segments: torch.Tensor, mixing: Mixing,
                 progress: CountCallback | None = None,
                 classes: list[int] | None = None) -> torch.Tensor:
        """(n, length) segments -> (n, n_sources, length); `classes` (with `takes_classes`):
        the sources that may be present, the others silent."""
        raise NotImplementedError


def with_steps(section: str, config, steps: int):
    """A sampler's configuration with about `steps` prior evaluations in all (Langevin keeps
    its levels and cuts the steps per level; diffusion sets its steps)."""
    if section == "diffusion":
        return dataclasses.replace(config, steps=steps)
    return config.with_total_steps(steps)


@dataclass(frozen=True)
class Diffusion(Strategy):
    """The diffusion sampler with the mix as a constraint (score priors' default)."""

    config: DiffusionConfig
    name: ClassVar[str] = "diffusion"

    @property
    def evaluations(self) -> int:
        return self.config.total_evaluations

    @classmethod
    def build(cls, settings: SeparationSettings, context: Context) -> Diffusion:
        return cls(settings["diffusion"])

    @staticmethod
    def sampler(settings: SeparationSettings) -> str | None:
        return "diffusion"

    def separate(self, priors: SourcePrior, segments: torch.Tensor, mixing: Mixing,
                 progress: CountCallback | None = None) -> torch.Tensor:
        return diffusion_separate(priors, segments, mixing, self.config,
                                  progress=progress).sources


@dataclass(frozen=True)
class Langevin(Strategy):
    """(Annealed) Langevin posterior sampling (density priors' default)."""

    config: LangevinConfig
    name: ClassVar[str] = "langevin"

    @property
    def evaluations(self) -> int:
        return self.config.total_steps

    @classmethod
    def build(cls, settings: SeparationSettings, context: Context) -> Langevin:
        return cls(settings["langevin"])

    @staticmethod
    def sampler(settings: SeparationSettings) -> str | None:
        return "langevin"

    def separate(self, priors: SourcePrior, segments: torch.Tensor, mixing: Mixing,
                 progress: CountCallback | None = None,
                 initial: torch.Tensor | None = None) -> torch.Tensor:
        return langevin_separate(priors, segments, mixing, self.config, initial=initial,
                                 progress=progress).sources


@dataclass(frozen=True)
class Posterior(Strategy):
    """One pass of the amortised encoder: its mean, or the average of `samples` draws."""

    encoder: PosteriorEncoder
    samples: int = 0
    seed: int = 0
    name: ClassVar[str] = "posterior"
    needs_encoder: ClassVar[bool] = True
    evaluations: ClassVar[int] = 0

    @classmethod
    def build(cls, settings: SeparationSettings, context: Context) -> Posterior:
        """Its draws are seeded by the Langevin seed."""
        if context.encoder is None:
            raise ValueError(f"method {cls.name} needs an amortised posterior encoder")
        return cls(context.encoder, context.samples, settings["langevin"].seed)

    @staticmethod
    def sampler(settings: SeparationSettings) -> str | None:
        return "langevin"  # its seed

    def separate(self, priors: SourcePrior, segments: torch.Tensor, mixing: Mixing,
                 progress: CountCallback | None = None) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed)
        return posterior_estimate(self.encoder, segments, mixing, self.samples, generator)


@dataclass(frozen=True)
class RefinedPosterior(Strategy):
    """The encoder's estimate starts a (short) Langevin run."""

    posterior: Posterior
    langevin: Langevin
    name: ClassVar[str] = "posterior+langevin"
    needs_encoder: ClassVar[bool] = True

    @property
    def evaluations(self) -> int:
        return self.langevin.evaluations

    @classmethod
    def build(cls, settings: SeparationSettings, context: Context) -> RefinedPosterior:
        return cls(Posterior.build(settings, context), Langevin.build(settings, context))

    @staticmethod
    def sampler(settings: SeparationSettings) -> str | None:
        return "langevin"

    @staticmethod
    def stored(settings: SeparationSettings) -> SeparationSettings:
        """From a model's stored settings: the refinement runs a quarter of the Langevin
        steps."""
        langevin = settings["langevin"]
        return settings.with_config("langevin", dataclasses.replace(
            langevin, steps_per_level=max(1, langevin.steps_per_level // 4)))

    def separate(self, priors: SourcePrior, segments: torch.Tensor, mixing: Mixing,
                 progress: CountCallback | None = None) -> torch.Tensor:
        initial = self.posterior.separate(priors, segments, mixing)
        return self.langevin.separate(priors, segments, mixing, progress, initial=initial)


@dataclass(frozen=True)
class Extract(Strategy):
    """Staged extraction by evidence, sweeps, then the optional refinement by a sampler
    (`priorsep.separation.extract`; the generator priors' default)."""

    config: ExtractConfig
    langevin: LangevinConfig
    diffusion: DiffusionConfig
    n_sources: int
    name: ClassVar[str] = "extract"
    own: ClassVar[tuple[str, ...]] = ("extract",)
    takes_classes: ClassVar[bool] = True

    @property
    def evaluations(self) -> int:
        return extraction_steps(self.n_sources, self.config)

    @classmethod
    def build(cls, settings: SeparationSettings, context: Context) -> Extract:
        return cls(settings["extract"], settings["langevin"], settings["diffusion"],
                   context.n_sources)

    @staticmethod
    def sampler(settings: SeparationSettings) -> str | None:
        """The refinement sampler's section (None: no refinement)."""
        refine = settings["extract"].refine
        return None if refine == "none" else refine

    def separate(self, priors: SourcePrior, segments: torch.Tensor, mixing: Mixing,
                 progress: CountCallback | None = None,
                 classes: list[int] | None = None) -> torch.Tensor:
        return extract_separate(priors, segments, mixing, self.config, self.langevin,
                                self.diffusion, progress=progress, classes=classes).sources


@dataclass(frozen=True)
class Wiener(Strategy):
    """The posterior mean under the Gaussian composite model (`priorsep.separation.wiener`;
    the spectral families' default): variances fitted to the mix, Wiener shares, optional
    MISI phases."""

    config: WienerConfig
    name: ClassVar[str] = "wiener"
    own: ClassVar[tuple[str, ...]] = ("wiener",)
    evaluations: ClassVar[int] = 1
    takes_classes: ClassVar[bool] = True

    @classmethod
    def build(cls, settings: SeparationSettings, context: Context) -> Wiener:
        return cls(settings["wiener"])

    def separate(self, priors: SourcePrior, segments: torch.Tensor, mixing: Mixing,
                 progress: CountCallback | None = None,
                 classes: list[int] | None = None) -> torch.Tensor:
        return wiener_separate(priors, segments, mixing, self.config, progress, classes)


METHODS: dict[str, type[Strategy]] = {cls.name: cls for cls in (Langevin, Diffusion, Posterior,
                                                       RefinedPosterior, Extract, Wiener)}
"""The methods by the name the command line and separation.json give them."""


def build_strategy(settings: SeparationSettings, context: Context) -> Strategy:
    """The strategy of `settings.method` (which must be set) with those settings.

    Raises:
        ValueError: an unknown method, or a posterior method without an encoder.
    """
    kind = METHODS.get(settings.method)
    if kind is None:
        raise ValueError(f"unknown method {settings.method!r}; choose {', '.join(METHODS)}")
    return kind.build(settings, context)
