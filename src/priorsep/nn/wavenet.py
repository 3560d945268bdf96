"""Non-causal gated WaveNet used inside every affine coupling, with optional groups.

With `groups=G` every convolution is grouped, so G independent networks (one per source prior)
run in one pass: no operation mixes the groups or the batch.

Reference: van den Oord et al. 2016, "WaveNet", arXiv 1609.03499; the coupling network of
FloWaveNet, Kim et al. 2019, arXiv 1811.02155.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class WaveNet(nn.Module):
    """Gated residual stack: dilations 1..2**(n_layers-1), tanh*sigmoid gates, skip sum.

    Args:
        in_channels: input channels per group.
        out_channels: output channels per group; the last 1x1 conv is zero-initialised.
        residual_channels, skip_channels: widths per group.
        n_layers: dilated layers, dilation 2**i for layer i.
        kernel_size: odd kernel of the dilated convolutions (padding keeps the length).
        cond_channels: width per group of the global conditioning vector (0: none).
        groups: number of independent networks computed side by side.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        residual_channels: int,
        skip_channels: int,
        n_layers: int,
        kernel_size: int = 3,
        cond_channels: int = 0,
        groups: int = 1,
    ) -> None:
        super().__init__()
        self.groups = groups
        self.residual_channels = residual_channels
        g = groups
        self.front = nn.Conv1d(g * in_channels, g * residual_channels, 1, groups=g)
        self.dilated = nn.ModuleList()
        self.cond = nn.ModuleList()
        self.residual = nn.ModuleList()
        self.skip = nn.ModuleList()
        for i in range(n_layers):
            dilation = 2**i
            self.dilated.append(
                nn.Conv1d(
                    g * residual_channels,
                    g * 2 * residual_channels,
                    kernel_size,
                    dilation=dilation,
                    padding=dilation * (kernel_size - 1) // 2,
                    groups=g,
                )
            )
            if cond_channels:
                self.cond.append(
                    nn.Conv1d(g * cond_channels, g * 2 * residual_channels, 1, groups=g)
                )
            if i < n_layers - 1:  # the last layer's residual output would feed nothing
                self.residual.append(
                    nn.Conv1d(g * residual_channels, g * residual_channels, 1, groups=g)
                )
            self.skip.append(nn.Conv1d(g * residual_channels, g * skip_channels, 1, groups=g))
        self.head = nn.Conv1d(g * skip_channels, g * skip_channels, 1, groups=g)
        self.out = nn.Conv1d(g * skip_channels, g * out_channels, 1, groups=g)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Args:
            x: (batch, groups * in_channels, time).
            cond: (batch, groups * cond_channels, 1) global conditioning, or None.

        Returns:
            (batch, groups * out_channels, time).
        """
        batch, _, time = x.shape
        h = self.front(x)
        skip_sum = torch.zeros((), dtype=x.dtype, device=x.device)
        for i, dilated in enumerate(self.dilated):
            gates = dilated(h)
            if self.cond and cond is not None:
                gates = gates + self.cond[i](cond)
            # (B, G*2R, T) -> (B, G, 2R, T): each group's filter and gate halves
            gates = gates.view(batch, self.groups, 2 * self.residual_channels, time)
            filt, gate = gates.chunk(2, dim=2)
            act = (torch.tanh(filt) * torch.sigmoid(gate)).reshape(batch, -1, time)
            if i < len(self.residual):
                h = (h + self.residual[i](act)) * math.sqrt(0.5)
            skip_sum = skip_sum + self.skip[i](act)
        return self.out(torch.relu(self.head(torch.relu(skip_sum))))
