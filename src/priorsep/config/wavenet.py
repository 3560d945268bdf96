"""The architecture of autoregressive WaveNet priors (`priorsep.nn.autoregressive`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from priorsep.config.fields import FieldError, check_counts, check_finite

QUANTISATIONS = ("linear", "mulaw")
"""How an autoregressive WaveNet's 256 (or `classes`) levels are spaced: evenly over [-1, 1],
or evenly after mu-law companding (finer near zero, as the WaveNet paper)."""


@dataclass(frozen=True)
class WaveNetConfig:
    """Architecture of autoregressive WaveNet priors (`priorsep.nn.autoregressive`).

    A causal dilated stack of `n_blocks` blocks of `n_layers` gated layers (dilation
    2**i in layer i of a block), residual and skip paths, and a categorical over `classes`
    quantisation levels for the next sample. Noise-conditioned as PnF: the history is noised at
    level sigma, the target stays clean, and sigma enters every gate.
    """

    n_blocks: int = 3
    n_layers: int = 10
    kernel_size: int = 3
    residual_channels: int = 32
    skip_channels: int = 64
    classes: int = 256
    quantisation: str = "linear"
    """"linear" (needed where sources are summed: Langevin on a linear mix) or "mulaw"."""
    mu: float = 255.0
    """The mu of mu-law companding (quantisation "mulaw")."""
    embedding_channels: int = 16
    """Width of the noise-level embedding added into every gate."""

    def __post_init__(self) -> None:
        check_counts(self, 1, "n_blocks", "n_layers", "residual_channels", "skip_channels",
                     "embedding_channels")
        check_counts(self, 2, "kernel_size", "classes")
        if self.quantisation not in QUANTISATIONS:
            raise FieldError("quantisation", f"unknown quantisation {self.quantisation!r}; "
                                             f"choose {' or '.join(QUANTISATIONS)}")
        check_finite(self, 0.0, math.inf, "mu", low_open=True)

    @property
    def length_multiple(self) -> int:
        return 1
