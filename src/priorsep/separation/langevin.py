"""Sampling the sources from the posterior p(s | m) with Langevin dynamics.

One update, for every source k at once (SGLD, Welling & Teh 2011, "Bayesian Learning via
Stochastic Gradient Langevin Dynamics"):

    s <- s + eta * (grad log p_sigma(s) + grad log p(m | s)) + sqrt(2 eta) * eps,

with noise-conditioned priors p_sigma (trained on x + sigma * eps, sigma given as input), the
Gaussian likelihood p(m | s) = N(m; g(s), gamma**2 I) around the known linear mixing g, and
eta, gamma tied to sigma as set by `LangevinConfig`.

Two modes:
- "annealed" (BASIS, Jayaram & Thickstun 2020, arXiv 2002.07942): geometric sigma levels from
  sigma_max to sigma_min, `steps_per_level` updates at each.
- "fixed" (Algorithm 2 of the thesis this package starts from, M. Frank, University of
  Amsterdam): every step at sigma_min, split into a prior step
  `s' = s + eta grad log p_sigma(s) + sqrt(2 eta) eps` and then a constraint step
  `s = s' + eta grad log p(m | s')`. Corrected from the thesis as printed: there the constraint
  step has the wrong sign (it pushes away from the mix) and no weight a_k, the noise is
  2 sqrt(eta) eps, and the residual is taken at the old iterate.

The prior gradient is autograd of the prior's full `log_prob` (a flow's log-determinant
included) with respect to a detached leaf; nothing else builds a graph, and the likelihood
gradient is closed-form. All chains of all mixes run in one batch, so one `log_prob` call per
update evaluates every source of every chain. Every noise sample is drawn on the CPU from one
seeded generator, so a result does not depend on the device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from priorsep.config import LangevinConfig
from priorsep.nn.interface import SourcePrior
from priorsep.separation import CountCallback
from priorsep.separation.mixing import Mixing


@dataclass
class LangevinResult:
    """The separated sources and how probable they are.

    Attributes:
        sources: (batch, n_sources, time) the estimate of the best chain of each mix.
        log_posterior: (batch,) log p_sigma_min(s) + log p(m | s) of the best chain's last iterate
            (before `final_step` and `project`), in nats, up to the constant log p(m). For
            priors without a log-density (`has_log_prob` False) it is log p(m | s) alone, and
            `ranked_by` says so.
        chain_log_posterior: (batch, n_chains) the same for every chain.
        best_chain: (batch,) index of the chain that was kept.
    """

    sources: torch.Tensor
    log_posterior: torch.Tensor
    chain_log_posterior: torch.Tensor
    best_chain: torch.Tensor
    ranked_by: str = "posterior"
    """"posterior", or "likelihood" when the priors have no log-density."""


def prior_gradient(priors: SourcePrior, sources: torch.Tensor,
                   sigma: float) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Log-density of each source under its prior (None for a score-only family) and the
    score, both detached; see `SourcePrior.log_prob_and_score`.

    Args:
        sources: (batch, n_sources, time).
        sigma: the noise level the priors condition on.

    Returns:
        log_prob (batch, n_sources) or None, and the score (batch, n_sources, time).
    """
    return priors.log_prob_and_score(sources, sigma)


def log_likelihood(sources: torch.Tensor, mix: torch.Tensor, mixing: Mixing,
                   gamma: float) -> torch.Tensor:
    """log N(mix; g(sources), gamma**2 I) in nats.

    Args:
        sources: (batch, n_sources, time).
        mix: (batch, time).

    Returns:
        (batch,).
    """
    residual = mix - mixing(sources)
    time = residual.shape[-1]
    return (-0.5 * residual.pow(2).sum(dim=-1) / gamma**2
            - 0.5 * time * math.log(2 * math.pi * gamma**2))


