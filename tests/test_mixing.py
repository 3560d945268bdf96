import pytest
import torch

from priorsep.config import ModelConfig
from priorsep.separation.mixing import Mixing

MIXINGS = [Mixing("mean"), Mixing("sum"), Mixing("gains", (0.5, 1.0, -0.8))]


@pytest.mark.parametrize("mixing", MIXINGS, ids=lambda m: m.kind)
def test_mixing_is_the_weighted_sum(mixing):
    sources = torch.randn(2, 3, 10)
    weights = {"mean": [1 / 3] * 3, "sum": [1.0] * 3, "gains": [0.5, 1.0, -0.8]}[mixing.kind]
    expected = sum(w * sources[:, k] for k, w in enumerate(weights))
    torch.testing.assert_close(mixing(sources), expected)


@pytest.mark.parametrize("mixing", MIXINGS, ids=lambda m: m.kind)
def test_adjoint_least_norm_sources_and_project(mixing):
    generator = torch.Generator().manual_seed(0)
    sources = torch.randn(2, 3, 10, generator=generator)
    residual = torch.randn(2, 10, generator=generator)
    # <g(s), r> == <s, g^T(r)>
    torch.testing.assert_close((mixing(sources) * residual).sum(),
                               (sources * mixing.adjoint(residual, 3)).sum())
    mix = torch.randn(2, 10, generator=generator)
    torch.testing.assert_close(mixing(mixing.least_norm_sources(mix, 3)), mix)
    projected = mixing.project(sources, mix)
    torch.testing.assert_close(mixing(projected), mix)
    # the projection moves only along the mixing direction
    torch.testing.assert_close(mixing.project(projected, mix), projected)


def test_least_norm_sources_of_the_mean_are_the_mix_in_every_slot():
    mix = torch.randn(4, 7)
    torch.testing.assert_close(Mixing("mean").least_norm_sources(mix, 3),
                               mix[:, None].expand(4, 3, 7))
    torch.testing.assert_close(Mixing("sum").least_norm_sources(mix, 4),
                               mix[:, None].expand(4, 4, 7) / 4)


def test_from_config_and_validation():
    assert Mixing.from_config(ModelConfig()) == Mixing("mean")
    config = ModelConfig(sources=("a", "b"), mixing="gains", gains=(1.0, 2.0))
    assert Mixing.from_config(config).gains == (1.0, 2.0)
    with pytest.raises(ValueError, match="2 gains for 4 sources"):
        Mixing.from_config(ModelConfig(mixing="gains", gains=(1.0, 2.0)))
    with pytest.raises(ValueError, match="unknown mixing"):
        Mixing("product")
    with pytest.raises(ValueError, match="takes no gains"):
        Mixing("sum", (1.0, 1.0))
    with pytest.raises(ValueError, match="one gain per source"):
        Mixing("gains")
    with pytest.raises(ValueError, match="all be zero"):
        Mixing("gains", (0.0, 0.0))
