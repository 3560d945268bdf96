"""The analytic Gaussian priors (`priorsep.nn.gaussian`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GaussianConfig:
    """Analytic priors: every sample of source k independent N(means[k], variances[k]).

    No parameters to learn: the reference family whose posterior is known in closed form, for
    checking samplers and the separator.
    """

    means: tuple[float, ...] = (0.0,)
    variances: tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        if len(self.means) != len(self.variances) or not self.means:
            raise ValueError("means and variances need one entry per source")
        if min(self.variances) <= 0:
            raise ValueError("variances must be positive")

    @property
    def length_multiple(self) -> int:
        return 1
