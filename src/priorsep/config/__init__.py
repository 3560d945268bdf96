"""Frozen dataclasses holding every hyperparameter, one per component.

Checkpoints and model folders store `dataclasses.asdict(config)`; `from_dict` rebuilds them,
ignoring nothing silently: unknown keys are an error so that a newer format is never misread.

One module per component: `fields` (checks and `from_dict`), the families' architectures
(`flow`, `score`, `gaussian`, `wavenet`, `wavetable`; `spectral`: NMF, the spectral VAE and
their Wiener method), `model` (the whole `ModelConfig`), `training` (training and the
posterior encoder), the samplers (`langevin`, `diffusion`, `extract`) and `separation` (the
settings a model stores: its method and each section's configuration). Every name is
re-exported here: `from priorsep.config import X` works for all.
"""

from priorsep.config.diffusion import DiffusionConfig
from priorsep.config.extract import REFINEMENTS, ExtractConfig
from priorsep.config.fields import FieldError, check_counts, check_finite, from_dict
from priorsep.config.flow import FlowConfig
from priorsep.config.gaussian import GaussianConfig
from priorsep.config.langevin import LangevinConfig
from priorsep.config.model import ARCHITECTURES, DEFAULT_MODEL, ModelConfig
from priorsep.config.score import FRONT_ENDS, ScoreConfig
from priorsep.config.separation import SECTIONS, SeparationSettings
from priorsep.config.spectral import PHASES, NMFConfig, SpectralVAEConfig, WienerConfig
from priorsep.config.training import PosteriorConfig, TrainConfig
from priorsep.config.wavenet import QUANTISATIONS, WaveNetConfig
from priorsep.config.wavetable import WavetableConfig

__all__ = ["ARCHITECTURES", "DEFAULT_MODEL", "FRONT_ENDS", "PHASES", "QUANTISATIONS",
           "REFINEMENTS", "SECTIONS", "DiffusionConfig", "ExtractConfig", "FieldError",
           "FlowConfig",
           "GaussianConfig", "LangevinConfig", "ModelConfig", "NMFConfig", "PosteriorConfig",
           "ScoreConfig", "SeparationSettings", "SpectralVAEConfig", "TrainConfig", "WaveNetConfig",
           "WavetableConfig", "WienerConfig", "check_counts", "check_finite", "from_dict"]
