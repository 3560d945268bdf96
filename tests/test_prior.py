"""SourcePriors: grouped and separate layouts agree; receptive field; sampling."""

from __future__ import annotations

import pytest
import torch

from priorsep.config import FlowConfig, ModelConfig
from priorsep.nn.prior import SourcePriors, receptive_field, receptive_field_bound
from tests.conftest import TINY_FLOW, randomize_couplings


def test_grouped_and_separate_layouts_compute_the_same_density():
    torch.manual_seed(0)
    grouped = SourcePriors(ModelConfig(architecture=TINY_FLOW, grouped=True))
    separate = SourcePriors(ModelConfig(architecture=TINY_FLOW, grouped=False))
    randomize_couplings(grouped)
    grouped.train()
    grouped(torch.randn(4, 4, 64))
    # copy group k's weights into separate prior k (grouped conv weights stack along dim 0)
    for (name, p_grouped) in grouped.flows[0].named_parameters():
        for k, flow in enumerate(separate.flows):
            p_sep = dict(flow.named_parameters())[name]
            size = p_sep.shape[0] if p_sep.dim() else 1
            with torch.no_grad():
                if name.endswith(("loc", "log_scale")):
                    p_sep.copy_(p_grouped.view(4, -1)[k].view_as(p_sep))
                else:
                    p_sep.copy_(p_grouped[k * size:(k + 1) * size])
    grouped.eval()
    separate.eval()
    x = torch.randn(2, 4, 64)
    sigma = torch.tensor([[0.0, 0.1, 0.2, 0.3]]).expand(2, 4)
    assert torch.allclose(grouped.log_prob(x, sigma), separate.log_prob(x, sigma), atol=1e-3)


@pytest.mark.parametrize("early_squeezes", [0, 2])
def test_receptive_field_matches_the_trained_model_and_the_bound(early_squeezes):
    """The span one latent depends on, measured on a differently initialised model."""
    flow = FlowConfig(early_squeezes=early_squeezes, n_blocks=2, n_flows=1, n_layers=2,
                      residual_channels=4, skip_channels=4, cond_channels=3)
    config = ModelConfig(sources=("a",), architecture=flow)
    priors = SourcePriors(config).double()
    randomize_couplings(priors, std=1.0)
    priors.eval()
    x = torch.randn(1, 1, 4096, dtype=torch.double, requires_grad=True)
    z, _ = priors.flows[0](x, 0.1)
    z[0, :, z.shape[2] // 2].sum().backward()
    touched = (x.grad[0, 0] != 0).nonzero().flatten()
    width = int(touched.max() - touched.min() + 1)
    assert width == receptive_field(config)
    assert receptive_field(config) <= receptive_field_bound(flow)


def test_samples_have_the_requested_shape_and_are_finite():
    torch.manual_seed(0)
    priors = SourcePriors(ModelConfig(architecture=TINY_FLOW))
    priors.eval()
    samples = priors.sample(3, 130, temperature=0.5, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (3, 4, 128)
    assert torch.isfinite(samples).all()
