"""Separation with spectral priors: the posterior mean under the Gaussian composite model.

The mix is m = sum_k a_k s_k. The priors give the variances of every contribution a_k s_k
given the mix (`SpectralPriors.mix_variances`: NMF activations or VAE latents fitted to it);
each contribution is its Wiener share of the mix's STFT (`priorsep.signal.filtering.wiener`),
and s_k = contribution / a_k. With `phase` "misi" the waveforms get chosen magnitudes (the
shares', the model's own square-root variances, or their geometric mean: `magnitudes`) and
phases consistent with the STFT and the mix (MISI). The mask keeps the mix's phase and the
share's magnitudes, which limits any masked estimate (the ideal ratio mask's ceiling); the
model's magnitudes with consistent phases are not so limited. Either way the contributions add
up to the mix. The fit is scale-free: a mix at any level gives the same estimates scaled.
"""

from __future__ import annotations

import torch

from priorsep.config import WienerConfig
from priorsep.errors import CapabilityError
from priorsep.nn.interface import SourcePrior
from priorsep.separation import CountCallback
from priorsep.separation.mixing import Mixing
from priorsep.signal.filtering import misi, wiener


def wiener_separate(priors: SourcePrior, mixes: torch.Tensor, mixing: Mixing,
                    config: WienerConfig, progress: CountCallback | None = None,
                    classes: list[int] | None = None) -> torch.Tensor:
    """Separate mixes with spectral priors.

    Args:
        priors: a family with `mix_variances` (the spectral families).
        mixes: (batch, time).
        classes: the sources that may be present (default: all); the others get silence.

    Returns:
        (batch, n_sources, time) source estimates.

    Raises:
        CapabilityError: the priors give no power spectra.
    """
    if not priors.has_power_spectra:
        raise CapabilityError(f"{priors.config.family} priors give no power spectra: the "
                              "wiener method needs one model of a spectral family (nmf, vae),"
                              " not a combination of models")
    transform = priors.transform
    n_sources = len(priors.sources)
    with torch.no_grad():
        spectra = transform.stft(mixes)  # (B, F, frames)
    variances = priors.mix_variances(spectra, classes)  # (B, N, F, frames)
    with torch.no_grad():
        shares = wiener(variances, spectra)
        if config.phase == "misi":
            contributions = misi(misi_magnitudes(variances, shares, config.magnitudes), mixes,
                                 transform, config.misi_iterations)
        else:
            contributions = transform.istft(shares, mixes.shape[-1])
        weights = mixing.weights(n_sources, mixes.dtype, mixes.device)
    if progress is not None:
        progress(1, 1)
    return contributions / weights[:, None]


def misi_magnitudes(variances: torch.Tensor, shares: torch.Tensor, which: str) -> torch.Tensor:
    """The magnitudes MISI keeps: `which` "share" (the Wiener shares'), "model" (the square
    root of the variances) or "blend" (their geometric mean); (batch, n_sources, bins, frames)."""
    if which == "share":
        return shares.abs()
    if which == "model":
        return variances.sqrt()
    return (variances.sqrt() * shares.abs()).sqrt()