def likelihood_gradient(sources: torch.Tensor, mix: torch.Tensor, mixing: Mixing,
                        gamma: float) -> torch.Tensor:
    """grad_s log N(mix; g(s), gamma**2 I) = a_k (mix - g(s)) / gamma**2.

    Args:
        sources: (batch, n_sources, time).
        mix: (batch, time).

    Returns:
        (batch, n_sources, time).
    """
    return mixing.adjoint(mix - mixing(sources), sources.shape[-2]) / gamma**2


def _standard_normal(shape: tuple[int, ...], generator: torch.Generator,
                     like: torch.Tensor) -> torch.Tensor:
    """N(0, 1) noise drawn on the CPU (device-independent), moved to `like`'s device."""
    noise = torch.randn(shape, generator=generator, dtype=like.dtype)
    return noise.to(like.device)


def initial_sources(mix: torch.Tensor, mixing: Mixing, n_sources: int, config: LangevinConfig,
                    generator: torch.Generator) -> torch.Tensor:
    """Where the chains start.

    "noise": N(0, init_std**2) (init_std defaults to the first sigma level); "mix": the
    least-norm sources that mix exactly to the mix, i.e. the mix itself in every source slot for
    the mean, mix / N for the sum, a_k m / sum_j a_j**2 for gains.

    Args:
        mix: (batch, time).

    Returns:
        (batch, n_sources, time).
    """
    if config.init == "mix":
        return mixing.least_norm_sources(mix, n_sources)
    std = config.sigmas()[0] if config.init_std is None else config.init_std
    return std * _standard_normal((mix.shape[0], n_sources, mix.shape[1]), generator, mix)


def _check_stable(config: LangevinConfig, mixing: Mixing, n_sources: int) -> None:
    # The likelihood term is an exact quadratic: each update scales the mix residual by
    # (1 - c), c = eta * sum_k a_k**2 / gamma**2, the same at every level (both scale as sigma**2).
    sigma = config.sigma_min
    contraction = config.step_size_at(sigma) * mixing.squared_norm(n_sources) / (
        config.gamma_at(sigma) ** 2)
    if contraction >= 2:
        raise ValueError(
            f"step size too large for the likelihood: eta * sum(a**2) / gamma**2 = "
            f"{contraction:.3g} >= 2 makes the chain diverge; lower step_size or raise gamma_scale")


def langevin_separate(priors: SourcePrior, mix: torch.Tensor, mixing: Mixing,
                      config: LangevinConfig | None = None, *,
                      initial: torch.Tensor | None = None,
                      generator: torch.Generator | None = None,
                      progress: CountCallback | None = None) -> LangevinResult:
    """Sample the sources of each mix from the posterior by (annealed) Langevin dynamics.

    Costs exactly `config.n_levels * config.steps_per_level` prior gradient evaluations, plus one
    final scoring pass (forward only, unless `final_step="denoise"`), each over all chains and
    sources of all mixes in one batch. Call it with the priors in eval mode and not inside
    `torch.inference_mode` (the prior gradient needs autograd); it runs under `torch.no_grad`.

    Args:
        priors: the source priors, see `Prior`.
        mix: (batch, time), time a length the priors accept.
        mixing: the mixing function g.
        config: schedule, step size, likelihood width, initialisation, chains (default: BASIS).
        initial: (batch, n_sources, time) starting sources for every chain, overriding
            `config.init` (e.g. the true sources, for diagnostics).
        generator: CPU generator for all noise; default: seeded with `config.seed`.
        progress: called with (updates done, total updates) after every update.

    Returns:
        A `LangevinResult`; `sources` is (batch, n_sources, time).

    Reference: Welling & Teh 2011 (SGLD); Jayaram & Thickstun 2020, "Source Separation with Deep
    Generative Priors" (BASIS), arXiv 2002.07942.
    """
    config = config or LangevinConfig()
    if mix.dim() != 2:
        raise ValueError(f"mix must be (batch, time), got shape {tuple(mix.shape)}")
    if not mix.is_floating_point():
        raise ValueError("mix must be a floating-point tensor")
    if torch.is_inference_mode_enabled():
        raise RuntimeError("langevin_separate needs autograd: do not call it in inference_mode")
    if mix.is_inference():
        mix = mix.clone()
    n_sources = len(priors.sources)
    _check_stable(config, mixing, n_sources)
    if generator is None:
        generator = torch.Generator().manual_seed(config.seed)
    batch, time = mix.shape
    n_chains = config.n_chains
    with torch.no_grad():
        # chain c of mix b sits at row b * n_chains + c: (B, T) -> (B*C, T)
        chain_mix = mix.repeat_interleave(n_chains, dim=0)
        if initial is None:
            sources = initial_sources(chain_mix, mixing, n_sources, config, generator)
        else:
            if initial.shape != (batch, n_sources, time):
                raise ValueError(f"initial must have shape {(batch, n_sources, time)}, "
                                 f"got {tuple(initial.shape)}")
            sources = initial.detach().to(mix).repeat_interleave(n_chains, dim=0)
        sources = _run_chains(priors, sources, chain_mix, mixing, config, generator, progress)
        return _finish(priors, sources, chain_mix, mixing, config, batch)


