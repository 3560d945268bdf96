"""priorsep: audio source separation with per-source generative priors.

Each source class gets its own FloWaveNet prior trained on solo recordings; separation samples
the sources from the posterior with Langevin dynamics under the mixing constraint.
"""

from priorsep.config import FlowConfig, ModelConfig, TrainConfig
from priorsep.errors import PriorsepError
from priorsep.nn.prior import SourcePriors
from priorsep.storage import load_model, save_model

__version__ = "0.1.0"

__all__ = [
    "FlowConfig",
    "ModelConfig",
    "PriorsepError",
    "SourcePriors",
    "TrainConfig",
    "__version__",
    "load_model",
    "save_model",
]
