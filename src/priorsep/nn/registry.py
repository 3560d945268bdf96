"""Prior families by name: `config.json` names the family, `build_priors` builds it.

A new family is one module implementing `priorsep.nn.interface.SourcePrior`, its architecture
dataclass in `priorsep.config.ARCHITECTURES`, and one entry here.
"""

from __future__ import annotations

from priorsep.config import ModelConfig
from priorsep.nn.autoregressive import WaveNetPriors
from priorsep.nn.gaussian import GaussianPriors
from priorsep.nn.interface import SourcePrior
from priorsep.nn.nmf import NMFPriors
from priorsep.nn.prior import SourcePriors
from priorsep.nn.score import ScorePriors
from priorsep.nn.spectral_vae import SpectralVAEPriors
from priorsep.nn.wavetable import WavetablePriors

FAMILIES: dict[str, type[SourcePrior]] = {"flowavenet": SourcePriors, "score": ScorePriors,
                                           "gaussian": GaussianPriors, "wavenet": WaveNetPriors,
                                           "wavetable": WavetablePriors, "nmf": NMFPriors,
                                           "vae": SpectralVAEPriors}


def build_priors(config: ModelConfig) -> SourcePrior:
    """A freshly initialised set of priors of the family `config.family`."""
    return FAMILIES[config.family](config)
