"""Score-based source priors: sigma-conditioned denoisers, one per source, in one grouped module.

Each source k has a denoiser D_k(x, sigma) ~ E[s_k | s_k + sigma * eps = x], trained by denoising
score matching; the score follows from Tweedie's formula, grad log p_sigma(x) = (D(x) - x) /
sigma**2. The raw network F is wrapped in the EDM preconditioning

    D(x, sigma) = c_skip x + c_out F(c_in x, log(sigma) / 4)  (or sigma_data F without the skip
    path, `ScoreConfig.skip`),
    c_skip = sd**2 / (sigma**2 + sd**2), c_out = sigma sd / sqrt(sigma**2 + sd**2),
    c_in = 1 / sqrt(sigma**2 + sd**2),  sd = sigma_data,

so F sees and emits unit-variance signals at every noise level.

F has up to two views of the segment, their outputs summed (as hybrid Demucs sums its time and
spectral branches):
- "time": the waveform in frames of `frame` samples (a squeeze), a non-causal dilated WaveNet
  over frames; it sees the shape of a period, which tells the classes apart.
- "spectral": the orthonormal real FFT of the whole segment (real, imaginary and the bin's
  position as channels), a dilated WaveNet over frequency; a periodic source occupies a few
  bins, which makes denoising strong.
With `shared=False` every convolution is grouped (groups = number of sources): N independent
networks in one pass, no operation mixing sources or examples. With `shared=True` one network
serves all sources and is told the source by a learnt embedding added to the noise embedding.

Reference: Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based Generative
Models" (EDM), arXiv 2206.00364; Vincent 2011 (denoising score matching); Mariani et al. 2024,
"Multi-Source Diffusion Models for Simultaneous Music Generation and Separation", arXiv
2302.02257; Rouard et al. 2023, "Hybrid Transformers for Music Source Separation" (the hybrid
time/spectral design).
"""

from __future__ import annotations

import torch
from torch import nn

from priorsep.config import ModelConfig, ScoreConfig, TrainConfig
from priorsep.nn.denoiser_layers import DilatedStack, NoiseEmbedding
from priorsep.nn.interface import SourcePrior, draw_sigma, expand_sigma, tweedie_gain

VALIDATION_SIGMA = 0.3
"""The noise level of the validation figure (Tweedie gain, dB)."""


