"""The STFT pair every spectral model and method uses: a periodic Hann window, centred frames.

With a hop of at most a quarter of the frame, `istft(stft(x), length)` returns x to float
precision (the window meets the constant-overlap-add condition the inverse divides out).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Spectrogram:
    """Short-time Fourier transform with `n_fft`-sample frames every `hop` samples.

    `stft` takes (..., time) and returns (..., n_fft // 2 + 1, frames) complex coefficients;
    `istft` inverts it.
    """

    n_fft: int
    hop: int

    @property
    def bins(self) -> int:
        return self.n_fft // 2 + 1

    def window(self, like: torch.Tensor) -> torch.Tensor:
        dtype = like.real.dtype if like.is_complex() else like.dtype
        return torch.hann_window(self.n_fft, dtype=dtype, device=like.device)

    @property
    def noise_power(self) -> float:
        """E|X_ft|^2 of unit-variance white noise: the sum of the squared window."""
        return float(torch.hann_window(self.n_fft, dtype=torch.float64).pow(2).sum())

    def stft(self, signal: torch.Tensor) -> torch.Tensor:
        """(..., time) -> (..., bins, frames) complex; frames = time // hop + 1."""
        shape = signal.shape
        flat = signal.reshape(-1, shape[-1])  # (B, T)
        pad = self.n_fft // 2
        mode = "reflect" if shape[-1] > pad else "constant"
        spectra = torch.stft(flat, self.n_fft, self.hop, window=self.window(flat),
                             center=True, pad_mode=mode, return_complex=True)
        return spectra.reshape(*shape[:-1], *spectra.shape[-2:])

    def istft(self, spectra: torch.Tensor, length: int) -> torch.Tensor:
        """(..., bins, frames) complex -> (..., length) real."""
        shape = spectra.shape
        flat = spectra.reshape(-1, *shape[-2:])  # (B, F, frames)
        signal = torch.istft(flat, self.n_fft, self.hop, window=self.window(flat),
                             center=True, length=length)
        return signal.reshape(*shape[:-2], length)
