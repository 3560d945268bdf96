"""Separation (and unconditional sampling) with score priors by a diffusion sampler.

The independent-priors sampler of Mariani et al. 2024 (MSDM/ISDM): EDM's probability-flow ODE
integrated from sigma_max down to sigma_min on Karras' schedule

    sigma_i = (sigma_max**(1/rho) + i / (n - 1) (sigma_min**(1/rho) - sigma_max**(1/rho)))**rho,

with Euler or Heun steps and optional churn (noise re-injection, EDM's S_churn), every source
moved along dx_k/dsigma = -sigma grad log p_k,sigma(x_k). The mix enters as one of:
- "dirac" (MSDM): the last source is never sampled but set so that the sources mix exactly to
  the mix, x_N = (m - sum_{k<N} a_k x_k) / a_N (for the mean mix, N m - sum of the others), and
  the free sources follow the gradient of the joint log-density along the constraint,
  g_k = grad log p_k(x_k) - (a_k / a_N) grad log p_N(x_N);
- "projection": the same exact constraint, every source treated alike: the sources are kept on
  the plane g(x) = m and move along the score projected onto it. The Dirac gradient moves along
  J J^T s (J: the last source solved from the others), which is N times too long in the
  direction that changes every source alike (a step of the right size for one source
  overshoots by N - 1 there); the projection J (J^T J)^-1 J^T s is not, and a denoiser that
  returns the true sources is followed to them exactly;
- "gaussian": every source is sampled and a Gaussian likelihood N(m; g(x), gamma**2) with
  gamma = gamma_scale * sigma pulls them towards the mix.
Optional Langevin correction steps at each level refine the sources with the same constrained
score.

Every noise sample comes from one CPU generator, so results do not depend on the device. All
chains of all mixes run in one batch: one score call per step evaluates every source.

Reference: Mariani, Tallini, Postolache, Mancusi, Cosmo, Rodolà 2024, "Multi-Source Diffusion
Models for Simultaneous Music Generation and Separation", arXiv 2302.02257 (the Dirac
separation, Algorithm 1); Karras et al. 2022 (EDM), arXiv 2206.00364 (schedule, Heun, churn).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from priorsep.config import DiffusionConfig
from priorsep.nn.interface import SourcePrior
from priorsep.separation import CountCallback
from priorsep.separation.mixing import Mixing


def karras_sigmas(config: DiffusionConfig) -> list[float]:
    """The noise level of every step, (steps + 1,): Karras' schedule from sigma_max to
    sigma_min, then 0 (the final denoising step)."""
    n = config.steps
    if n == 1:
        return [config.sigma_max, 0.0]
    high, low = config.sigma_max ** (1 / config.rho), config.sigma_min ** (1 / config.rho)
    return [(high + i / (n - 1) * (low - high)) ** config.rho for i in range(n)] + [0.0]


def _normal(shape: tuple[int, ...], generator: torch.Generator,
            like: torch.Tensor) -> torch.Tensor:
    return torch.randn(shape, generator=generator, dtype=like.dtype).to(like.device)


class _Constraint:
    """Where the mix enters: the Dirac constraint on the last source, or a Gaussian likelihood.

    Args:
        mix: (batch, time); mixing: the linear g with weights a_k.
    """

    def __init__(self, kind: str, mix: torch.Tensor, mixing: Mixing, n_sources: int,
                 gamma_scale: float) -> None:
        self.kind = kind
        self.mix = mix
        self.mixing = mixing
        self.gamma_scale = gamma_scale
        weights = mixing.weights(n_sources, mix.dtype, mix.device)
        if kind == "dirac" and weights[-1] == 0:
            raise ValueError("the Dirac constraint needs a non-zero weight on the last source")
        self.weights = weights

    def complete(self, sources: torch.Tensor) -> torch.Tensor:
        """Sources that satisfy the constraint: the last one solved from the others (Dirac), or
        the nearest sources that mix to the mix (projection)."""
        if self.kind == "projection":
            return self.mixing.project(sources, self.mix)
        if self.kind != "dirac":
            return sources
        free = sources[:, :-1]
        last = (self.mix - (free * self.weights[:-1, None]).sum(dim=1)) / self.weights[-1]
        return torch.cat([free, last[:, None]], dim=1)

    def gradient(self, score: torch.Tensor, sources: torch.Tensor, sigma: float) -> torch.Tensor:
        """The score of the posterior along the constraint, (batch, n_sources, time).

        Dirac: g_k = s_k - (a_k / a_N) s_N for the free sources, 0 for the last one.
        Projection: the score projected onto the constraint's tangent space,
        s - a (a . s) / |a|**2 at every time sample.
        Gaussian: s_k + a_k (m - g(x)) / gamma**2.
        """
        if self.kind == "projection":
            along = (score * self.weights[:, None]).sum(dim=1, keepdim=True)
            return score - self.weights[:, None] * along / self.weights.pow(2).sum()
        if self.kind == "dirac":
            ratio = (self.weights[:-1] / self.weights[-1])[:, None]
            free = score[:, :-1] - ratio * score[:, -1:]
            return torch.cat([free, torch.zeros_like(score[:, -1:])], dim=1)
        gamma = self.gamma_scale * max(sigma, 1e-4)
        residual = self.mix - self.mixing(sources)
        return score + self.mixing.adjoint(residual, sources.shape[1]) / gamma**2


@dataclass
class DiffusionResult:
    """The separated sources of each mix.

    Attributes:
        sources: (batch, n_sources, time), the best chain of each mix.
        chain_residual: (batch, n_chains) how far each chain's result is from a fixed point of
            the denoisers at sigma_min (mean squared D(x) - x), the score families' stand-in for
            a log-posterior when ranking chains: lower is better.
        best_chain: (batch,).
    """

    sources: torch.Tensor
    chain_residual: torch.Tensor
    best_chain: torch.Tensor


def _integrate(priors: SourcePrior, x: torch.Tensor, config: DiffusionConfig,
               constraint: _Constraint | None, generator: torch.Generator,
               progress: CountCallback | None) -> torch.Tensor:
    """Run the sampler from x at sigma_max to a clean estimate; (rows, n_sources, time)."""
    sigmas = karras_sigmas(config)
    steps = config.steps
    total = config.total_evaluations
    done = 0

    def report() -> None:
        if progress is not None:
            progress(done, total)

    def direction(x: torch.Tensor, sigma: float) -> torch.Tensor:
        # dx/dsigma = -sigma * (score along the constraint)
        score = priors.score(x, sigma)
        if constraint is not None:
            score = constraint.gradient(score, x, sigma)
        return -sigma * score

    def complete(x: torch.Tensor) -> torch.Tensor:
        return constraint.complete(x) if constraint is not None else x

    x = complete(x)
    for i in range(steps):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        churn = 0.0
        below_max = config.churn_max is None or sigma <= config.churn_max
        if config.churn > 0 and config.churn_min <= sigma and below_max:
            churn = min(config.churn / steps, math.sqrt(2) - 1)
        sigma_hat = sigma * (1 + churn)
        if churn > 0:
            extra = math.sqrt(sigma_hat**2 - sigma**2) * config.noise_scale
            x = complete(x + extra * _normal(tuple(x.shape), generator, x))
        if sigma_next == 0:  # the last level: the Euler step to 0 is the denoiser itself
            step = direction(x, sigma_hat)
            done += 1
            report()
            x = complete(x + (sigma_next - sigma_hat) * step)
        else:
            d = direction(x, sigma_hat)
            done += 1
            report()
            x_next = complete(x + (sigma_next - sigma_hat) * d)
            if config.solver == "heun":
                d_next = direction(x_next, sigma_next)
                done += 1
                report()
                x_next = complete(x + (sigma_next - sigma_hat) * 0.5 * (d + d_next))
            x = x_next
            for _ in range(config.corrector_steps):
                # Langevin correction at sigma_next: x + eta g + sqrt(2 eta) eps
                eta = config.corrector_size * sigma_next**2
                score = priors.score(x, sigma_next)
                if constraint is not None:
                    score = constraint.gradient(score, x, sigma_next)
                noise = _normal(tuple(x.shape), generator, x)
                x = complete(x + eta * score + math.sqrt(2 * eta) * noise)
                done += 1
                report()
    # one more denoising pass at sigma_min: where the result is not a fixed point, it is not
    # clean (used to rank chains)
    residual = (priors.denoise(x, config.sigma_min) - x).pow(2).mean(dim=(1, 2))
    done += 1
    report()
    return x, residual


def diffusion_separate(priors: SourcePrior, mix: torch.Tensor, mixing: Mixing,
                       config: DiffusionConfig | None = None, *,
                       initial: torch.Tensor | None = None,
                       generator: torch.Generator | None = None,
                       progress: CountCallback | None = None) -> DiffusionResult:
    """Sample the sources of each mix with the independent score priors under the mix.

    Costs `config.total_evaluations` score evaluations, each over all chains and sources of all
    mixes in one batch.

    Args:
        priors: any `SourcePrior` (score or density family).
        mix: (batch, time), time a multiple of `priors.length_multiple`.
        mixing: the linear mixing g.
        config: schedule, solver, churn, constraint, initialisation, chains.
        initial: (batch, n_sources, time) sources to start from (plus sigma_max noise),
            overriding `config.init`; with a low sigma_max this continues a run from a guess
            (e.g. the true sources, for diagnostics).
        generator: CPU generator of every noise sample; default: seeded with `config.seed`.
        progress: called with (evaluations done, total) after every score evaluation.

    Returns:
        A `DiffusionResult`.

    Reference: Mariani et al. 2024, arXiv 2302.02257, Algorithm 1 (Dirac separation).
    """
    config = config or DiffusionConfig()
    if mix.dim() != 2 or not mix.is_floating_point():
        raise ValueError(f"mix must be a floating-point (batch, time) tensor, "
                         f"got {tuple(mix.shape)}")
    generator = generator or torch.Generator().manual_seed(config.seed)
    n_sources = len(priors.sources)
    batch, time = mix.shape
    chains = config.n_chains
    with torch.no_grad():
        # chain c of mix b sits at row b * chains + c: (B, T) -> (B*C, T)
        chain_mix = mix.repeat_interleave(chains, dim=0)
        noise = config.sigma_max * _normal((batch * chains, n_sources, time), generator, mix)
        if initial is not None:
            if initial.shape != (batch, n_sources, time):
                raise ValueError(f"initial must have shape {(batch, n_sources, time)}, "
                                 f"got {tuple(initial.shape)}")
            start = initial.to(mix).repeat_interleave(chains, dim=0)
        elif config.init == "mix":
            start = mixing.least_norm_sources(chain_mix, n_sources)
        else:
            start = 0.0
        constraint = _Constraint(config.constraint, chain_mix, mixing, n_sources,
                                 config.gamma_scale)
        sources, residual = _integrate(priors, start + noise, config, constraint, generator,
                                       progress)
        chain_residual = residual.view(batch, chains)
        best_chain = chain_residual.argmin(dim=1)
        rows = torch.arange(batch, device=best_chain.device) * chains + best_chain
        return DiffusionResult(sources[rows], chain_residual, best_chain)


def sample_priors(priors: SourcePrior, n: int, length: int, config: DiffusionConfig,
                  temperature: float = 1.0, generator: torch.Generator | None = None,
                  progress: CountCallback | None = None) -> torch.Tensor:
    """Unconditional samples of every prior by the same sampler without a constraint.

    Returns:
        (n, n_sources, length).
    """
    generator = generator or torch.Generator().manual_seed(config.seed)
    n_sources = len(priors.sources)
    with torch.no_grad():
        like = torch.zeros((), device=priors.device)
        start = temperature * config.sigma_max * _normal((n, n_sources, length), generator, like)
        sources, _ = _integrate(priors, start, config, None, generator, progress)
    return sources
