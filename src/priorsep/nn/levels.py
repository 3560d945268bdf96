"""Per-level priors: one model per noise level behind one prior interface (BASIS' protocol).

Per-level fine-tuning (`priorsep.training.finetune_levels`) writes one model folder per level
(`sigma-<value>/`) and a `levels.json` manifest; the model resolver loads such a folder as
`NearestLevelPriors`, which answers every call with the model of the level nearest in log sigma.

Reference: Jayaram & Thickstun 2020 (BASIS), arXiv 2002.07942.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from priorsep.nn.interface import SourcePrior


@dataclass
class PriorLevel:
    """One noise level: the priors that model data noised at `sigma`, given `sigma` as input."""

    sigma: float
    priors: SourcePrior


class NearestLevelPriors(SourcePrior):
    """Per-level priors behind one interface: each call uses the level nearest in log sigma.

    This is how BASIS runs annealed Langevin dynamics with one fine-tuned model per level.

    Args:
        levels: the levels, each with its own priors (same sources and sample rate).
    """

    def __init__(self, levels: list[PriorLevel]) -> None:
        super().__init__(levels[0].priors.config)
        self.sigmas = [level.sigma for level in levels]
        self.levels = nn.ModuleList(level.priors for level in levels)
        self.has_log_prob = all(level.priors.has_log_prob for level in levels)

    def _level(self, sigma) -> int:
        values = torch.as_tensor(sigma).unique()
        if values.numel() != 1:
            raise ValueError("per-level priors take one noise level per call")
        return self.nearest(float(values))

    def score(self, sources: torch.Tensor, sigma) -> torch.Tensor:
        """The score of the nearest level's priors, given that level's sigma."""
        if self.has_log_prob:
            return super().score(sources, sigma)
        index = self._level(sigma)
        return self.levels[index].score(sources, self.sigmas[index])

    def nearest(self, sigma: float) -> int:
        """Index of the level nearest to `sigma` in log sigma (sigma <= 0: the lowest)."""
        if sigma <= 0:
            return 0
        return min(range(len(self.sigmas)),
                   key=lambda i: abs(math.log(self.sigmas[i]) - math.log(sigma)))

    def log_prob(self, sources: torch.Tensor, sigma: float | torch.Tensor = 0.0) -> torch.Tensor:
        """(batch, n_sources, time) -> (batch, n_sources) nats, under the nearest level's priors
        given that level's sigma. `sigma` must be one value (a float or a constant tensor)."""
        index = self._level(sigma)
        return self.levels[index].log_prob(sources, self.sigmas[index])

    def forward(self, sources: torch.Tensor, sigma: float | torch.Tensor = 0.0) -> torch.Tensor:
        """Same as `log_prob`."""
        return self.log_prob(sources, sigma)
