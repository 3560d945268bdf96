"""The generator priors of the wavetable family (`priorsep.nn.wavetable`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from priorsep.config.fields import FieldError, check_counts, check_finite


@dataclass(frozen=True)
class WavetableConfig:
    """Generator priors (`priorsep.nn.wavetable`): one learnt wavetable per source class.

    Source k is `x = g * W_k(frac(f0 t / rate + theta))`, latent z = (f0, theta, g): whatever
    the latent, the output is one source of class k (exclusive by construction). Training
    learns W_k by autoencoding solo crops (the encoder is the latent search) and the ranges of
    f0 and gain seen in them (the prior on z). `exact` replaces the tables by the toy
    generator's true shapes and ranges (model `toy-exact`: a reference, nothing to learn).
    """

    bins: int = 4096
    """Wavetable length (phase resolution 1 / bins of a cycle)."""
    segment_length: int = 4096
    """Samples per segment at separation (one latent per segment)."""
    f0_min: float = 20.0
    f0_max: float = 5000.0
    """Bounds of the encoder's f0 search while training (the learnt range is inside)."""
    peaks: int = 10
    subharmonics: int = 1
    """Trial f0s of the search: the residual's strongest peaks, and each peak / 2 ... /
    subharmonics for sources whose fundamental is weaker than a harmonic."""
    rounds: int = 6
    """Nested f0 grids of the search, each 4 times finer (6: f0 to about 0.002 Hz over a
    4096-sample segment, so the edges of a low square wave land on the right samples)."""
    pitch: str = "peaks"
    """The training encoder's f0 of a solo crop: "peaks" (its spectral peaks, searched with the
    class's table: right when the fundamental is the strongest partial, as in the toy data) or
    "yin" (YIN, snapped to a spectral peak within 3 %: for instruments whose fundamental can
    be weaker than a harmonic)."""
    spectral_weight: float = 0.1
    """Weight of the multi-resolution STFT term beside the waveform term of the training loss."""
    gain_spread_db: float = 40.0
    gain_headroom_db: float = 20.0
    """The gain prior is log-uniform from `gain_spread_db` below the quietest training crop to
    `gain_headroom_db` above the loudest: a source at any level of that span is inside its
    prior (0 and 0: the training range alone)."""
    silence: float = 0.5
    """Prior probability that a class is silent in a segment (its gain zero): the extraction
    weighs it against the evidence that the class is there."""
    exact: bool = False

    def __post_init__(self) -> None:
        check_counts(self, 8, "bins", "segment_length")
        check_counts(self, 1, "peaks", "subharmonics", "rounds")
        if self.pitch not in ("peaks", "yin"):
            raise FieldError("pitch", f"must be peaks or yin, got {self.pitch!r}")
        check_finite(self, 0.0, math.inf, "f0_min", low_open=True)
        check_finite(self, self.f0_min, math.inf, "f0_max")
        check_finite(self, 0.0, math.inf, "spectral_weight", "gain_spread_db",
                     "gain_headroom_db")
        check_finite(self, 0.0, 1.0, "silence", low_open=True)
        if self.silence >= 1.0:
            raise FieldError("silence", f"must be below 1, got {self.silence!r}")

    @property
    def length_multiple(self) -> int:
        return 1
