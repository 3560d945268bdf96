"""Every invertible layer: round trip, logdet against the autograd Jacobian, identity at init."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from priorsep.config import FlowConfig
from priorsep.nn.flows import (
    ActNorm,
    AffineCoupling,
    Flip,
    FloWaveNet,
    FrameDCT,
    InvertibleConv,
    Squeeze,
)
from tests.conftest import TINY_FLOW, randomize_couplings


def layers(groups: int):
    channels = 4
    return {
        "actnorm": ActNorm(groups * channels, groups),
        "coupling": AffineCoupling(channels, groups, TINY_FLOW),
        "dct": FrameDCT(channels, groups),
        "flip": Flip(channels, groups),
        "invconv": InvertibleConv(channels, groups),
        "squeeze": Squeeze(groups),
    }


@pytest.mark.parametrize("groups", [1, 3])
@pytest.mark.parametrize("name", ["actnorm", "coupling", "dct", "flip", "invconv", "squeeze"])
def test_layer_round_trip_and_logdet_shape(name, groups):
    torch.manual_seed(0)
    layer = layers(groups)[name].double()
    randomize_couplings(layer)
    layer.train()
    x = torch.randn(5, groups * 4, 16, dtype=torch.double)
    cond = torch.randn(5, groups * TINY_FLOW.cond_channels, 1, dtype=torch.double)
    layer(x, cond)  # data-dependent init where there is one
    layer.eval()
    y, logdet = layer(x, cond)
    x_back, logdet_back = layer.inverse(y, cond)
    assert logdet.shape == (5, groups)
    assert torch.allclose(x_back, x, atol=1e-10)
    assert torch.allclose(logdet + logdet_back, torch.zeros_like(logdet), atol=1e-10)


@pytest.mark.parametrize("permutation, frame_transform",
                         [("flip", "none"), ("invconv", "none"), ("invconv", "dct")])
@pytest.mark.parametrize("groups", [1, 2])
def test_flow_logdet_matches_autograd_jacobian(groups, permutation, frame_transform):
    torch.manual_seed(0)
    config = dataclasses.replace(TINY_FLOW, permutation=permutation,
                                 early_squeezes=max(TINY_FLOW.early_squeezes, 1),
                                 frame_transform=frame_transform)
    flow = FloWaveNet(config, groups=groups).double()
    flow.train()
    flow(torch.randn(4, groups, 16, dtype=torch.double))
    randomize_couplings(flow)
    flow.eval()
    x = torch.randn(1, groups, 16, dtype=torch.double)

    def forward(flat):
        return flow(flat.view(1, groups, 16), 0.05)[0].reshape(-1)

    jacobian = torch.autograd.functional.jacobian(forward, x.reshape(-1))
    _, logabsdet = torch.linalg.slogdet(jacobian)
    _, logdet = flow(x, 0.05)
    assert torch.allclose(logdet.sum(), logabsdet, atol=1e-8)


@pytest.mark.parametrize("early_squeezes", [0, 2])
def test_whole_flow_round_trip_with_sigma(early_squeezes):
    torch.manual_seed(0)
    config = FlowConfig(early_squeezes=early_squeezes, n_blocks=3, n_flows=2, n_layers=3,
                        residual_channels=8, skip_channels=8, cond_channels=4)
    flow = FloWaveNet(config, groups=4)
    flow.train()
    x = torch.randn(3, 4, 256)
    flow(x)
    randomize_couplings(flow)
    flow.eval()
    sigma = torch.tensor([[0.0, 0.01, 0.1, 1.0]]).expand(3, 4)
    z, logdet = flow(x, sigma)
    factor = 2 ** (3 + early_squeezes)
    assert z.shape == (3, 4 * factor, 256 // factor)
    x_back, logdet_back = flow.inverse(z, sigma)
    assert torch.allclose(x_back, x, atol=1e-4)
    assert torch.allclose(logdet, -logdet_back, atol=1e-3)


def test_frame_dct_puts_a_frame_periodic_cosine_in_one_channel():
    frame = 16
    config = FlowConfig(early_squeezes=4, n_blocks=1, n_flows=1, n_layers=1,
                        residual_channels=4, skip_channels=4, frame_transform="dct")
    flow = FloWaveNet(config, groups=1)
    front = flow.flow.layers[:5]  # four squeezes, then the DCT
    assert isinstance(front[4], FrameDCT)
    n = torch.arange(frame * 8, dtype=torch.float64)
    bin_ = 5  # DCT-II basis function 5 repeated in every frame of 16 samples
    x = torch.cos(torch.pi / frame * ((n % frame) + 0.5) * bin_).float().view(1, 1, -1)
    y = x
    for layer in front:
        y, _ = layer(y)
    energy = y.pow(2).sum(dim=2)[0]  # (16,) per channel
    assert energy.argmax() == bin_
    assert energy[bin_] / energy.sum() > 0.999999
    assert torch.allclose(y.pow(2).sum(), x.pow(2).sum())  # orthonormal: energy kept


def test_fresh_couplings_are_identities():
    coupling = AffineCoupling(4, 2, TINY_FLOW)
    x = torch.randn(2, 8, 32)
    y, logdet = coupling(x)
    assert torch.equal(y, x)
    assert torch.equal(logdet, torch.zeros(2, 2))


def test_groups_are_independent():
    """Changing one source's signal changes only that source's log-likelihood."""
    torch.manual_seed(0)
    flow = FloWaveNet(TINY_FLOW, groups=3)
    flow.train()
    flow(torch.randn(4, 3, 64))
    randomize_couplings(flow)
    flow.eval()
    x = torch.randn(2, 3, 64)
    changed = x.clone()
    changed[:, 1] += torch.randn(2, 64)
    before, after = flow.log_prob(x), flow.log_prob(changed)
    assert torch.equal(before[:, [0, 2]], after[:, [0, 2]])
    assert not torch.allclose(before[:, 1], after[:, 1])
    batch_alone = flow.log_prob(x[:1])
    assert torch.allclose(batch_alone, before[:1], atol=1e-5)


def test_standard_normal_log_prob_at_identity():
    """A fresh flow with unit ActNorm is volume preserving: log p = log N(x) exactly."""
    flow = FloWaveNet(TINY_FLOW, groups=1)
    flow.eval()  # ActNorm not initialised: identity
    x = torch.randn(3, 1, 64)
    expected = torch.distributions.Normal(0.0, 1.0).log_prob(x).sum(dim=(1, 2))
    assert torch.allclose(flow.log_prob(x)[:, 0], expected, atol=1e-4)
