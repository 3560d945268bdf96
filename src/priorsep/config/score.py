"""The architecture of score-based priors (`priorsep.nn.score`)."""

from __future__ import annotations

from dataclasses import dataclass

FRONT_ENDS = ("time", "spectral", "hybrid", "stft", "time+stft")
"""Views of a score prior: "spectral" is the FFT of the whole segment, "stft" short-time
spectra; "hybrid" is time + spectral."""


@dataclass(frozen=True)
class ScoreConfig:
    """Architecture of score-based priors: sigma-conditioned denoisers (`priorsep.nn.score`).

    Front ends: "time" (a dilated WaveNet over frames of `frame` samples), "spectral" (a dilated
    WaveNet over the bins of the orthonormal FFT of the whole segment), "stft" (a dilated WaveNet
    over the bins of every short-time spectrum, which also sees the segment's mean magnitude
    spectrum), "hybrid" (time + spectral) or "time+stft"; several views' outputs are summed.
    Layer i of a stack has dilation 2**(i % cycle).
    """

    front_end: str = "hybrid"
    frame: int = 8
    """Samples per time step of the time branch; input lengths must be a multiple of it."""
    time_channels: int = 48
    time_layers: int = 10
    time_cycle: int = 10
    spectral_frame: int = 4
    """Neighbouring frequency bins per step of the spectral branch (its squeeze)."""
    spectral_channels: int = 32
    spectral_layers: int = 12
    spectral_cycle: int = 12
    stft_size: int = 1024
    """Window of the short-time view (hop: half of it, square-root Hann windows)."""
    stft_channels: int = 32
    stft_layers: int = 8
    stft_cycle: int = 8
    time_attention: int = 0
    spectral_attention: int = 0
    """Self-attention layers in the time and spectral stacks (along frames or bins), spread
    evenly between the dilated layers: global competition, e.g. one tone kept and others
    dropped."""
    attention_width: int = 32
    kernel_size: int = 3
    embedding_channels: int = 32
    """Width of the noise-level embedding added into every gate."""
    shared: bool = False
    """One network for all sources, told the source by a learnt embedding, instead of one
    grouped network per source."""
    sigma_data: float = 0.6
    """Standard deviation of the clean data in EDM's preconditioning."""
    skip: bool = True
    """EDM's skip path D = c_skip x + c_out F. False: D = sigma_data F, the network
    synthesises the whole estimate, so nothing of the input reaches the output unless the
    network reproduces it (a test of whether the skip path is what makes denoisers keep every
    source of a mix)."""
    segment_length: int = 4096
    """Samples per segment at separation: the spectral view is learnt on segments of this
    length (the training frame length)."""

    def __post_init__(self) -> None:
        if self.front_end not in FRONT_ENDS:
            raise ValueError(f"unknown front_end {self.front_end!r}; "
                             f"choose {', '.join(FRONT_ENDS)}")
        if self.stft_size < 4 or self.stft_size % 2 or self.segment_length % (self.stft_size // 2):
            raise ValueError("stft_size must be even and its half divide segment_length")
        if min(self.time_attention, self.spectral_attention) < 0 or self.attention_width < 1:
            raise ValueError("attention layers must be >= 0 and attention_width >= 1")
        if min(self.frame, self.spectral_frame, self.stft_channels, self.stft_layers,
               self.stft_cycle, self.time_layers, self.spectral_layers, self.time_cycle,
               self.spectral_cycle, self.time_channels, self.spectral_channels,
               self.embedding_channels) < 1:
            raise ValueError("frame, layers, cycles and channels must be at least 1")
        if self.kernel_size % 2 != 1:
            raise ValueError("kernel_size must be odd (the denoiser is non-causal)")
        if self.sigma_data <= 0:
            raise ValueError("sigma_data must be positive")
        if self.segment_length < 1 or self.segment_length % self.frame:
            raise ValueError("segment_length must be a positive multiple of frame")

    @property
    def length_multiple(self) -> int:
        """Input lengths must be a multiple of this."""
        return self.frame
