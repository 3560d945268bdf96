"""Separation by Langevin dynamics (`priorsep.separation.langevin`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from priorsep.config.fields import FieldError


@dataclass(frozen=True)
class LangevinConfig:
    """Posterior sampling of the sources by Langevin dynamics (see `priorsep.separation.langevin`).

    Every step is `s <- s + eta * (grad log p_sigma(s) + grad log p(m | s)) + sqrt(2 eta) * eps`
    with the Gaussian likelihood `p(m | s) = N(m; g(s), gamma**2)`. Both the step size and the
    likelihood width follow the noise level: `eta = step_size * (sigma / step_sigma)**2` and
    `gamma = gamma_scale * sigma`. The defaults are BASIS' (Jayaram & Thickstun 2020,
    arXiv 2002.07942): 10 geometric levels from 1.0 to 0.01, 100 steps each, delta = 3e-5,
    gamma = sigma. PnF's audio setting (eta = 0.05 sigma**2, gamma**2 = sigma**2 / 15) is
    `step_size=0.05, step_sigma=1.0, gamma_scale=15 ** -0.5`.
    """

    mode: str = "annealed"
    """"annealed": geometric sigma levels from sigma_max down to sigma_min (BASIS).
    "fixed": the thesis' Algorithm 2 - every step at sigma_min, a prior step then a separate
    constraint step."""
    sigma_max: float = 1.0
    sigma_min: float = 0.01
    n_levels: int = 10
    steps_per_level: int = 100
    """Prior gradient evaluations: n_levels * steps_per_level in both modes."""
    step_size: float = 3e-5
    """delta in eta = delta * (sigma / step_sigma)**2."""
    step_sigma: float | None = None
    """The sigma at which eta equals step_size; None means sigma_min (BASIS' rule)."""
    gamma_scale: float = 1.0
    """gamma = gamma_scale * sigma: the width of the Gaussian likelihood around the mix."""
    init: str = "noise"
    """"noise": Gaussian noise of standard deviation init_std; "mix": the least-norm sources
    that mix to the mix (the mix itself in every slot for the mean)."""
    init_std: float | None = None
    """Standard deviation of the "noise" initialisation; None means the first sigma level."""
    n_chains: int = 1
    """Chains per mix, run together in one batch; the one with the highest final posterior wins."""
    final_step: str = "none"
    """"none": the last iterate. "noise_free": the very last update adds no noise (no extra cost).
    "denoise": one Tweedie step s + sigma_min**2 * grad log p_sigma_min(s) after the last iterate,
    using the gradient of the final scoring pass."""
    project: bool = False
    """Project the output onto the mixing constraint g(s) = m (after final_step)."""
    bound: float | None = 1.0
    """After every update, clamp the sources to +-(bound + 3 sigma): audio lives in [-1, 1], and
    a flow's score far outside its data can be huge enough to throw a chain to infinity in one
    step. None disables the clamp."""
    seed: int = 0
    """Seed of the CPU generator that draws every noise sample (results do not depend on device)."""

    def __post_init__(self) -> None:
        if self.mode not in ("annealed", "fixed"):
            raise ValueError(f"unknown Langevin mode {self.mode!r}; choose annealed or fixed")
        if not 0 < self.sigma_min <= self.sigma_max:
            raise ValueError("need 0 < sigma_min <= sigma_max")
        if self.n_levels < 1 or self.steps_per_level < 1 or self.n_chains < 1:
            raise ValueError("n_levels, steps_per_level and n_chains must be at least 1")
        if self.step_size <= 0 or self.gamma_scale <= 0:
            raise ValueError("step_size and gamma_scale must be positive")
        if self.step_sigma is not None and self.step_sigma <= 0:
            raise ValueError("step_sigma must be positive")
        if self.init not in ("noise", "mix"):
            raise ValueError(f"unknown init {self.init!r}; choose noise or mix")
        if self.init_std is not None and self.init_std < 0:
            raise ValueError("init_std must be non-negative")
        if self.bound is not None and self.bound <= 0:
            raise ValueError("bound must be positive (or None for no clamp)")
        if self.final_step not in ("none", "noise_free", "denoise"):
            raise ValueError(
                f"unknown final_step {self.final_step!r}; choose none, noise_free or denoise")

    @property
    def total_steps(self) -> int:
        """Number of Langevin updates, each one prior gradient evaluation."""
        return self.n_levels * self.steps_per_level

    def with_total_steps(self, steps: int) -> LangevinConfig:
        """The same schedule with about `steps` updates in all: the levels are kept (fewer
        when `steps` is smaller than their number) and the steps spread evenly over them."""
        if steps < 1:
            raise FieldError("steps", f"must be at least 1, got {steps}")
        n_levels = min(self.n_levels, steps)
        return dataclasses.replace(self, n_levels=n_levels,
                                   steps_per_level=max(steps // n_levels, 1))

    def sigmas(self) -> list[float]:
        """The noise level of every level, (n_levels,): geometric from sigma_max to sigma_min
        when annealed (a single level is sigma_min), sigma_min throughout when fixed."""
        if self.mode == "fixed" or self.n_levels == 1:
            return [self.sigma_min] * self.n_levels
        ratio = self.sigma_min / self.sigma_max
        return [self.sigma_max * ratio ** (level / (self.n_levels - 1))
                for level in range(self.n_levels)]

    def step_size_at(self, sigma: float) -> float:
        """eta = step_size * (sigma / step_sigma)**2."""
        reference = self.sigma_min if self.step_sigma is None else self.step_sigma
        return self.step_size * (sigma / reference) ** 2

    def gamma_at(self, sigma: float) -> float:
        """gamma = gamma_scale * sigma."""
        return self.gamma_scale * sigma
