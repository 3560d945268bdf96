"""The diffusion separation sampler: schedule, exact constraints, oracle and Gaussian posteriors."""

import pytest
import torch

from priorsep.config import DiffusionConfig, ModelConfig
from priorsep.nn.interface import SourcePrior, expand_sigma
from priorsep.separation.diffusion import diffusion_separate, karras_sigmas, sample_priors
from priorsep.separation.mixing import Mixing
from tests.gaussian import GaussianPriors, closed_form_posterior


class OraclePriors(SourcePrior):
    """Denoisers that return the true sources: the ideal prior for one known set of mixes."""

    def __init__(self, truth: torch.Tensor) -> None:
        sources = tuple(f"s{k}" for k in range(truth.shape[1]))
        super().__init__(ModelConfig(sources=sources))
        self.truth = truth

    def score(self, sources: torch.Tensor, sigma) -> torch.Tensor:
        sigma = expand_sigma(sigma, sources)[..., None]
        truth = self.truth.repeat_interleave(sources.shape[0] // self.truth.shape[0], dim=0)
        return (truth - sources) / sigma**2


def test_karras_schedule_runs_from_sigma_max_to_sigma_min_then_zero():
    sigmas = karras_sigmas(DiffusionConfig(steps=12, sigma_max=2.0, sigma_min=0.01))
    assert len(sigmas) == 13 and sigmas[-1] == 0.0
    assert sigmas[0] == pytest.approx(2.0) and sigmas[-2] == pytest.approx(0.01)
    assert all(a > b for a, b in zip(sigmas, sigmas[1:]))


@pytest.mark.parametrize("mixing", [Mixing("mean"), Mixing("sum"), Mixing("gains", (0.5, 2.0,
                                                                                     1.0))])
def test_an_oracle_prior_is_followed_to_the_truth(mixing):
    truth = torch.randn(2, 3, 64, generator=torch.Generator().manual_seed(1))
    mix = mixing(truth)
    for config in (DiffusionConfig(steps=8), DiffusionConfig(steps=8, solver="euler", churn=20),
                   DiffusionConfig(steps=4, corrector_steps=2, init="mix")):
        result = diffusion_separate(OraclePriors(truth), mix, mixing, config)
        assert torch.allclose(result.sources, truth, atol=1e-4)


@pytest.mark.parametrize("constraint", ["dirac", "projection"])
def test_the_exact_constraints_mix_back_to_the_mix(constraint):
    priors = GaussianPriors()
    mix = torch.randn(3, 32, generator=torch.Generator().manual_seed(2))
    mixing = Mixing("gains", (0.5, 1.5, 1.0))
    result = diffusion_separate(priors, mix, mixing,
                                DiffusionConfig(steps=6, constraint=constraint, churn=5))
    assert torch.allclose(mixing(result.sources), mix, atol=1e-5)


def test_gaussian_priors_give_the_closed_form_posterior():
    # The deterministic ODE under the constraint is biased (the noised priors restricted to the
    # plane do not follow the heat equation within it: mean 0.65 for 0.77 below); churn and
    # Langevin corrections re-equilibrate at every level and remove most of the bias.
    priors = GaussianPriors()
    mixing = Mixing()
    mix = torch.full((1, 4000), 0.3)
    config = DiffusionConfig(steps=30, sigma_max=3.0, sigma_min=0.002, churn=30,
                             corrector_steps=4)
    result = diffusion_separate(priors, mix, mixing, config)
    mean, covariance = closed_form_posterior(priors, mixing, mix[0, :1], sigma=0.0, gamma=1e-4)
    estimate = result.sources[0].double()
    assert torch.allclose(estimate.mean(dim=1), mean[:, 0], atol=0.04)
    # every time sample is one draw: their spread is the posterior's
    assert torch.allclose(estimate.var(dim=1), covariance.diagonal(), rtol=0.15)


def test_chains_and_seeds():
    priors = GaussianPriors()
    mix = torch.zeros(2, 16)
    config = DiffusionConfig(steps=4, n_chains=3, seed=7)
    first = diffusion_separate(priors, mix, Mixing(), config)
    again = diffusion_separate(priors, mix, Mixing(), config)
    assert torch.equal(first.sources, again.sources)
    assert first.chain_residual.shape == (2, 3)
    assert torch.equal(first.best_chain, first.chain_residual.argmin(dim=1))


def test_unconditional_samples_of_gaussian_priors_have_their_moments():
    priors = GaussianPriors()
    # the start, N(0, sigma_max**2), must swamp the data for the means to come out right
    samples = sample_priors(priors, 2, 4000, DiffusionConfig(steps=40, sigma_max=80.0,
                                                             sigma_min=0.002))
    assert torch.allclose(samples.mean(dim=(0, 2)), priors.means, atol=0.05)
    assert torch.allclose(samples.var(dim=(0, 2)), priors.variances, rtol=0.1)


def test_bad_arguments_are_value_errors():
    with pytest.raises(ValueError, match="constraint"):
        DiffusionConfig(constraint="soft")
    with pytest.raises(ValueError, match="initial must have shape"):
        diffusion_separate(GaussianPriors(), torch.zeros(1, 8), Mixing(),
                           initial=torch.zeros(1, 2, 8))
