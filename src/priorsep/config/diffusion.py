"""Separation by a diffusion sampler (`priorsep.separation.diffusion`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DiffusionConfig:
    """Separation with score priors by a diffusion sampler (see `priorsep.separation.diffusion`).

    Karras' schedule of `steps` noise levels from sigma_max to sigma_min (then 0), Euler or Heun
    steps of the probability-flow ODE, EDM's churn, the Dirac constraint of Mariani et al. 2024
    (or a Gaussian likelihood), and optional Langevin corrections.
    """

    steps: int = 40
    sigma_max: float = 1.0
    sigma_min: float = 0.005
    rho: float = 7.0
    """Karras' schedule exponent: larger spends more steps at low noise."""
    solver: str = "heun"
    """"euler" (one score evaluation per step) or "heun" (two, second order)."""
    churn: float = 0.0
    """EDM's S_churn: noise re-injected per step is min(churn / steps, sqrt(2) - 1) of sigma."""
    churn_min: float = 0.0
    churn_max: float | None = None
    """Churn only for sigma in [churn_min, churn_max] (None: no upper bound)."""
    noise_scale: float = 1.0
    """EDM's S_noise: scale of the re-injected noise."""
    corrector_steps: int = 0
    """Langevin correction steps after every step (each one more score evaluation)."""
    corrector_size: float = 0.1
    """Step size of a correction, in units of sigma**2."""
    constraint: str = "projection"
    """"dirac": the last source is solved from the mix (MSDM); "projection": the sources stay
    on the plane that mixes to the mix and move along the projected score (exact, symmetric);
    "gaussian": every source is sampled under a Gaussian likelihood of width
    gamma_scale * sigma."""
    gamma_scale: float = 1.0
    init: str = "noise"
    """"noise": start at sigma_max noise; "mix": the mix in every slot (the least-norm sources
    that mix to it) plus sigma_max noise."""
    n_chains: int = 1
    """Chains per mix, run in one batch; the one nearest a fixed point of the denoisers wins."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.n_chains < 1 or self.corrector_steps < 0:
            raise ValueError("steps and n_chains must be at least 1, corrector_steps at least 0")
        if not 0 < self.sigma_min <= self.sigma_max:
            raise ValueError("need 0 < sigma_min <= sigma_max")
        if self.rho <= 0 or self.churn < 0 or self.noise_scale < 0 or self.corrector_size <= 0:
            raise ValueError("rho and corrector_size must be positive, churn and noise_scale "
                             "non-negative")
        if self.solver not in ("euler", "heun"):
            raise ValueError(f"unknown solver {self.solver!r}; choose euler or heun")
        if self.constraint not in ("dirac", "projection", "gaussian"):
            raise ValueError(f"unknown constraint {self.constraint!r}; "
                             "choose dirac, projection or gaussian")
        if self.gamma_scale <= 0:
            raise ValueError("gamma_scale must be positive")
        if self.init not in ("noise", "mix"):
            raise ValueError(f"unknown init {self.init!r}; choose noise or mix")

    @property
    def total_evaluations(self) -> int:
        """Score evaluations per run: every step (two for Heun but the last), the corrections
        after every step but the last, and one final check."""
        per_step = (2 if self.solver == "heun" else 1) + self.corrector_steps
        return (self.steps - 1) * per_step + 1 + 1
