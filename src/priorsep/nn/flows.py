"""Invertible layers of FloWaveNet, all with one contract.

Every layer maps `forward(x, cond=None) -> (y, logdet)` and `inverse(y, cond=None) -> (x, logdet)`.
Tensors are (batch, groups * channels, time): `groups` independent priors (one per source) share
one module, and `logdet` has shape (batch, groups), one value per example *and source*, so that
each source keeps its own likelihood. Composites loop over their layers and sum logdets.

Reference: Kim et al. 2019, "FloWaveNet: A Generative Flow for Raw Audio", arXiv 1811.02155;
Kingma & Dhariwal 2018, "Glow" (ActNorm, zero-initialised couplings), arXiv 1807.03039.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from priorsep.config import FlowConfig
from priorsep.nn.interface import expand_sigma
from priorsep.nn.wavenet import WaveNet


def _zeros_logdet(x: torch.Tensor, groups: int) -> torch.Tensor:
    return x.new_zeros(x.shape[0], groups)


def _mix_channels(weight: torch.Tensor, x: torch.Tensor, groups: int) -> torch.Tensor:
    """Multiply the channels of every group and time step: weight (G, C, C) or (C, C),
    x (batch, G*C, T) -> (batch, G*C, T)."""
    batch, channels, time = x.shape
    x = x.view(batch, groups, channels // groups, time)  # (B, G, C, T)
    return torch.matmul(weight, x).reshape(batch, channels, time)  # (G, C, C) @ (B, G, C, T)


class ActNorm(nn.Module):
    """Per-channel affine `y = (x + loc) * exp(log_scale)` with data-dependent initialisation.

    The first forward pass in training mode sets `loc` and `log_scale` so the output has zero
    mean and unit variance per channel; the `initialized` buffer records it, so a loaded
    checkpoint is never re-initialised.
    """

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.groups = groups
        self.loc = nn.Parameter(torch.zeros(1, channels, 1))
        self.log_scale = nn.Parameter(torch.zeros(1, channels, 1))
        self.register_buffer("initialized", torch.tensor(0, dtype=torch.uint8))

    @torch.no_grad()
    def _initialize(self, x: torch.Tensor) -> None:
        mean = x.mean(dim=(0, 2), keepdim=True)
        std = x.std(dim=(0, 2), keepdim=True, unbiased=False)
        self.loc.copy_(-mean)
        self.log_scale.copy_(-torch.log(std.clamp_min(1e-4)))
        self.initialized.fill_(1)

    def _logdet(self, x: torch.Tensor) -> torch.Tensor:
        per_group = self.log_scale.view(self.groups, -1).sum(dim=1) * x.shape[2]  # (G,)
        return per_group.expand(x.shape[0], self.groups)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None):
        if not self.initialized and self.training:
            self._initialize(x)
        y = (x + self.loc) * torch.exp(self.log_scale)
        return y, self._logdet(x)

    def inverse(self, y: torch.Tensor, cond: torch.Tensor | None = None):
        x = y * torch.exp(-self.log_scale) - self.loc
        return x, -self._logdet(y)


class AffineCoupling(nn.Module):
    """`log s, t = WaveNet(x_a)`; `y_b = (x_b - t) * exp(-log s)`; logdet = -sum(log s).

    `log s` passes through a soft bound `m * tanh(raw / m)` (m = `max_log_scale`), which is the
    identity near 0, so the zero-initialised last conv still makes the coupling the identity.
    """

    def __init__(self, channels: int, groups: int, config: FlowConfig) -> None:
        super().__init__()
        if channels % 2:
            raise ValueError("coupling needs an even number of channels per group")
        self.channels = channels
        self.groups = groups
        self.max_log_scale = config.max_log_scale
        self.net = WaveNet(
            in_channels=channels // 2,
            out_channels=channels,
            residual_channels=config.residual_channels,
            skip_channels=config.skip_channels,
            n_layers=config.n_layers,
            kernel_size=config.kernel_size,
            cond_channels=config.cond_channels,
            groups=groups,
        )

    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch, _, time = x.shape
        x = x.view(batch, self.groups, self.channels, time)  # (B, G, C, T)
        return x[:, :, : self.channels // 2], x[:, :, self.channels // 2 :]

    def _scale_shift(self, x_a: torch.Tensor, cond: torch.Tensor | None):
        batch, _, half, time = x_a.shape
        out = self.net(x_a.reshape(batch, self.groups * half, time), cond)
        out = out.view(batch, self.groups, self.channels, time)  # (B, G, C, T)
        raw_log_s, shift = out[:, :, :half], out[:, :, half:]
        log_s = self.max_log_scale * torch.tanh(raw_log_s / self.max_log_scale)
        return log_s, shift

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None):
        x_a, x_b = self._split(x)
        log_s, shift = self._scale_shift(x_a, cond)
        y_b = (x_b - shift) * torch.exp(-log_s)
        y = torch.cat([x_a, y_b], dim=2).reshape_as(x)
        return y, -log_s.sum(dim=(2, 3))

    def inverse(self, y: torch.Tensor, cond: torch.Tensor | None = None):
        y_a, y_b = self._split(y)
        log_s, shift = self._scale_shift(y_a, cond)
        x_b = y_b * torch.exp(log_s) + shift
        x = torch.cat([y_a, x_b], dim=2).reshape_as(y)
        return x, log_s.sum(dim=(2, 3))


class Flip(nn.Module):
    """Swap the two channel halves of every group (FloWaveNet's `change_order`)."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.channels = channels
        self.groups = groups

    def _swap(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, time = x.shape
        x = x.view(batch, self.groups, self.channels, time)  # (B, G, C, T)
        half = self.channels // 2
        return torch.cat([x[:, :, half:], x[:, :, :half]], dim=2).reshape(batch, -1, time)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None):
        return self._swap(x), _zeros_logdet(x, self.groups)

    def inverse(self, y: torch.Tensor, cond: torch.Tensor | None = None):
        return self._swap(y), _zeros_logdet(y, self.groups)


class InvertibleConv(nn.Module):
    """Learnt invertible 1x1 convolution per group, `y = W x` (Glow's alternative to a flip).

    W = P L (U + diag(sign * exp(log_scale))) with P a fixed permutation, L unit lower- and U
    strictly upper-triangular: logdet = time * sum(log_scale) costs nothing. Starts as a random
    rotation, so the couplings no longer always split the same samples apart.

    Reference: Kingma & Dhariwal 2018, "Glow", arXiv 1807.03039, section 3.2 (LU form).
    """

    def __init__(self, channels: int, groups: int, seed: int = 0) -> None:
        super().__init__()
        self.channels = channels
        self.groups = groups
        generator = torch.Generator().manual_seed(seed + channels)
        weights = [torch.linalg.qr(torch.randn(channels, channels, generator=generator))[0]
                   for _ in range(groups)]
        permutation, lower, upper = torch.linalg.lu(torch.stack(weights))  # (G, C, C) each
        diagonal = torch.diagonal(upper, dim1=-2, dim2=-1)
        self.register_buffer("permutation", permutation)
        self.register_buffer("sign", torch.sign(diagonal))
        self.register_buffer("lower_mask", torch.tril(torch.ones(channels, channels), -1))
        self.lower = nn.Parameter(lower)
        self.upper = nn.Parameter(torch.triu(upper, 1))
        self.log_scale = nn.Parameter(torch.log(diagonal.abs()))

    def weight(self) -> torch.Tensor:
        """(G, C, C)."""
        eye = torch.eye(self.channels, dtype=self.lower.dtype, device=self.lower.device)
        lower = self.lower * self.lower_mask + eye
        upper = self.upper * self.lower_mask.T + torch.diag_embed(
            self.sign * torch.exp(self.log_scale))
        return self.permutation @ lower @ upper

    def _logdet(self, x: torch.Tensor) -> torch.Tensor:
        per_group = self.log_scale.sum(dim=1) * x.shape[2]  # (G,)
        return per_group.expand(x.shape[0], self.groups)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None):
        return _mix_channels(self.weight(), x, self.groups), self._logdet(x)

    def inverse(self, y: torch.Tensor, cond: torch.Tensor | None = None):
        return _mix_channels(torch.linalg.inv(self.weight()), y, self.groups), -self._logdet(y)


