"""The architecture of a FloWaveNet prior (`priorsep.nn.flows`)."""

from __future__ import annotations

from dataclasses import dataclass

from priorsep.config.fields import check_counts, check_finite


@dataclass(frozen=True)
class FlowConfig:
    """Architecture of one FloWaveNet prior (Kim et al. 2019, arXiv 1811.02155).

    Each of `n_blocks` blocks squeezes (time/2, channels*2) then applies `n_flows` flows of
    ActNorm -> affine coupling -> flip. Every coupling runs a non-causal WaveNet of `n_layers`
    dilated layers (dilations 1..2**(n_layers-1)) with `residual_channels` channels.
    """

    n_blocks: int = 2
    early_squeezes: int = 3
    """Squeezes before the first block (WaveGlow's grouping of samples): each halves the time
    resolution every coupling works at, cutting the cost per sample about in half."""
    n_flows: int = 3
    n_layers: int = 5
    residual_channels: int = 24
    skip_channels: int = 24
    kernel_size: int = 3
    cond_channels: int = 16
    """Width of the noise-level (log sigma) embedding added into every WaveNet gate."""
    max_log_scale: float = 4.0
    """Soft bound (tanh) on each coupling's |log s|: keeps the flow invertible in float32."""
    permutation: str = "flip"
    """What follows each coupling: "flip" swaps the channel halves (FloWaveNet), "invconv" is a
    learnt invertible 1x1 convolution (Glow)."""
    frame_transform: str = "none"
    """Applied to each frame of 2**early_squeezes samples after the early squeezes: "none", or
    "dct", a fixed orthonormal DCT-II (logdet 0), so the couplings see short-time spectra in
    which a periodic wave occupies few channels."""

    def __post_init__(self) -> None:
        if min(self.n_blocks, self.n_flows, self.n_layers) < 1:
            raise ValueError("n_blocks, n_flows and n_layers must be at least 1")
        if self.early_squeezes < 0:
            raise ValueError("early_squeezes must be at least 0")
        check_counts(self, 1, "residual_channels", "skip_channels", "kernel_size")
        check_counts(self, 0, "cond_channels")
        check_finite(self, 0.0, float("inf"), "max_log_scale", low_open=True)
        if self.kernel_size % 2 != 1:
            raise ValueError("kernel_size must be odd (the WaveNet is non-causal)")
        if self.permutation not in ("flip", "invconv"):
            raise ValueError(f"unknown permutation {self.permutation!r}; choose flip or invconv")
        if self.frame_transform not in ("none", "dct"):
            raise ValueError(f"unknown frame_transform {self.frame_transform!r}; "
                             "choose none or dct")
        if self.frame_transform == "dct" and self.early_squeezes < 1:
            raise ValueError("frame_transform dct needs early_squeezes >= 1")

    @property
    def length_multiple(self) -> int:
        """Input lengths must be a multiple of this (one halving per squeeze)."""
        return 2 ** (self.n_blocks + self.early_squeezes)
