import dataclasses

import pytest
import torch

from priorsep.config import FlowConfig, LangevinConfig, ModelConfig
from priorsep.nn.prior import SourcePriors
from priorsep.separation.langevin import (
    initial_sources,
    langevin_separate,
    log_likelihood,
    prior_gradient,
)
from priorsep.separation.mixing import Mixing
from tests.gaussian import GaussianPriors, closed_form_posterior

MIXINGS = [Mixing("mean"), Mixing("sum"), Mixing("gains", (0.5, 1.0, -0.8))]


@pytest.fixture(autouse=True)
def one_thread():
    """These tensors are tiny: with two intra-op threads on two busy cores, every op waits on
    the other thread (measured 40x slower here), so run single-threaded."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def gaussian_mix(mixing: Mixing, time: int, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    priors = GaussianPriors()
    sources = priors.means[:, None] + priors.variances.sqrt()[:, None] * torch.randn(
        3, time, generator=generator)
    return mixing(sources)  # (time,)


@pytest.mark.parametrize("mixing", MIXINGS, ids=lambda m: m.kind)
def test_annealed_posterior_matches_closed_form(mixing):
    priors = GaussianPriors()
    mix = gaussian_mix(mixing, time=8)
    chains = 4000
    config = LangevinConfig(
        bound=None, sigma_max=1.0, sigma_min=0.1, n_levels=4, steps_per_level=150,
        step_size=0.01, gamma_scale=3.0)
    result = langevin_separate(priors, mix.expand(chains, -1), mixing, config)
    mean, covariance = closed_form_posterior(priors, mixing, mix, sigma=0.1, gamma=0.3)
    samples = result.sources.double()  # (chains, n_sources, time)
    torch.testing.assert_close(samples.mean(dim=0), mean, atol=0.04, rtol=0)
    variance = samples.var(dim=0).mean(dim=1)  # every time sample has the same covariance
    torch.testing.assert_close(variance, covariance.diagonal(), rtol=0.1, atol=0)


def test_fixed_mode_posterior_mean_matches_closed_form():
    mixing = Mixing("mean")
    priors = GaussianPriors()
    mix = gaussian_mix(mixing, time=8, seed=2)
    config = LangevinConfig(
        bound=None, mode="fixed", sigma_min=0.1, n_levels=1, steps_per_level=400,
        step_size=0.005, gamma_scale=3.0, init="mix")
    result = langevin_separate(priors, mix.expand(4000, -1), mixing, config)
    mean, _ = closed_form_posterior(priors, mixing, mix, sigma=0.1, gamma=0.3)
    torch.testing.assert_close(result.sources.double().mean(dim=0), mean, atol=0.05, rtol=0)


@pytest.mark.parametrize("mode", ["annealed", "fixed"])
def test_one_noise_free_step_is_the_langevin_update(mode):
    mixing = Mixing("sum")
    priors = GaussianPriors()
    generator = torch.Generator().manual_seed(3)
    mix = torch.randn(2, 6, generator=generator)
    start = torch.randn(2, 3, 6, generator=generator)
    sigma, eta, gamma = 0.2, 0.01, 0.4
    config = LangevinConfig(bound=None, mode=mode, sigma_max=sigma, sigma_min=sigma, n_levels=1,
                            steps_per_level=1, step_size=eta, gamma_scale=2.0,
                            final_step="noise_free")
    result = langevin_separate(priors, mix, mixing, config, initial=start)

    def prior_grad(s):
        return -(s - priors.means[:, None]) / priors.variance(sigma)[:, None]

    def likelihood_grad(s):
        return (mix - s.sum(dim=1))[:, None] / gamma**2

    if mode == "annealed":
        expected = start + eta * (prior_grad(start) + likelihood_grad(start))
    else:
        moved = start + eta * prior_grad(start)
        expected = moved + eta * likelihood_grad(moved)
    torch.testing.assert_close(result.sources, expected)


def test_prior_gradient_is_autograd_of_log_prob():
    priors = GaussianPriors()
    sources = torch.randn(4, 3, 5)
    log_prob, gradient = prior_gradient(priors, sources, 0.3)
    torch.testing.assert_close(log_prob, priors.log_prob(sources, 0.3))
    expected = -(sources - priors.means[:, None]) / priors.variance(0.3)[:, None]
    torch.testing.assert_close(gradient, expected)
    assert not log_prob.requires_grad and not gradient.requires_grad


def test_best_of_chains_keeps_the_highest_posterior():
    mixing = Mixing("mean")
    priors = GaussianPriors()
    mix = torch.stack([gaussian_mix(mixing, time=16, seed=seed) for seed in range(4)])
    config = LangevinConfig(
        bound=None, sigma_min=0.1, n_levels=2, steps_per_level=5, step_size=0.01,
        gamma_scale=3.0, n_chains=6)
    result = langevin_separate(priors, mix, mixing, config)
    assert result.sources.shape == (4, 3, 16)
    assert result.chain_log_posterior.shape == (4, 6)
    assert (result.chain_log_posterior.std(dim=1) > 0).all()  # the chains differ
    torch.testing.assert_close(result.best_chain, result.chain_log_posterior.argmax(dim=1))
    torch.testing.assert_close(result.log_posterior, result.chain_log_posterior.max(dim=1).values)
    # the kept sources really score that: recompute their posterior independently
    rescored = priors.log_prob(result.sources, 0.1).sum(dim=1) + log_likelihood(
        result.sources, mix, mixing, gamma=0.3)
    torch.testing.assert_close(rescored, result.log_posterior)


def test_seed_determinism():
    mixing = Mixing("mean")
    priors = GaussianPriors()
    mix = torch.randn(3, 16, generator=torch.Generator().manual_seed(0))
    config = LangevinConfig(bound=None, n_levels=3, steps_per_level=4, n_chains=2, seed=7)
    first = langevin_separate(priors, mix, mixing, config)
    again = langevin_separate(priors, mix, mixing, config)
    assert torch.equal(first.sources, again.sources)
    explicit = langevin_separate(priors, mix, mixing, config,
                                 generator=torch.Generator().manual_seed(7))
    assert torch.equal(first.sources, explicit.sources)
    other = langevin_separate(priors, mix, mixing, LangevinConfig(bound=None,
        n_levels=3, steps_per_level=4, n_chains=2, seed=8))
    assert not torch.equal(first.sources, other.sources)


@pytest.mark.parametrize("mixing", MIXINGS, ids=lambda m: m.kind)
def test_mix_initialisation(mixing):
    mix = torch.randn(2, 10)
    config = LangevinConfig(bound=None, init="mix")
    start = initial_sources(mix, mixing, 3, config, torch.Generator())
    torch.testing.assert_close(mixing(start), mix)
    if mixing.kind == "mean":
        torch.testing.assert_close(start, mix[:, None].expand(2, 3, 10))
    if mixing.kind == "sum":
        torch.testing.assert_close(start, mix[:, None].expand(2, 3, 10) / 3)
    # with a negligible step size the sampler stays at the start
    tiny = LangevinConfig(bound=None, init="mix", n_levels=2, steps_per_level=2, step_size=1e-18)
    result = langevin_separate(GaussianPriors(), mix, mixing, tiny)
    torch.testing.assert_close(result.sources, start, atol=1e-5, rtol=0)


def test_noise_initialisation_scale():
    mix = torch.zeros(4, 4096)
    generator = torch.Generator().manual_seed(0)
    start = initial_sources(mix, Mixing(), 3, LangevinConfig(bound=None, sigma_max=0.5), generator)
    assert abs(start.std().item() - 0.5) < 0.01
    start = initial_sources(mix, Mixing(), 3, LangevinConfig(bound=None, init_std=2.0), generator)
    assert abs(start.std().item() - 2.0) < 0.04


@pytest.mark.parametrize("final_step", ["none", "denoise"])
def test_cost_is_levels_times_steps_plus_one_scoring_pass(final_step):
    priors = GaussianPriors()
    reports = []
    config = LangevinConfig(
        bound=None, n_levels=3, steps_per_level=7, n_chains=4, final_step=final_step)
    langevin_separate(priors, torch.randn(5, 8), Mixing(), config,
                      progress=lambda done, total: reports.append((done, total)))
    assert priors.calls == 3 * 7 + 1
    assert priors.gradient_calls == 3 * 7 + (final_step == "denoise")
    assert reports == [(step, 21) for step in range(1, 22)]


def test_denoise_applies_tweedie_and_project_meets_the_constraint():
    mixing = Mixing("mean")
    priors = GaussianPriors()
    mix = torch.randn(3, 8, generator=torch.Generator().manual_seed(4))
    base = LangevinConfig(bound=None, sigma_min=0.1, n_levels=2, steps_per_level=3)
    plain = langevin_separate(priors, mix, mixing, base).sources
    denoised = langevin_separate(priors, mix, mixing, LangevinConfig(bound=None,
        sigma_min=0.1, n_levels=2, steps_per_level=3, final_step="denoise")).sources
    tweedie = plain + 0.1**2 * -(plain - priors.means[:, None]) / priors.variance(0.1)[:, None]
    torch.testing.assert_close(denoised, tweedie)
    projected = langevin_separate(priors, mix, mixing, LangevinConfig(bound=None,
        sigma_min=0.1, n_levels=2, steps_per_level=3, project=True)).sources
    torch.testing.assert_close(mixing(projected), mix)
    torch.testing.assert_close(projected, mixing.project(plain, mix))


def test_schedule_and_validation():
    config = LangevinConfig(bound=None, sigma_max=1.0, sigma_min=0.01, n_levels=3)
    assert config.sigmas() == pytest.approx([1.0, 0.1, 0.01])
    assert LangevinConfig(bound=None, mode="fixed", n_levels=3).sigmas() == [0.01] * 3
    assert config.step_size_at(0.1) == pytest.approx(3e-5 * 100)
    pnf = LangevinConfig(bound=None, step_size=0.05, step_sigma=1.0, gamma_scale=15**-0.5)
    assert pnf.step_size_at(0.2) == pytest.approx(0.05 * 0.04)
    assert pnf.gamma_at(0.2) ** 2 == pytest.approx(0.04 / 15)
    with pytest.raises(ValueError, match="sigma_min"):
        LangevinConfig(bound=None, sigma_min=0.0)
    with pytest.raises(ValueError, match="mode"):
        LangevinConfig(bound=None, mode="greedy")
    with pytest.raises(ValueError, match="diverge"):
        langevin_separate(GaussianPriors(), torch.zeros(1, 4), Mixing("sum"),
                          LangevinConfig(bound=None, step_size=1.0))
    with pytest.raises(RuntimeError, match="inference_mode"), torch.inference_mode():
        langevin_separate(GaussianPriors(), torch.zeros(1, 4), Mixing(), LangevinConfig(bound=None))


def test_runs_on_a_real_flow_prior_without_touching_its_parameters():
    flow = FlowConfig(early_squeezes=0, n_blocks=1, n_flows=1, n_layers=1, residual_channels=4,
                      skip_channels=4, cond_channels=2)
    priors = SourcePriors(ModelConfig(sources=("a", "b"), architecture=flow)).eval()
    mix = torch.randn(2, 16)
    config = LangevinConfig(bound=None, n_levels=2, steps_per_level=2, n_chains=2, init="mix",
                            final_step="denoise")
    result = langevin_separate(priors, mix, Mixing.from_config(priors.config), config)
    assert result.sources.shape == (2, 2, 16)
    assert torch.isfinite(result.sources).all() and torch.isfinite(result.log_posterior).all()
    assert all(parameter.grad is None for parameter in priors.parameters())


def test_bound_keeps_a_chain_finite_under_an_exploding_score():
    """A prior whose score grows without limit far from 0 throws an unbounded chain to inf."""

    class Exploding(GaussianPriors):
        def log_prob(self, sources, sigma):
            return (sources.pow(4)).sum(dim=-1)  # gradient 4 s**3: pushes outwards, ever faster

    priors = Exploding(torch.zeros(2), torch.ones(2))
    mix = torch.full((1, 64), 0.5)
    config = LangevinConfig(sigma_max=1.0, sigma_min=0.1, n_levels=2, steps_per_level=20,
                            step_size=1e-2)
    bounded = langevin_separate(priors, mix, Mixing(), config).sources
    assert torch.isfinite(bounded).all() and bounded.abs().max() <= 1.0 + 3 * 1.0
    free = langevin_separate(priors, mix, Mixing(), dataclasses.replace(config, bound=None))
    assert not torch.isfinite(free.sources).all()