def _run_chains(priors: SourcePrior, sources: torch.Tensor, mix: torch.Tensor, mixing: Mixing,
                config: LangevinConfig, generator: torch.Generator,
                progress: CountCallback | None) -> torch.Tensor:
    """All updates of the schedule; sources (batch * chains, n_sources, time) in and out."""
    total = config.total_steps
    done = 0
    for sigma in config.sigmas():
        step_size = config.step_size_at(sigma)
        gamma = config.gamma_at(sigma)
        noise_scale = math.sqrt(2 * step_size)
        for _ in range(config.steps_per_level):
            done += 1
            _, prior_grad = prior_gradient(priors, sources, sigma)
            last_noise_free = done == total and config.final_step == "noise_free"
            noise = 0.0 if last_noise_free else noise_scale * _standard_normal(
                tuple(sources.shape), generator, sources)
            if config.mode == "annealed":
                drift = prior_grad + likelihood_gradient(sources, mix, mixing, gamma)
                sources = sources + step_size * drift + noise
            else:  # thesis Algorithm 2: prior step, then constraint step on the new iterate
                sources = sources + step_size * prior_grad + noise
                sources = sources + step_size * likelihood_gradient(sources, mix, mixing, gamma)
            if config.bound is not None:
                limit = config.bound + 3 * sigma
                sources = sources.clamp(-limit, limit)
            if progress is not None:
                progress(done, total)
    return sources


def _finish(priors: SourcePrior, sources: torch.Tensor, mix: torch.Tensor, mixing: Mixing,
            config: LangevinConfig, batch: int) -> LangevinResult:
    """Score every chain at the last level, keep the best per mix, apply the final options."""
    sigma = config.sigmas()[-1]
    if config.final_step == "denoise":
        log_prior, prior_grad = prior_gradient(priors, sources, sigma)
    elif priors.has_log_prob:
        log_prior, prior_grad = priors.log_prob(sources, sigma), None
    else:
        log_prior, prior_grad = None, None
    log_posterior = log_likelihood(sources, mix, mixing, config.gamma_at(sigma))
    if log_prior is not None:
        log_posterior = log_posterior + log_prior.sum(dim=1)
    # (B*C,) -> (B, C): one row of chain scores per mix
    chain_log_posterior = log_posterior.view(batch, config.n_chains)
    best_chain = chain_log_posterior.argmax(dim=1)
    rows = torch.arange(batch, device=best_chain.device) * config.n_chains + best_chain
    best = sources[rows]
    if prior_grad is not None:
        # Tweedie's formula: E[x | x + sigma * eps] = y + sigma**2 * grad log p_sigma(y)
        best = best + sigma**2 * prior_grad[rows]
    if config.project:
        best = mixing.project(best, mix[rows])
    return LangevinResult(
        sources=best,
        log_posterior=chain_log_posterior.gather(1, best_chain[:, None]).squeeze(1),
        chain_log_posterior=chain_log_posterior,
        best_chain=best_chain,
        ranked_by="posterior" if priors.has_log_prob else "likelihood",
    )
