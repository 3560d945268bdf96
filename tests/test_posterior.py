import math

import pytest
import torch

from priorsep.amortised import elbo, posterior_estimate
from priorsep.config import PosteriorConfig
from priorsep.nn.posterior import PosteriorEncoder, TruncatedNormal
from priorsep.separation.mixing import Mixing
from tests.gaussian import GaussianPriors, closed_form_posterior

CASES = [(0.0, 5.0), (0.95, 0.5), (0.99, 0.01), (-0.3, 0.2), (0.999, 2.0), (-0.9, 0.05)]


def _quadrature(loc: float, scale: float, points: int = 200001):
    """Mean, variance and entropy of the truncated density by numerical integration."""
    grid = torch.linspace(-1, 1, points, dtype=torch.float64)
    density = torch.exp(-0.5 * ((grid - loc) / scale) ** 2)
    density = density / torch.trapezoid(density, grid)
    mean = torch.trapezoid(grid * density, grid)
    variance = torch.trapezoid((grid - mean) ** 2 * density, grid)
    entropy = -torch.trapezoid(density * torch.log(density.clamp_min(1e-300)), grid)
    return float(mean), float(variance), float(entropy)


@pytest.mark.parametrize(("loc", "scale"), CASES)
def test_analytic_moments_match_numerical_integration(loc, scale):
    dist = TruncatedNormal(torch.tensor([loc], dtype=torch.float64),
                           torch.tensor([scale], dtype=torch.float64))
    mean, variance, entropy = _quadrature(loc, scale)
    assert float(dist.mean) == pytest.approx(mean, abs=1e-6)
    assert float(dist.variance) == pytest.approx(variance, rel=1e-4, abs=1e-9)
    assert float(dist.entropy()) == pytest.approx(entropy, abs=1e-4)


@pytest.mark.parametrize(("loc", "scale"), CASES)
def test_sampler_moments_match_the_analytic_ones(loc, scale):
    n = 200_000
    dist = TruncatedNormal(torch.full((n,), loc), torch.full((n,), scale))
    samples = dist.rsample(torch.Generator().manual_seed(0))
    assert samples.min() >= -1 and samples.max() <= 1
    std = float(dist.variance[0]) ** 0.5
    assert float(samples.mean()) == pytest.approx(float(dist.mean[0]), abs=5 * std / n**0.5)
    assert float(samples.var()) == pytest.approx(float(dist.variance[0]), rel=0.02)
    # the entropy is minus the expected log-density
    assert float(-dist.log_prob(samples).mean()) == pytest.approx(float(dist.entropy()[0]),
                                                                 abs=0.01)


@pytest.mark.parametrize(("loc", "scale"), [(0.95, 0.5), (0.2, 0.3), (-0.99, 0.02)])
def test_reparameterised_gradient_is_the_gradient_of_the_mean(loc, scale):
    """d E[x] / d(loc, scale) by pathwise samples equals autograd of the analytic mean,
    also where the truncation bounds bite."""
    n = 200_000
    loc_t = torch.tensor(loc, requires_grad=True)
    scale_t = torch.tensor(scale, requires_grad=True)
    dist = TruncatedNormal(loc_t.expand(n), scale_t.expand(n))
    sampled = torch.autograd.grad(dist.rsample(torch.Generator().manual_seed(1)).mean(),
                                  (loc_t, scale_t))
    exact = torch.autograd.grad(TruncatedNormal(loc_t, scale_t).mean, (loc_t, scale_t))
    for got, want in zip(sampled, exact):
        assert float(got) == pytest.approx(float(want), abs=0.02)


