"""Shared fixtures: tiny configurations that train and evaluate in seconds on 2 CPU cores."""

from __future__ import annotations

import pytest
import torch

from priorsep.config import FlowConfig, ModelConfig

TINY_FLOW = FlowConfig(early_squeezes=0, n_blocks=2, n_flows=2, n_layers=2, residual_channels=8,
                       skip_channels=8, cond_channels=4)


@pytest.fixture(autouse=True)
def _few_threads():
    torch.set_num_threads(2)
    yield


@pytest.fixture
def one_thread():
    """One torch thread for modules of tiny convolutions: as fast as two on an idle machine,
    and several times faster when another process keeps a core busy (two threads then wait on
    each other). Use with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def tiny_flow() -> FlowConfig:
    return TINY_FLOW


@pytest.fixture
def tiny_model_config() -> ModelConfig:
    return ModelConfig(architecture=TINY_FLOW)


def randomize_couplings(module: torch.nn.Module, std: float = 0.1) -> None:
    """Give the zero-initialised output convs random weights so couplings are not identities."""
    generator = torch.Generator().manual_seed(1)
    for name, parameter in module.named_parameters():
        if ".net.out." in name:
            with torch.no_grad():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * std)


def save_toy_priors(folder, flow: FlowConfig, separation: dict):
    """Save σ-conditional toy priors of architecture `flow` (ActNorm initialised on random
    audio, couplings still identities) with the separation defaults `separation`."""
    from priorsep.nn.prior import SourcePriors
    from priorsep.storage import save_model

    torch.manual_seed(0)
    priors = SourcePriors(ModelConfig(architecture=flow, trained_sigma_min=0.01,
                                      trained_sigma_max=1.0))
    priors.train()
    priors(torch.randn(2, 4, 256) * 0.5)
    save_model(priors.eval(), folder, {"separation": separation})
    return folder
