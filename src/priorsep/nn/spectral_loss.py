"""The multi-resolution STFT loss: spectral convergence plus log-magnitude distance, averaged
over several window sizes.

Reference: Yamamoto et al. 2020, "Parallel WaveGAN", arXiv 1910.11480 (section 2.3); the same
loss as auraloss' `MultiResolutionSTFTLoss` with its defaults, written here in a few lines
rather than adding a dependency for it.
"""

from __future__ import annotations

import torch

RESOLUTIONS = ((256, 64), (1024, 256), (2048, 512))
"""(window, hop) pairs, Hann windows."""


def stft_magnitude(signal: torch.Tensor, window: int, hop: int) -> torch.Tensor:
    """|STFT| of (..., time) -> (..., window // 2 + 1, frames), floored at 1e-7."""
    flat = signal.reshape(-1, signal.shape[-1])
    spectrum = torch.stft(flat, window, hop, window=torch.hann_window(window, device=signal.device),
                          return_complex=True)
    return spectrum.abs().clamp_min(1e-7).reshape(*signal.shape[:-1], *spectrum.shape[-2:])


def multi_resolution_stft_loss(estimate: torch.Tensor, target: torch.Tensor,
                               resolutions: tuple[tuple[int, int], ...] = RESOLUTIONS
                               ) -> torch.Tensor:
    """Mean over resolutions of ||S_t - S_e||_F / ||S_t||_F + mean |log S_t - log S_e|.

    Resolutions whose window exceeds the signal are left out (at least the shortest is kept).

    Args:
        estimate, target: (..., time).

    Returns:
        A scalar.
    """
    total = estimate.new_zeros(())
    length = estimate.shape[-1]
    resolutions = [pair for pair in resolutions if pair[0] <= length] or [
        (min(length, resolutions[0][0]), max(1, min(length, resolutions[0][0]) // 4))]
    for window, hop in resolutions:
        est, ref = stft_magnitude(estimate, window, hop), stft_magnitude(target, window, hop)
        convergence = torch.linalg.norm(ref - est) / torch.linalg.norm(ref).clamp_min(1e-7)
        total = total + convergence + (ref.log() - est.log()).abs().mean()
    return total / len(resolutions)
