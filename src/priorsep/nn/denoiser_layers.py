"""The layers of the score family's denoisers: a noise-level embedding, grouped self-attention
and a noise-conditioned dilated stack, each `groups` independent networks side by side.

`priorsep.nn.score` composes them into its time, spectral and short-time views; the
autoregressive WaveNet uses the noise embedding too.

Reference: Karras et al. 2022 (EDM), arXiv 2206.00364, for the Fourier-feature noise
embedding; van den Oord et al. 2016 (WaveNet), arXiv 1609.03499, for the gated dilated stack.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class NoiseEmbedding(nn.Module):
    """Fourier features of c_noise = log(sigma) / 4, then a two-layer grouped MLP.

    Args:
        channels: output width per group.
        groups: independent embeddings side by side.
        n_sources: with `source_embedding`, a learnt vector per source is added (shared mode).
    """

    def __init__(self, channels: int, groups: int, n_sources: int = 0) -> None:
        super().__init__()
        self.groups = groups
        self.register_buffer("frequencies", torch.exp(torch.linspace(0.0, math.log(64.0), 16)),
                             persistent=False)
        self.first = nn.Conv1d(groups * 32, groups * channels, 1, groups=groups)
        self.second = nn.Conv1d(groups * channels, groups * channels, 1, groups=groups)
        self.source = nn.Embedding(n_sources, channels) if n_sources else None

    def forward(self, sigma: torch.Tensor) -> torch.Tensor:
        """Args:
            sigma: (batch, groups) noise levels, positive; or (batch * n_sources,) in shared
                mode, with the source of row r being r % n_sources.

        Returns:
            (batch, groups * channels, 1).
        """
        c_noise = sigma.log() / 4
        angles = c_noise[..., None] * self.frequencies  # (B, G, 16)
        features = torch.cat([angles.sin(), angles.cos()], dim=-1)
        features = features.reshape(features.shape[0], -1, 1)  # (B, G*32, 1)
        hidden = self.first(features)
        if self.source is not None:
            n_sources = self.source.num_embeddings
            rows = torch.arange(hidden.shape[0], device=hidden.device) % n_sources
            hidden = hidden + self.source(rows)[..., None]
        return self.second(nn.functional.silu(hidden))


class GroupedAttention(nn.Module):
    """Self-attention along the length axis, one independent attention per group, as a residual
    branch whose output projection is zero-initialised (it starts as the identity).

    It gives a stack global competition: a denoiser that can compare every bin with the
    strongest one can keep one tone (or one harmonic series) and drop the rest, which local
    convolutions cannot.

    Args:
        channels: residual width per group; width: query/key/value width per group.
    """

    def __init__(self, channels: int, width: int, groups: int) -> None:
        super().__init__()
        self.groups, self.width = groups, width
        self.qkv = nn.Conv1d(groups * channels, groups * 3 * width, 1, groups=groups)
        self.out = nn.Conv1d(groups * width, groups * channels, 1, groups=groups)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """(batch, groups * channels, length) -> the same."""
        batch, _, length = h.shape
        # (B, G*3*W, L) -> (B*G, 3, L, W): queries, keys and values of every group
        qkv = self.qkv(h).view(batch * self.groups, 3, self.width, length).transpose(2, 3)
        attended = nn.functional.scaled_dot_product_attention(
            qkv[:, 0:1], qkv[:, 1:2], qkv[:, 2:3])  # (B*G, 1, L, W)
        attended = attended.view(batch, self.groups, length, self.width).transpose(2, 3)
        return h + self.out(attended.reshape(batch, self.groups * self.width, length))


class DilatedStack(nn.Module):
    """Non-causal gated residual stack with noise conditioning (FiLM of every gate).

    Layer i has dilation 2**(i % cycle); every layer adds a projection of the noise embedding
    into its gates (WaveNet's global conditioning). The output 1x1 convolution is zero-initialised,
    so the stack starts as the zero function.

    Args:
        in_channels, out_channels: per group.
        channels: residual width per group.
        n_layers: dilated layers.
        cycle: the dilation pattern repeats after this many layers.
        embedding_channels: width per group of the noise embedding.
        groups: independent stacks side by side.
        attention: self-attention layers, spread evenly between the dilated layers.
        attention_width: their query/key/value width per group.
    """

    def __init__(self, in_channels: int, out_channels: int, channels: int, n_layers: int,
                 cycle: int, kernel_size: int, embedding_channels: int, groups: int,
                 attention: int = 0, attention_width: int = 32) -> None:
        super().__init__()
        g = groups
        self.groups = groups
        self.channels = channels
        self.front = nn.Conv1d(g * in_channels, g * channels, 1, groups=g)
        self.dilated = nn.ModuleList()
        self.film = nn.ModuleList()
        self.residual = nn.ModuleList()
        self.skip = nn.ModuleList()
        for i in range(n_layers):
            dilation = 2 ** (i % cycle)
            self.dilated.append(nn.Conv1d(g * channels, g * 2 * channels, kernel_size,
                                          dilation=dilation,
                                          padding=dilation * (kernel_size - 1) // 2, groups=g))
            self.film.append(nn.Conv1d(g * embedding_channels, g * 2 * channels, 1, groups=g))
            self.residual.append(nn.Conv1d(g * channels, g * channels, 1, groups=g))
            self.skip.append(nn.Conv1d(g * channels, g * channels, 1, groups=g))
        self.out = nn.Conv1d(g * channels, g * out_channels, 1, groups=g)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        # after which dilated layer each attention layer comes
        self.attention_after = [(k + 1) * n_layers // (attention + 1) - 1
                                for k in range(attention)]
        self.attention = nn.ModuleList(GroupedAttention(channels, attention_width, g)
                                       for _ in range(attention))

    def forward(self, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        """Args:
            x: (batch, groups * in_channels, length).
            embedding: (batch, groups * embedding_channels, 1).

        Returns:
            (batch, groups * out_channels, length).
        """
        batch, _, length = x.shape
        h = self.front(x)
        skip_sum = torch.zeros((), dtype=x.dtype, device=x.device)
        attention = dict(zip(self.attention_after, self.attention))
        for index, (dilated, film, residual, skip) in enumerate(zip(
                self.dilated, self.film, self.residual, self.skip)):
            gates = dilated(h) + film(embedding)
            # (B, G*2C, L) -> (B, G, 2C, L): each group's filter and gate halves
            gates = gates.view(batch, self.groups, 2 * self.channels, length)
            filt, gate = gates.chunk(2, dim=2)
            act = (torch.tanh(filt) * torch.sigmoid(gate)).reshape(batch, -1, length)
            h = (h + residual(act)) * math.sqrt(0.5)
            skip_sum = skip_sum + skip(act)
            if index in attention:
                h = attention[index](h)
        return self.out(torch.relu(skip_sum))