def test_untrained_encoder_proposes_the_mix_and_checks_lengths():
    config = PosteriorConfig(squeezes=2, n_layers=2, residual_channels=8, skip_channels=8)
    encoder = PosteriorEncoder(config, n_sources=3)
    mix = 0.4 * torch.randn(2, 64)
    mixing = Mixing("mean")
    posterior = encoder(mix, mixing.least_norm_sources(mix, 3))
    assert posterior.loc.shape == (2, 3, 64)
    torch.testing.assert_close(posterior.loc, torch.tanh(mix)[:, None].expand(2, 3, 64))
    torch.testing.assert_close(posterior.scale, torch.full((2, 3, 64), config.initial_scale))
    with pytest.raises(ValueError, match="multiple of 4"):
        encoder(mix[:, :62], mixing.least_norm_sources(mix[:, :62], 3))


def test_encoder_frames_keep_time_order():
    """Sample t of the output belongs to sample t of the input: a per-sample map learnt through
    the frames must line up (checked with a hand-set encoder that outputs its input)."""
    config = PosteriorConfig(squeezes=2, n_layers=1, residual_channels=4, skip_channels=4)
    encoder = PosteriorEncoder(config, n_sources=1)
    mix = torch.linspace(-0.5, 0.5, 16)[None]
    posterior = encoder(mix, torch.zeros(1, 1, 16))
    assert torch.all(posterior.loc == 0)
    # the same zero net, init = the mix shifted by one sample: the loc follows the init exactly
    shifted = torch.roll(mix, 1, dims=-1)[:, None]
    torch.testing.assert_close(encoder(mix, shifted).loc, torch.tanh(shifted))


def test_elbo_training_recovers_the_closed_form_posterior():
    """With Gaussian priors the exact posterior of every sample is Gaussian with a known mean,
    linear in the mix: the ELBO-trained encoder, which only ever sees mixes, must find it."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    priors = GaussianPriors(means=(0.0, 0.0), variances=(0.04, 0.0025))
    mixing = Mixing("mean")
    gamma, sigma = 0.02, 0.0
    config = PosteriorConfig(squeezes=1, n_layers=1, residual_channels=8, skip_channels=8,
                             sigma=sigma, gamma=gamma, initial_scale=0.05)
    encoder = PosteriorEncoder(config, n_sources=2)
    optimizer = torch.optim.Adam(encoder.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    std = priors.variances.sqrt()[:, None]

    def mixes(batch: int) -> torch.Tensor:
        return mixing(std * torch.randn(batch, 2, 256, generator=generator))

    for _ in range(400):
        loss = -elbo(priors, encoder, mixes(16), mixing, generator).mean() / 256
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    mix = mixes(4)
    estimate = posterior_estimate(encoder, mix, mixing)
    exact_mean, covariance = closed_form_posterior(priors, mixing, mix.reshape(-1), sigma, gamma)
    exact_mean = exact_mean.reshape(2, 4, 256).transpose(0, 1)  # (batch, n_sources, time)
    error = (estimate.double() - exact_mean).pow(2).mean(dim=(0, 2))
    assert torch.all(error < 0.1 * priors.variances.double()), error
    # q factorises over sources, so its best variance is not the marginal one but the inverse
    # of the posterior precision's diagonal (mean-field VI; Bishop 2006, section 10.1.2)
    mean_field_variance = 1 / torch.diagonal(torch.linalg.inv(covariance))
    spread = encoder(mix, mixing.least_norm_sources(mix, 2)).variance.mean(dim=(0, 2)).double()
    ratio = spread / mean_field_variance
    assert torch.all((ratio > 1 / 1.5**2) & (ratio < 1.5**2)), ratio


def test_posterior_average_of_samples_tends_to_the_mean():
    config = PosteriorConfig(squeezes=0, n_layers=1, residual_channels=4, skip_channels=4)
    encoder = PosteriorEncoder(config, n_sources=2)
    mix = 0.3 * torch.randn(1, 32)
    mixing = Mixing("mean")
    mean = posterior_estimate(encoder, mix, mixing)
    averaged = posterior_estimate(encoder, mix, mixing, samples=400,
                                  generator=torch.Generator().manual_seed(0))
    assert (averaged - mean).abs().max() < 5 * config.initial_scale / math.sqrt(400)
