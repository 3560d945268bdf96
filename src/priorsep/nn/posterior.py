"""Amortised posteriors q(s_k | m): a non-causal WaveNet on the mix emitting, per time step and
source, a normal distribution truncated to [-1, 1].

The encoder reads the mix in frames of 2**squeezes samples (the frames are its channels, like the
flow's early squeezes), so the WaveNet runs at a fraction of the sample rate and a separation is
one cheap forward pass. The truncated normal has a reparameterised sampler (inverse CDF), its
analytic mean, variance and entropy, so the ELBO needs no sampling for the entropy term.

Reference: the thesis' "Modeling the posteriors" route (M. Frank, University of Amsterdam);
inverse-CDF reparameterisation of truncated normals as in Burkardt, "The Truncated Normal
Distribution" (2014).
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

from priorsep.config import PosteriorConfig
from priorsep.nn.wavenet import WaveNet

LOWER, UPPER = -1.0, 1.0
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
_PROBABILITY_EPS = 1e-6
"""Keeps the inverse CDF away from 0 and 1, where its gradient is infinite."""


def _normal_pdf(x: torch.Tensor) -> torch.Tensor:
    return torch.exp(-0.5 * x * x - _LOG_SQRT_2PI)


class TruncatedNormal:
    """The normal N(loc, scale**2) restricted to [-1, 1] and renormalised.

    `loc` must lie strictly inside (-1, 1) (the encoder guarantees it): then the interval always
    holds the parent's mode, the normaliser is at least about 0.34 times the parent's mass near
    the mode, and every formula below is well conditioned in float32.

    Args:
        loc, scale: tensors of one shape, scale > 0: the parent normal's mean and deviation.
    """

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor) -> None:
        self.loc = loc
        self.scale = scale
        self.alpha = (LOWER - loc) / scale
        self.beta = (UPPER - loc) / scale
        self.cdf_alpha = torch.special.ndtr(self.alpha)
        self.mass = (torch.special.ndtr(self.beta) - self.cdf_alpha).clamp_min(1e-12)

    @functools.cached_property
    def _shift(self) -> torch.Tensor:
        """(phi(alpha) - phi(beta)) / Z."""
        return (_normal_pdf(self.alpha) - _normal_pdf(self.beta)) / self.mass

    @functools.cached_property
    def _spread(self) -> torch.Tensor:
        """(alpha phi(alpha) - beta phi(beta)) / Z."""
        return (self.alpha * _normal_pdf(self.alpha)
                - self.beta * _normal_pdf(self.beta)) / self.mass

    @property
    def mean(self) -> torch.Tensor:
        """loc + scale * shift."""
        return self.loc + self.scale * self._shift

    @property
    def variance(self) -> torch.Tensor:
        """scale**2 (1 + spread - shift**2)."""
        return self.scale**2 * (1 + self._spread - self._shift**2)

    def entropy(self) -> torch.Tensor:
        """log(sqrt(2 pi e) scale Z) + spread / 2, in nats."""
        return _LOG_SQRT_2PI + 0.5 + torch.log(self.scale * self.mass) + 0.5 * self._spread

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """Log-density at `value` (inside [-1, 1]; outside, the formula is not the density)."""
        z = (value - self.loc) / self.scale
        return -0.5 * z * z - _LOG_SQRT_2PI - torch.log(self.scale * self.mass)

    def rsample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """One reparameterised sample per element: loc + scale Phi^-1(Phi(alpha) + u Z).

        The uniform u is drawn on the CPU from `generator` (results do not depend on the device).
        Gradients reach loc and scale through the inverse CDF, which is the exact pathwise
        derivative of the truncated distribution.
        """
        uniform = torch.rand(self.loc.shape, generator=generator).to(self.loc)
        probability = (self.cdf_alpha + uniform * self.mass).clamp(
            _PROBABILITY_EPS, 1 - _PROBABILITY_EPS)
        value = self.loc + self.scale * torch.special.ndtri(probability)
        return value.clamp(LOWER, UPPER)


class PosteriorEncoder(nn.Module):
    """q(s | m) for every source at once: (batch, time) mixes -> a `TruncatedNormal` of
    (batch, n_sources, time).

    The location starts at tanh of the least-norm sources that mix to the mix (`init`, from the
    model's mixing), and the WaveNet learns a correction: its last convolution is zero-initialised,
    so an untrained encoder proposes the mix in every slot with deviation `initial_scale`.

    Args:
        config: architecture.
        n_sources: number of sources.
    """

    def __init__(self, config: PosteriorConfig, n_sources: int) -> None:
        super().__init__()
        self.config = config
        self.n_sources = n_sources
        frame = config.frame
        self.net = WaveNet(frame, 2 * n_sources * frame, config.residual_channels,
                           config.skip_channels, config.n_layers, config.kernel_size)
        # softplus(offset) + min_scale = initial_scale
        target = max(config.initial_scale - config.min_scale, 1e-6)
        self.register_buffer("scale_offset", torch.tensor(math.log(math.expm1(target))))

    def forward(self, mix: torch.Tensor, init: torch.Tensor) -> TruncatedNormal:
        """Args:
            mix: (batch, time), time a multiple of `config.frame`.
            init: (batch, n_sources, time) where the location starts (for example
                `Mixing.least_norm_sources(mix)`).

        Returns:
            The posterior of every sample of every source: loc and scale (batch, n_sources, time).
        """
        batch, time = mix.shape
        frame = self.config.frame
        if time % frame:
            raise ValueError(f"mix length {time} is not a multiple of {frame}")
        # (B, T) -> (B, T/F, F) -> (B, F, T/F): each frame of F samples is one time step
        frames = mix.view(batch, time // frame, frame).transpose(1, 2)
        raw = self.net(frames)  # (B, 2*N*F, T/F)
        # (B, 2, N, F, T/F) -> (B, 2, N, T/F, F) -> (B, 2, N, T)
        raw = raw.view(batch, 2, self.n_sources, frame, time // frame).transpose(3, 4)
        raw = raw.reshape(batch, 2, self.n_sources, time)
        loc = torch.tanh(raw[:, 0] + init)
        scale = F.softplus(raw[:, 1] + self.scale_offset) + self.config.min_scale
        return TruncatedNormal(loc, scale)