class ScorePriors(SourcePrior):
    """Per-source denoisers D_k(x, sigma) with EDM preconditioning (see the module docstring).

    Args:
        config: the model configuration; `config.architecture` is a `ScoreConfig`.
    """

    validation_name = f"Tweedie gain at sigma = {VALIDATION_SIGMA} (dB)"

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        arch: ScoreConfig = config.architecture
        n_sources = len(config.sources)
        groups = 1 if arch.shared else n_sources
        self.arch = arch
        emb = arch.embedding_channels
        self.embedding = NoiseEmbedding(emb, groups, n_sources if arch.shared else 0)
        kernel = arch.kernel_size
        self.time = None
        self.spectral = None
        self.stft = None
        if arch.front_end in ("stft", "time+stft"):
            step = arch.spectral_frame
            # per step: `step` bins of (real, imaginary, mean magnitude) and the position
            self.stft = DilatedStack(3 * step + 1, 2 * step, arch.stft_channels,
                                     arch.stft_layers, arch.stft_cycle, kernel, emb, groups,
                                     arch.spectral_attention, arch.attention_width)
            window = torch.hann_window(arch.stft_size, periodic=True, dtype=torch.float64)
            self.register_buffer("window", window.sqrt().float(), persistent=False)
        if arch.front_end in ("time", "hybrid", "time+stft"):
            self.time = DilatedStack(arch.frame, arch.frame, arch.time_channels,
                                     arch.time_layers, arch.time_cycle, kernel, emb, groups,
                                     arch.time_attention, arch.attention_width)
        if arch.front_end in ("spectral", "hybrid"):
            step = arch.spectral_frame
            self.spectral = DilatedStack(2 * step + 1, 2 * step, arch.spectral_channels,
                                         arch.spectral_layers, arch.spectral_cycle, kernel, emb,
                                         groups, arch.spectral_attention, arch.attention_width)

    @property
    def segment_length(self) -> int:
        return self.arch.segment_length

    def network(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """The raw network F(c_in x, c_noise).

        Args:
            x: (batch, n_sources, time), already scaled by c_in; time a multiple of `frame`.
            sigma: (batch, n_sources), positive.

        Returns:
            (batch, n_sources, time).
        """
        batch, n_sources, time = x.shape
        if self.arch.shared:  # every source is an example of the one network
            x = x.reshape(batch * n_sources, 1, time)
            sigma = sigma.reshape(batch * n_sources, 1)
        rows, groups = x.shape[0], x.shape[1]
        embedding = self.embedding(sigma)
        out = torch.zeros_like(x)
        if self.time is not None:
            frame = self.arch.frame
            # (R, G, T) -> (R, G, T/F, F) -> (R, G*F, T/F): each group's frames as channels
            frames = x.view(rows, groups, time // frame, frame).transpose(2, 3)
            frames = frames.reshape(rows, groups * frame, time // frame)
            y = self.time(frames, embedding)
            out = out + y.view(rows, groups, frame, time // frame).transpose(2, 3).reshape(
                rows, groups, time)
        if self.spectral is not None:
            out = out + self._spectral_branch(x, embedding)
        if self.stft is not None:
            out = out + self._stft_branch(x, embedding)
        return out.reshape(batch, n_sources, time)

    def _spectral_branch(self, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        """The spectral view: (rows, groups, time) -> (rows, groups, time)."""
        rows, groups, time = x.shape
        step = self.arch.spectral_frame
        spectrum = torch.fft.rfft(x, norm="ortho")  # (R, G, K) complex, K = T/2 + 1
        bins = spectrum.shape[-1]
        steps = -(-bins // step)
        padded = steps * step
        position = torch.linspace(0.0, 1.0, padded, dtype=x.dtype, device=x.device)
        position = position.view(steps, step).mean(dim=1).expand(rows, groups, 1, steps)
        parts = torch.stack([spectrum.real, spectrum.imag], dim=2)  # (R, G, 2, K)
        parts = nn.functional.pad(parts, (0, padded - bins))
        # (R, G, 2, S*step) -> (R, G, 2*step, S): `step` neighbouring bins per frequency step
        parts = parts.view(rows, groups, 2, steps, step).permute(0, 1, 2, 4, 3)
        parts = parts.reshape(rows, groups, 2 * step, steps)
        features = torch.cat([parts, position], dim=2).reshape(rows, -1, steps)
        y = self.spectral(features, embedding)
        # (R, G*2*step, S) -> (R, G, 2, K)
        y = y.view(rows, groups, 2, step, steps).permute(0, 1, 2, 4, 3)
        y = y.reshape(rows, groups, 2, padded)[..., :bins]
        return torch.fft.irfft(torch.complex(y[:, :, 0], y[:, :, 1]), n=time, norm="ortho")

    def _stft_branch(self, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        """The short-time view: (rows, groups, time) -> (rows, groups, time).

        Square-root Hann windows at half overlap make the STFT a tight frame, inverted exactly by
        overlap-add. Every frame's spectrum is processed along frequency (frames as examples),
        each step also given the segment's mean magnitude over frames, which shows the
        partials of a steady tone far above the noise.
        """
        rows, groups, time = x.shape
        size, step = self.arch.stft_size, self.arch.spectral_frame
        spectrum = torch.stft(x.reshape(rows * groups, time), size, size // 2,
                              window=self.window, center=True, normalized=True,
                              return_complex=True)  # (R*G, K, F)
        _, bins, frames = spectrum.shape
        steps = -(-bins // step)
        padded = steps * step
        spectrum = spectrum.view(rows, groups, bins, frames).permute(0, 3, 1, 2)  # (R, F, G, K)
        magnitude = spectrum.abs().mean(dim=1, keepdim=True).expand_as(spectrum.real)
        parts = torch.stack([spectrum.real, spectrum.imag, magnitude], dim=3)  # (R, F, G, 3, K)
        parts = nn.functional.pad(parts, (0, padded - bins))
        # (R, F, G, 3, S*step) -> (R*F, G, 3*step, S): `step` neighbouring bins per step
        parts = parts.view(rows, frames, groups, 3, steps, step).permute(0, 1, 2, 3, 5, 4)
        parts = parts.reshape(rows * frames, groups, 3 * step, steps)
        position = torch.linspace(0.0, 1.0, steps, dtype=x.dtype, device=x.device)
        position = position.expand(rows * frames, groups, 1, steps)
        features = torch.cat([parts, position], dim=2).reshape(rows * frames, -1, steps)
        y = self.stft(features, embedding.repeat_interleave(frames, dim=0))
        # (R*F, G*2*step, S) -> (R*G, K, F) complex
        y = y.view(rows, frames, groups, 2, step, steps).permute(0, 2, 3, 5, 4, 1)
        y = y.reshape(rows * groups, 2, padded, frames)[:, :, :bins]
        out = torch.istft(torch.complex(y[:, 0], y[:, 1]), size, size // 2, window=self.window,
                          center=True, normalized=True, length=time)
        return out.view(rows, groups, time)

    def denoise(self, noisy: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """D(x, sigma): the estimate of the clean sources.

        Args:
            noisy: (batch, n_sources, time).
            sigma: float or (batch, n_sources), positive.

        Returns:
            (batch, n_sources, time).
        """
        sigma = expand_sigma(sigma, noisy)
        sigma_data = self.arch.sigma_data
        variance = sigma.pow(2) + sigma_data**2
        if not self.arch.skip:
            return sigma_data * self.network(variance.rsqrt()[..., None] * noisy, sigma)
        c_skip = (sigma_data**2 / variance)[..., None]
        c_out = (sigma * sigma_data / variance.sqrt())[..., None]
        c_in = variance.rsqrt()[..., None]
        return c_skip * noisy + c_out * self.network(c_in * noisy, sigma)

    def loss_weight(self, sigma: torch.Tensor) -> torch.Tensor:
        """EDM's lambda(sigma) = (sigma**2 + sd**2) / (sigma sd)**2: with it every noise level
        weighs alike (the squared error of F against its unit-variance target)."""
        sigma_data = self.arch.sigma_data
        if not self.arch.skip:  # the target of F is x / sigma_data at every level
            return torch.full_like(sigma, sigma_data**-2)
        return (sigma.pow(2) + sigma_data**2) / (sigma * sigma_data).pow(2)

    def forward(self, noisy: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """Same as `denoise` (so that DistributedDataParallel wraps the right call)."""
        return self.denoise(noisy, sigma)

    def score(self, sources: torch.Tensor, sigma) -> torch.Tensor:
        """grad log p_sigma(x) = (D(x, sigma) - x) / sigma**2 (Tweedie), sigma > 0.

        Args:
            sources: (batch, n_sources, time); sigma: float or (batch, n_sources).

        Returns:
            (batch, n_sources, time), detached.
        """
        sigma = expand_sigma(sigma, sources)
        with torch.no_grad():
            return (self.denoise(sources, sigma) - sources) / sigma[..., None].pow(2)

    def sample(self, n: int, length: int, sigma=None, temperature: float = 1.0,
               generator: torch.Generator | None = None, progress=None,
               steps: int = 64) -> torch.Tensor:
        """Unconditional samples by EDM's Heun sampler from the top of the trained noise range.

        Args:
            sigma: stop at this noise level (None: the bottom of the trained range, then one
                final denoising step).
            temperature: scales the initial noise.
            steps: sampler steps.

        Returns:
            (n, n_sources, length rounded down to `length_multiple`).
        """
        from priorsep.separation.diffusion import DiffusionConfig, sample_priors

        length = length // self.length_multiple * self.length_multiple
        config = DiffusionConfig(steps=steps, sigma_max=self.config.trained_sigma_max or 1.0,
                                 sigma_min=float(sigma) if sigma else
                                 max(self.config.trained_sigma_min, 1e-3))
        return sample_priors(self, n, length, config, temperature=temperature,
                             generator=generator)

    def receptive_field(self) -> int:
        """The whole segment when a spectral view is on; else the time stack's span."""
        if self.spectral is not None or self.stft is not None:
            return self.arch.segment_length
        arch = self.arch
        half = (arch.kernel_size - 1) // 2 * sum(2 ** (i % arch.time_cycle)
                                                 for i in range(arch.time_layers))
        return (2 * half + 1) * arch.frame

    def training_loss(self, model: nn.Module, clean: torch.Tensor, generator: torch.Generator,
                      config: TrainConfig) -> torch.Tensor:
        """Denoising score matching with EDM's weighting; sigma log-uniform in the training
        range, drawn per example and source.

        Reference: Karras et al. 2022 (EDM), arXiv 2206.00364, eq. 2 and Table 1.
        """
        batch, n_sources, _ = clean.shape
        sigma = draw_sigma(config, generator, batch, n_sources, with_clean=False)
        noise = torch.randn(clean.shape, generator=generator)
        device = self.device
        clean, sigma = clean.to(device), sigma.to(device)
        denoised = model(clean + sigma[..., None] * noise.to(device), sigma)
        return (self.loss_weight(sigma) * (denoised - clean).pow(2).mean(dim=-1)).mean()

    @torch.no_grad()
    def validation_scores(self, sources: torch.Tensor) -> list[float]:
        was_training = self.training
        self.eval()
        gains = tweedie_gain(self, sources, VALIDATION_SIGMA)
        self.train(was_training)
        return gains

    def summary(self) -> str:
        arch = self.arch
        views = []
        if self.time is not None:
            views.append(f"time: frames of {arch.frame} samples, {arch.time_layers} layers, "
                         f"width {arch.time_channels}")
        if self.stft is not None:
            views.append(f"short-time spectra of {arch.stft_size} samples, "
                         f"{arch.spectral_frame} bins per step, {arch.stft_layers} layers, "
                         f"width {arch.stft_channels}")
        if self.spectral is not None:
            views.append(f"spectral: FFT of the {arch.segment_length}-sample segment, "
                         f"{arch.spectral_frame} bins per step, {arch.spectral_layers} layers, "
                         f"width {arch.spectral_channels}")
        layout = ("one shared network with a source embedding" if arch.shared
                  else "one grouped network per source")
        return (f"score-based denoisers (EDM preconditioning, sigma_data {arch.sigma_data}), "
                f"{arch.front_end} front end ({'; '.join(views)}), {layout}")