def dct_matrix(size: int) -> torch.Tensor:
    """Orthonormal DCT-II matrix (size, size), float64: row k is basis function k."""
    n = torch.arange(size, dtype=torch.float64)
    basis = torch.cos(math.pi / size * (n[None, :] + 0.5) * n[:, None])
    basis[0] /= math.sqrt(2.0)
    return basis * math.sqrt(2.0 / size)


def bit_reversal(bits: int) -> torch.Tensor:
    """(2**bits,) index: the sample of a frame that channel c holds after `bits` squeezes."""
    index = torch.arange(2**bits)
    reversed_ = torch.zeros_like(index)
    for bit in range(bits):
        reversed_ |= ((index >> bit) & 1) << (bits - 1 - bit)
    return reversed_


class FrameDCT(nn.Module):
    """Fixed orthonormal DCT-II of each frame: (batch, G*C, T) -> (batch, G*C, T), C = 2**k.

    After k squeezes the C channels of a time step are the C samples of one frame in
    bit-reversed order (each squeeze appends one bit of the sample index); the matrix undoes
    that order, so channel j of the output is DCT bin j of the frame. Orthonormal: logdet 0,
    the inverse is the transpose.

    Reference: Ahmed, Natarajan & Rao 1974, "Discrete Cosine Transform".
    """

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        bits = channels.bit_length() - 1
        if channels != 2**bits:
            raise ValueError(f"FrameDCT needs a power of two channels, got {channels}")
        self.channels = channels
        self.groups = groups
        # (C, C) float64, rows are bins, columns are channels; fixed, so not in the state dict
        self.register_buffer("basis", dct_matrix(channels)[:, bit_reversal(bits)],
                             persistent=False)

    def _matrix(self, like: torch.Tensor) -> torch.Tensor:
        """The basis in the dtype and device of `like`."""
        return self.basis.to(like)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None):
        return _mix_channels(self._matrix(x), x, self.groups), _zeros_logdet(x, self.groups)

    def inverse(self, y: torch.Tensor, cond: torch.Tensor | None = None):
        return _mix_channels(self._matrix(y).T, y, self.groups), _zeros_logdet(y, self.groups)


