"""The autoregressive WaveNet family: quantisation, causality, the smoothed density against a
numeric integral, cached sampling against uncached, and learning on toy data."""

from __future__ import annotations

import math

import pytest
import torch

from priorsep.config import ModelConfig, TrainConfig, WaveNetConfig
from priorsep.nn.autoregressive import Quantiser, compand, expand
from priorsep.nn.registry import build_priors

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(n_blocks=2, n_layers=3, residual_channels=8, skip_channels=8, classes=16,
            embedding_channels=4)


def randomised(quantisation: str = "linear", grouped: bool = True, classes: int = 16):
    torch.manual_seed(0)
    priors = build_priors(ModelConfig(
        architecture=WaveNetConfig(**{**TINY, "classes": classes, "quantisation": quantisation}),
        grouped=grouped))
    with torch.no_grad():
        for parameter in priors.parameters():
            parameter.add_(torch.randn(parameter.shape) * 0.3)
    return priors.eval()


@pytest.mark.parametrize("kind", ["linear", "mulaw"])
def test_quantisation_round_trip(kind):
    quantiser = Quantiser(256, kind)
    levels = torch.arange(256)
    assert torch.equal(quantiser.index(quantiser.value(levels)), levels)
    x = torch.linspace(-1, 1, 10001)
    error = (quantiser.value(quantiser.index(x)) - x).abs()
    width = (12 * quantiser.variances[quantiser.index(x)]).sqrt()
    # within its bin: half a bin from the centre (linear), less than a bin (mu-law, whose level
    # is the bin's centre after companding)
    assert (error <= width * (0.5 if kind == "linear" else 0.6) + 1e-6).all()
    assert torch.all(quantiser.levels[1:] > quantiser.levels[:-1])
    if kind == "mulaw":  # finer steps near zero than at full scale, as mu-law intends
        assert quantiser.variances[128] < quantiser.variances[255] / 100
        assert torch.allclose(expand(compand(x, 255.0), 255.0), x, atol=1e-6)
    else:
        assert torch.allclose(quantiser.variances, torch.full((256,), (2 / 256) ** 2 / 12))


def test_outputs_never_depend_on_later_inputs():
    priors = randomised()
    x = (torch.rand(1, 4, 64) * 2 - 1).requires_grad_(True)
    logits = priors(x, 0.1)
    for t in (0, 17, 63):
        (gradient,) = torch.autograd.grad(logits[0, :, :, t].sum(), x, retain_graph=True)
        assert gradient[..., t:].abs().max() == 0  # logits at t see samples before t only
        if t > 0:
            assert gradient[..., t - 1].abs().min() > 0
    # the density term of sample t sees samples up to t
    density = priors.smoothed_log_density(logits, x, torch.full((1, 4), 0.1))
    (gradient,) = torch.autograd.grad(density[0, :, 30].sum(), x)
    assert gradient[..., 31:].abs().max() == 0 and gradient[..., 30].abs().min() > 0


def test_receptive_field_is_the_span_of_the_gradient():
    priors = randomised()
    length = 3 * priors.receptive_field()
    x = (torch.rand(1, 4, length) * 2 - 1).requires_grad_(True)
    log_prob = priors.smoothed_log_density(priors(x, 0.1), x, torch.full((1, 4), 0.1))
    (gradient,) = torch.autograd.grad(log_prob[0, 0, -1], x)
    support = (gradient[0, 0] != 0).nonzero().flatten()
    assert int(support.max() - support.min() + 1) == priors.receptive_field()


