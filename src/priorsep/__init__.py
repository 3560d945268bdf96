"""priorsep: audio source separation with per-source generative priors.

Each source class gets its own prior trained on solo recordings (a FloWaveNet flow or a
score-based denoiser); separation samples the sources from the posterior under the mixing
constraint (Langevin dynamics or a diffusion sampler), or reads them off an amortised encoder.

The names below load on first use, so `import priorsep` (and the command line's start-up) does
not import torch until something needs it.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "FlowConfig": "priorsep.config",
    "ModelConfig": "priorsep.config",
    "ScoreConfig": "priorsep.config",
    "TrainConfig": "priorsep.config",
    "PriorsepError": "priorsep.errors",
    "SourcePriors": "priorsep.nn.prior",
    "Separator": "priorsep.api",
    "load_model": "priorsep.storage",
    "save_model": "priorsep.storage",
}

__all__ = [*_LAZY, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'priorsep' has no attribute {name!r}")