class Squeeze(nn.Module):
    """(batch, G*C, T) -> (batch, G*2C, T/2): each pair of samples becomes two channels."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None):
        batch, channels, time = x.shape
        if time % 2:
            raise ValueError(f"squeeze needs an even length, got {time}")
        per_group = channels // self.groups
        y = x.view(batch, self.groups, per_group, time // 2, 2)  # (B, G, C, T/2, 2)
        y = y.permute(0, 1, 2, 4, 3).reshape(batch, channels * 2, time // 2)
        return y, _zeros_logdet(x, self.groups)

    def inverse(self, y: torch.Tensor, cond: torch.Tensor | None = None):
        batch, channels, time = y.shape
        per_group = channels // self.groups // 2
        x = y.view(batch, self.groups, per_group, 2, time)  # (B, G, C, 2, T)
        x = x.permute(0, 1, 2, 4, 3).reshape(batch, channels // 2, time * 2)
        return x, _zeros_logdet(y, self.groups)


class Composite(nn.Module):
    """Chain of invertible layers; logdets add up, inverse runs the chain backwards."""

    def __init__(self, layers: list[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None):
        total = None
        for layer in self.layers:
            x, logdet = layer(x, cond)
            total = logdet if total is None else total + logdet
        return x, total

    def inverse(self, y: torch.Tensor, cond: torch.Tensor | None = None):
        total = None
        for layer in reversed(self.layers):
            y, logdet = layer.inverse(y, cond)
            total = logdet if total is None else total + logdet
        return y, total


def flow_step(channels: int, groups: int, config: FlowConfig, index: int = 0) -> Composite:
    """One flow: ActNorm -> affine coupling -> flip (FloWaveNet) or 1x1 convolution (Glow)."""
    mixer = (Flip(channels, groups) if config.permutation == "flip"
             else InvertibleConv(channels, groups, seed=index))
    return Composite([ActNorm(groups * channels, groups), AffineCoupling(channels, groups, config),
                      mixer])


class SigmaEmbedding(nn.Module):
    """Embed the noise level sigma (>= 0) of each example and group as a global condition.

    Features are log10(max(sigma, 1e-4)) rescaled to about [-1, 1] and an indicator of sigma == 0,
    fed through two grouped 1x1 convolutions. Returns (batch, groups * cond_channels, 1).
    """

    def __init__(self, cond_channels: int, groups: int) -> None:
        super().__init__()
        self.groups = groups
        self.net = nn.Sequential(
            nn.Conv1d(groups * 2, groups * cond_channels, 1, groups=groups),
            nn.SiLU(),
            nn.Conv1d(groups * cond_channels, groups * cond_channels, 1, groups=groups),
        )

    def forward(self, sigma: torch.Tensor) -> torch.Tensor:
        level = (torch.log10(sigma.clamp_min(1e-4)) + 2.0) / 2.0
        features = torch.stack([level, (sigma <= 0).to(sigma.dtype)], dim=2)  # (B, G, 2)
        return self.net(features.reshape(sigma.shape[0], self.groups * 2, 1))


class FloWaveNet(nn.Module):
    """FloWaveNet density over `groups` independent mono signals, conditioned on sigma.

    Args:
        config: the architecture.
        groups: number of independent priors held in this module (grouped convolutions).

    Reference: Kim et al. 2019, arXiv 1811.02155.
    """

    def __init__(self, config: FlowConfig, groups: int = 1) -> None:
        super().__init__()
        self.config = config
        self.groups = groups
        layers: list[nn.Module] = [Squeeze(groups) for _ in range(config.early_squeezes)]
        channels = 2**config.early_squeezes
        if config.frame_transform == "dct":
            layers.append(FrameDCT(channels, groups))
        for block in range(config.n_blocks):
            layers.append(Squeeze(groups))
            channels *= 2
            layers.extend(flow_step(channels, groups, config, block * config.n_flows + index)
                          for index in range(config.n_flows))
        self.flow = Composite(layers)
        self.embed = SigmaEmbedding(config.cond_channels, groups) if config.cond_channels else None

    def _cond(self, x: torch.Tensor, sigma: torch.Tensor | float | None) -> torch.Tensor | None:
        if self.embed is None:
            return None
        return self.embed(expand_sigma(sigma, x))

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float | None = None):
        """Map signals to latents.

        Args:
            x: (batch, groups, time), time a multiple of `config.length_multiple`.
            sigma: noise level, a float or (batch, groups) tensor; None or 0 means clean.

        Returns:
            z: (batch, groups * F, time / F) with F = `config.length_multiple`;
            logdet: (batch, groups).
        """
        return self.flow(x, self._cond(x, sigma))

    def inverse(self, z: torch.Tensor, sigma: torch.Tensor | float | None = None):
        """Map latents back to signals: (x (batch, groups, time), logdet (batch, groups))."""
        return self.flow.inverse(z, self._cond(z, sigma))

    def log_prob(self, x: torch.Tensor, sigma: torch.Tensor | float | None = None) -> torch.Tensor:
        """Exact log-likelihood in nats, (batch, time) per group -> (batch, groups)."""
        z, logdet = self.forward(x, sigma)
        z = z.view(z.shape[0], self.groups, -1)  # (B, G, C*T')
        base = -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(dim=2)
        return base + logdet
