"""Autoregressive WaveNet priors: a categorical over quantisation levels for every next sample.

Each source k has a causal WaveNet p_k(x_t | x_<t, sigma): a dilated stack of gated layers
(van den Oord et al. 2016) whose output at time t is a softmax over `classes` levels of the
sample x_t, computed from the samples before t only. With `grouped` models every convolution
is grouped (one independent network per source in one pass), as the flows.

Noise conditioning follows PnF (Jayaram & Thickstun 2021): the history is noised,
x~ = x + sigma * eps, the target x_t stays clean, and sigma enters every gate. The density of a
continuous, noised signal is the categorical smoothed by Gaussians, in closed form:

    log p_sigma(x~) = sum_t logsumexp_k [log pi_k(x~_<t, sigma)
                                         + log N(x~_t; v_k, w_k**2 + sigma**2)]

where v_k is level k and w_k**2 = (bin width)**2 / 12 the variance of a sample spread evenly
over its bin (so that sigma = 0 gives a density, not a probability mass). The score that the
Langevin samplers follow is its gradient (autograd, through both the Gaussians and the
history), so every sampler and diagnostic works through the `SourcePrior` interface.

Sampling generates one sample at a time with cached activations (the "fast WaveNet" queues of
Paine et al. 2016, arXiv 1611.09482): every layer keeps the last (kernel - 1) * dilation + 1
inputs it saw, so a new sample costs one column per layer instead of a pass over the history.

Reference: van den Oord et al. 2016, "WaveNet", arXiv 1609.03499; Jayaram & Thickstun 2021,
"Parallel and Flexible Sampling from Autoregressive Models via Langevin Dynamics" (PnF),
arXiv 2105.08164.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional

from priorsep.config import ModelConfig, TrainConfig, WaveNetConfig
from priorsep.nn.denoiser_layers import NoiseEmbedding
from priorsep.nn.interface import SourcePrior, draw_sigma, expand_sigma

CLEAN_SIGMA = 1e-3
"""The noise level the embedding is given for clean (sigma = 0) inputs (log 0 has no
embedding); it is far below a quantisation step."""
INPUT_SCALE = 0.5
"""The history enters the network as x~ / sqrt(INPUT_SCALE**2 + sigma**2): about unit
variance at every noise level."""


def compand(x: torch.Tensor, mu: float) -> torch.Tensor:
    """mu-law companding of [-1, 1] onto [-1, 1]."""
    return torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)


def expand(y: torch.Tensor, mu: float) -> torch.Tensor:
    """The inverse of `compand`."""
    return torch.sign(y) * torch.expm1(y.abs() * math.log1p(mu)) / mu


class Quantiser(nn.Module):
    """`classes` levels over [-1, 1], spaced evenly ("linear") or evenly after mu-law
    companding ("mulaw"); each level is the centre of its bin (in the companded domain for
    mu-law).

    Buffers: `levels` (classes,) the values v_k; `variances` (classes,) w_k**2, the variance of
    a uniform spread over bin k.
    """

    def __init__(self, classes: int, kind: str = "linear", mu: float = 255.0) -> None:
        super().__init__()
        self.classes, self.kind, self.mu = classes, kind, mu
        edges = torch.linspace(-1.0, 1.0, classes + 1, dtype=torch.float64)
        centres = (edges[:-1] + edges[1:]) / 2
        if kind == "mulaw":
            edges, centres = expand(edges, mu), expand(centres, mu)
        self.register_buffer("levels", centres.float(), persistent=False)
        self.register_buffer("variances", ((edges[1:] - edges[:-1]) ** 2 / 12).float(),
                             persistent=False)

    def index(self, x: torch.Tensor) -> torch.Tensor:
        """The level (long) of every sample; values outside [-1, 1] take the outer levels."""
        y = x.clamp(-1.0, 1.0)
        if self.kind == "mulaw":
            y = compand(y, self.mu)
        return ((y + 1) / 2 * self.classes).floor().long().clamp(0, self.classes - 1)

    def value(self, index: torch.Tensor) -> torch.Tensor:
        """The level values v_k of indices."""
        return self.levels[index]


class CausalWaveNet(nn.Module):
    """Causal gated dilated stack with noise conditioning; `groups` independent networks.

    Output t depends on input columns 0..t only; the caller shifts the signal so that column t
    holds sample t - 1.

    Args:
        arch: the architecture (blocks, layers, widths, classes).
        groups: independent networks side by side (grouped convolutions).
    """

    def __init__(self, arch: WaveNetConfig, groups: int) -> None:
        super().__init__()
        g = self.groups = groups
        channels, skip = arch.residual_channels, arch.skip_channels
        self.channels, self.classes, self.kernel_size = channels, arch.classes, arch.kernel_size
        self.dilations = [2**i for _ in range(arch.n_blocks) for i in range(arch.n_layers)]
        self.embedding = NoiseEmbedding(arch.embedding_channels, g)
        self.front = nn.Conv1d(g, g * channels, 1, groups=g)
        self.dilated = nn.ModuleList(
            nn.Conv1d(g * channels, g * 2 * channels, arch.kernel_size, dilation=d, groups=g)
            for d in self.dilations)
        self.film = nn.ModuleList(nn.Conv1d(g * arch.embedding_channels, g * 2 * channels, 1,
                                            groups=g) for _ in self.dilations)
        self.residual = nn.ModuleList(nn.Conv1d(g * channels, g * channels, 1, groups=g)
                                      for _ in self.dilations)
        self.skip = nn.ModuleList(nn.Conv1d(g * channels, g * skip, 1, groups=g)
                                  for _ in self.dilations)
        self.hidden = nn.Conv1d(g * skip, g * skip, 1, groups=g)
        self.out = nn.Conv1d(g * skip, g * arch.classes, 1, groups=g)

    def history_span(self) -> int:
        """Input columns one output depends on (itself and those before it)."""
        return 1 + sum((self.kernel_size - 1) * d for d in self.dilations)

    def _gate(self, z: torch.Tensor) -> torch.Tensor:
        batch, _, length = z.shape
        # (B, G*2C, L) -> (B, G, 2C, L): each group's filter and gate halves
        filt, gate = z.view(batch, self.groups, 2 * self.channels, length).chunk(2, dim=2)
        return (torch.tanh(filt) * torch.sigmoid(gate)).reshape(batch, -1, length)

    def _head(self, skip_sum: torch.Tensor) -> torch.Tensor:
        logits = self.out(torch.relu(self.hidden(torch.relu(skip_sum))))
        return logits.view(logits.shape[0], self.groups, self.classes, -1)

    def forward(self, inputs: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """Args:
            inputs: (batch, groups, length), column t = the (scaled) sample t - 1.
            sigma: (batch, groups) positive noise levels.

        Returns:
            (batch, groups, classes, length) logits.
        """
        embedding = self.embedding(sigma)
        h = self.front(inputs)
        skip_sum = torch.zeros((), dtype=inputs.dtype, device=inputs.device)
        for d, dilated, film, residual, skip in zip(self.dilations, self.dilated, self.film,
                                                    self.residual, self.skip):
            act = self._gate(dilated(functional.pad(h, ((self.kernel_size - 1) * d, 0)))
                             + film(embedding))
            skip_sum = skip_sum + skip(act)
            h = (h + residual(act)) * math.sqrt(0.5)
        return self._head(skip_sum)

    def start(self, sigma: torch.Tensor) -> _Generation:
        """The state of incremental generation for noise levels `sigma` (batch, groups)."""
        return _Generation(self, sigma)


def _matrices(conv: nn.Conv1d, groups: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A grouped convolution as per-group matrices: (groups, kernel * in, out) and bias
    (groups, 1, out), for inputs laid out (groups, batch, kernel * in) with index
    tap * in + channel (tap 0 the oldest)."""
    out_channels, in_channels, kernel = conv.weight.shape
    weight = conv.weight.view(groups, out_channels // groups, in_channels, kernel)
    weight = weight.permute(0, 3, 2, 1).reshape(groups, kernel * in_channels, -1)
    return weight, conv.bias.view(groups, 1, -1)


class _Generation:
    """Cached incremental evaluation of a `CausalWaveNet` (fast WaveNet queues).

    Every layer keeps the inputs it needs from the past, (kernel - 1) * dilation + 1 columns,
    as a queue; a step multiplies each layer's taps by its weights as per-group matrices
    (batched matrix products instead of convolutions over one column). What is constant is
    folded into the matrices once: the noise term of every gate into its bias, the residual
    path's sqrt(1/2) into the residual weights. The filter, gate, residual and skip halves have
    matrices of their own, so a step slices nothing: about ten small operations per layer.
    """

    def __init__(self, net: CausalWaveNet, sigma: torch.Tensor) -> None:
        g, batch, channels = net.groups, sigma.shape[0], net.channels
        embedding = net.embedding(sigma)  # (B, G*E, 1)
        self.front = _matrices(net.front, g)
        self.layers = []
        half = math.sqrt(0.5)
        for d, dilated, film, residual, skip in zip(net.dilations, net.dilated, net.film,
                                                    net.residual, net.skip):
            weight, bias = _matrices(dilated, g)
            bias = bias + film(embedding)[..., 0].view(batch, g, -1).transpose(0, 1)  # (G,B,2C)
            residual_weight, residual_bias = _matrices(residual, g)
            taps = list(range(0, (net.kernel_size - 1) * d + 1, d))
            queue = deque([sigma.new_zeros(g, batch, channels)] * taps[-1], maxlen=taps[-1] + 1)
            self.layers.append((
                weight[..., :channels], bias[..., :channels],  # filter
                weight[..., channels:], bias[..., channels:],  # gate
                residual_weight * half, residual_bias * half, *_matrices(skip, g), taps, queue))
        self.hidden = _matrices(net.hidden, g)
        self.out = _matrices(net.out, g)

    def step(self, column: torch.Tensor) -> torch.Tensor:
        """Logits of the next position from the latest input column (batch, groups, 1):
        (batch, groups, classes)."""
        h = torch.baddbmm(self.front[1], column.permute(1, 0, 2), self.front[0])  # (G, B, C)
        skip_sum = None
        half = math.sqrt(0.5)
        for (filter_weight, filter_bias, gate_weight, gate_bias, residual_weight,
             residual_bias, skip_weight, skip_bias, taps, queue) in self.layers:
            queue.append(h)
            inputs = torch.cat([queue[tap] for tap in taps], dim=-1)  # (G, B, kernel * C)
            act = (torch.tanh(torch.baddbmm(filter_bias, inputs, filter_weight))
                   * torch.sigmoid(torch.baddbmm(gate_bias, inputs, gate_weight)))
            h = torch.baddbmm(residual_bias, act, residual_weight).add_(h, alpha=half)
            skip = torch.baddbmm(skip_bias, act, skip_weight)
            skip_sum = skip if skip_sum is None else skip_sum.add_(skip)
        hidden = torch.baddbmm(self.hidden[1], skip_sum.relu_(), self.hidden[0]).relu_()
        return torch.baddbmm(self.out[1], hidden, self.out[0]).transpose(0, 1)


def input_scale(sigma: torch.Tensor) -> torch.Tensor:
    """The factor the history is multiplied by, (batch, n) -> (batch, n, 1)."""
    return (INPUT_SCALE**2 + sigma**2).rsqrt()[..., None]


class WaveNetPriors(SourcePrior):
    """Autoregressive WaveNet densities p_k(s_k), one per source (see the module docstring).

    Args:
        config: the model configuration (sources, a `WaveNetConfig`, grouped or not).
    """

    has_log_prob = True

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        arch: WaveNetConfig = config.architecture
        n_sources = len(config.sources)
        if config.grouped:
            self.nets = nn.ModuleList([CausalWaveNet(arch, n_sources)])
        else:
            self.nets = nn.ModuleList(CausalWaveNet(arch, 1) for _ in range(n_sources))
        self.quantiser = Quantiser(arch.classes, arch.quantisation, arch.mu)

    def forward(self, sources: torch.Tensor, sigma) -> torch.Tensor:
        """Logits of every sample given the samples before it.

        Args:
            sources: (batch, n_sources, time), noised at `sigma`.
            sigma: float or (batch, n_sources).

        Returns:
            (batch, n_sources, classes, time).
        """
        sigma = expand_sigma(sigma, sources)
        conditioning = sigma.clamp_min(CLEAN_SIGMA)
        shifted = functional.pad(sources, (1, -1)) * input_scale(sigma)
        return torch.cat([net(x, s) for net, x, s in zip(
            self.nets, self.per_module(shifted), self.per_module(conditioning))], dim=1)

    def smoothed_log_density(self, logits: torch.Tensor, sources: torch.Tensor,
                             sigma: torch.Tensor) -> torch.Tensor:
        """log sum_k pi_k N(x_t; v_k, w_k**2 + sigma**2) per sample: (batch, n_sources, time).

        Args:
            logits: (batch, n_sources, classes, time); sources: (batch, n_sources, time);
            sigma: (batch, n_sources).
        """
        variance = self.quantiser.variances[:, None] + sigma[..., None, None] ** 2  # (B,N,K,1)
        deviation = sources[:, :, None, :] - self.quantiser.levels[:, None]  # (B, N, K, T)
        log_gauss = -0.5 * (deviation**2 / variance + torch.log(2 * math.pi * variance))
        return torch.logsumexp(torch.log_softmax(logits, dim=2) + log_gauss, dim=2)

    def log_prob(self, sources: torch.Tensor, sigma=None) -> torch.Tensor:
        """Log-density of each source's noised signal under its own prior (see the module
        docstring).

        Args:
            sources: (batch, n_sources, time).
            sigma: float or (batch, n_sources); 0 or None for clean signals.

        Returns:
            (batch, n_sources) in nats.
        """
        sigma = expand_sigma(sigma, sources)
        logits = self(sources, sigma)
        return self.smoothed_log_density(logits, sources, sigma).sum(dim=-1)

    @torch.inference_mode()
    def sample(self, n: int, length: int, sigma=None, temperature: float = 1.0,
               generator: torch.Generator | None = None,
               progress: Callable[[int, int], None] | None = None,
               cached: bool = True) -> torch.Tensor:
        """Generate `n` signals per source, one sample at a time.

        Sample t draws level k from the categorical (logits / temperature) and is
        v_k + sigma * eps (v_k when clean). All random numbers are drawn before generating, so
        `cached=False` (every step recomputes the whole history: slow, for checking the queues)
        gives the same signals.

        Args:
            progress: called with (samples done, length) about a hundred times.

        Returns:
            (n, n_sources, length).
        """
        device, n_sources = self.device, len(self.sources)
        sigma = expand_sigma(sigma, torch.zeros(n, n_sources, 1)).to(device)
        uniforms = torch.rand(n, n_sources, length, generator=generator).to(device)
        noise = torch.randn(n, n_sources, length, generator=generator).to(device)
        out = torch.zeros(n, n_sources, length, device=device)
        report_every = max(1, length // 100)

        def draw(logits: torch.Tensor, t: int) -> None:  # logits (n, N, K)
            cdf = torch.softmax(logits / temperature, dim=-1).cumsum(dim=-1)
            index = torch.searchsorted(cdf, uniforms[:, :, t:t + 1].contiguous())
            index = index.clamp_max(cdf.shape[-1] - 1)
            out[:, :, t] = self.quantiser.value(index[..., 0]) + sigma * noise[:, :, t]
            if progress is not None and ((t + 1) % report_every == 0 or t + 1 == length):
                progress(t + 1, length)

        if not cached:
            for t in range(length):
                draw(self(out[:, :, :t + 1], sigma)[..., t], t)
            return out
        scale = input_scale(sigma)
        conditioning = sigma.clamp_min(CLEAN_SIGMA)
        states = [net.start(s) for net, s in zip(self.nets, self.per_module(conditioning))]
        column = torch.zeros(n, n_sources, 1, device=device)
        for t in range(length):
            draw(torch.cat([state.step(x) for state, x in zip(states, self.per_module(column))],
                           dim=1), t)
            column = out[:, :, t:t + 1] * scale
        return out

    def receptive_field(self) -> int:
        """The samples one term of the density depends on: the history the network sees and
        the sample itself."""
        return self.nets[0].history_span() + 1

    def training_loss(self, model: nn.Module, clean: torch.Tensor, generator: torch.Generator,
                      config: TrainConfig) -> torch.Tensor:
        """Cross-entropy (nats/sample) of every clean sample's level given the history noised
        at levels drawn by `draw_sigma` (PnF's objective)."""
        batch, n_sources, _ = clean.shape
        sigma = draw_sigma(config, generator, batch, n_sources)
        noisy = clean + sigma[..., None] * torch.randn(clean.shape, generator=generator)
        device = self.device
        logits = model(noisy.to(device), sigma.to(device))  # (B, N, K, T)
        target = self.quantiser.index(clean.to(device))
        return functional.cross_entropy(logits.transpose(1, 2), target)

    def summary(self) -> str:
        arch: WaveNetConfig = self.config.architecture
        return (f"autoregressive WaveNet: {arch.n_blocks} blocks x {arch.n_layers} causal "
                f"layers (kernel {arch.kernel_size}), width {arch.residual_channels}, skip "
                f"{arch.skip_channels}, {arch.classes} {arch.quantisation} levels, "
                f"noise-level embedding {arch.embedding_channels}")
