"""priorsep: audio source separation with per-source generative priors.

Each source class gets its own prior trained on solo recordings of that class alone (spectral
models: NMF dictionaries or a VAE of spectrum frames; wavetable generators; FloWaveNet flows,
autoregressive WaveNets or score-based denoisers). Separation infers the sources under the
mixing constraint: posterior means under the spectral model (Wiener filtering, optionally with
MISI phases), staged extraction by each prior's evidence, Langevin dynamics or a diffusion
sampler, or an amortised encoder.

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