@pytest.mark.parametrize("kind,sigma", [("linear", 0.0), ("linear", 0.05), ("mulaw", 0.02)])
def test_smoothed_density_matches_a_numeric_integral(kind, sigma):
    """One sample: p_sigma(y) = integral of p_0(x) N(y - x; sigma**2) dx (the categorical
    smoothed by each level's bin spread, then by the noise); two samples integrate to 1."""
    priors = randomised(kind)
    grid = torch.linspace(-1.6, 1.6, 6401, dtype=torch.float64)
    dx = float(grid[1] - grid[0])
    # the model's categorical of the first sample (it has no history) at this noise level
    with torch.no_grad():
        pi = torch.softmax(priors(torch.zeros(1, 4, 1), sigma)[0, 0, :, 0].double(), dim=0)
    levels, variances = priors.quantiser.levels.double(), priors.quantiser.variances.double()
    clean = (pi[:, None] * torch.exp(-(grid - levels[:, None]) ** 2 / (2 * variances[:, None]))
             / torch.sqrt(2 * math.pi * variances[:, None])).sum(dim=0)
    assert abs(float(clean.sum()) * dx - 1) < 1e-3
    for y in (-0.7, 0.0, 0.33):
        if sigma > 0:
            kernel = (torch.exp(-(y - grid) ** 2 / (2 * sigma**2))
                      / math.sqrt(2 * math.pi * sigma**2))
            expected = float((clean * kernel).sum()) * dx
        else:
            expected = float(clean[(grid - y).abs().argmin()])
        value = priors.log_prob(torch.full((1, 4, 1), y), sigma)[0, 0].detach()
        assert math.isclose(float(value), math.log(expected), rel_tol=0, abs_tol=2e-3)
    # a two-sample signal: the density (history included) integrates to one
    two = torch.linspace(-1.4, 1.4, 281)
    step = float(two[1] - two[0])
    pairs = torch.stack(torch.meshgrid(two, two, indexing="ij"), dim=0).reshape(2, -1)
    signals = pairs.T[:, None, :].expand(-1, 4, 2)
    with torch.no_grad():
        density = torch.exp(priors.log_prob(signals, max(sigma, 0.03))[:, 0])
    assert abs(float(density.sum()) * step**2 - 1) < 0.02


@pytest.mark.parametrize("grouped", [True, False])
def test_cached_sampling_equals_uncached(grouped):
    priors = randomised(grouped=grouped)
    for sigma, temperature in ((0.0, 1.0), (0.2, 0.7)):
        cached = priors.sample(2, 40, sigma, temperature, torch.Generator().manual_seed(3))
        uncached = priors.sample(2, 40, sigma, temperature, torch.Generator().manual_seed(3),
                                 cached=False)
        assert torch.allclose(cached, uncached, atol=1e-6)
    clean = priors.sample(1, 40, 0.0, generator=torch.Generator().manual_seed(4))
    assert torch.isin(clean, priors.quantiser.levels).all()  # clean samples are levels


def test_sampling_reports_progress_and_temperature_sharpens():
    priors = randomised()
    seen = []
    priors.sample(1, 300, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (300, 300) and len(seen) == 100
    cold = priors.sample(64, 1, temperature=0.05, generator=torch.Generator().manual_seed(0))
    assert cold.unique().numel() <= 4 * 2  # nearly the mode of each source's first categorical


def test_training_learns_toy_sources_better_than_noise(tmp_path):
    """120 steps: every prior gives its held-out source a higher likelihood than white noise of
    the same loudness, by a wide margin."""
    from priorsep.data.toy import ToyDataset, ToySources
    from priorsep.training import train

    config = ModelConfig(architecture=WaveNetConfig(n_blocks=1, n_layers=6,
                                                    residual_channels=16, skip_channels=16,
                                                    classes=64, embedding_channels=4))
    torch.manual_seed(0)
    priors = train(config, TrainConfig(steps=120, batch_size=4, crop_length=256, lr=5e-3,
                                       checkpoint_every=1000, seed=0),
                   ToySources(), tmp_path)
    held_out = ToyDataset("validation", 4, duration=512 / 16000).batch(range(4))
    noise = torch.randn_like(held_out) * held_out.std(dim=-1, keepdim=True)
    with torch.no_grad():
        real = priors.log_prob(held_out, 0.0).mean(0) / 512
        fake = priors.log_prob(noise.clamp(-1, 1), 0.0).mean(0) / 512
    assert (real > fake + 1.5).all(), (real, fake)  # measured: 2.3 to 4.7
