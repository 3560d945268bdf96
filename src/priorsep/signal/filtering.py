"""The posterior mean of the Gaussian composite model (Wiener filtering) and MISI phases.

Gaussian composite model (Févotte, Bertin and Durrieu 2009): every source contribution's STFT
coefficient c_k,ft is complex Gaussian, zero mean, variance v_k,ft, independently; the mix is
their sum, x_ft = sum_k c_k,ft. Given the mix, the posterior mean of each contribution is its
Wiener share

    E[c_k,ft | x] = v_k,ft / sum_j v_j,ft * x_ft,

so the estimates add up to the mix exactly. Multichannel Wiener/EM (open-unmix's
`filtering.py`) reduces to this for one channel.

MISI (Gunawan and Sen 2010, "Iterative phase estimation for the synthesis of separated sources
from single-channel mixtures", IEEE SPL) keeps each source's magnitudes and makes its phases
consistent with the STFT and with the mix: y_k = iSTFT(A_k e^{i phi_k}); the mix error
e = x - sum_k y_k is shared out, Y_k = STFT(y_k) + w_k STFT(e) (Gunawan and Sen: w_k = 1/N;
here by default each source's share of the magnitudes in the bin, so that a silent source
takes none of it); phi_k = angle Y_k; repeat.
"""

from __future__ import annotations

import torch

from priorsep.signal.transforms import Spectrogram

FLOOR = 1e-20
"""Added to the summed variance so that a silent bin divides by no zero."""


def wiener(variances: torch.Tensor, mix_spectra: torch.Tensor) -> torch.Tensor:
    """Posterior means of the contributions given their variances and the mix.

    Args:
        variances: (batch, n_sources, bins, frames), non-negative.
        mix_spectra: (batch, bins, frames) complex.

    Returns:
        (batch, n_sources, bins, frames) complex; they sum to `mix_spectra` wherever some
        variance is positive.
    """
    return shares_of(variances) * mix_spectra[:, None]  # no model explains a bin: equal shares


def misi(magnitudes: torch.Tensor, mix: torch.Tensor, transform: Spectrogram,
         iterations: int, initial_phase: torch.Tensor | None = None,
         weights: torch.Tensor | None = None) -> torch.Tensor:
    """Waveforms with the given STFT magnitudes, phases made consistent with the mix.

    Args:
        magnitudes: (batch, n_sources, bins, frames) target |STFT| of each contribution.
        mix: (batch, time) the mix the contributions add up to.
        initial_phase: (batch, n_sources, bins, frames) or (batch, bins, frames) starting
            phases (default: the mix's).
        iterations: MISI iterations (0: the magnitudes with the starting phases).
        weights: (batch, n_sources, bins, frames), summing to 1 over the sources: each
            source's share of the mix error in every bin (default: its share of the summed
            magnitudes, equal shares where they are all zero). Gunawan and Sen share it
            equally; an equal share puts a quarter of the unexplained error into the slot of
            a source that is silent there.

    Returns:
        (batch, n_sources, time); they add up to `mix` exactly (the last error is shared out).
        The batch is rebuilt one item at a time: the same result, with temporaries a batch
        times smaller (four 8-s segments at once made MISI several times slower here).
    """
    if mix.shape[0] > 1:
        def item(tensor: torch.Tensor | None, b: int) -> torch.Tensor | None:
            return None if tensor is None else tensor[b:b + 1]

        return torch.cat([misi(magnitudes[b:b + 1], mix[b:b + 1], transform, iterations,
                               item(initial_phase, b), item(weights, b))
                          for b in range(mix.shape[0])])
    length = mix.shape[-1]
    if initial_phase is None:
        initial_phase = torch.angle(transform.stft(mix))
    if initial_phase.dim() == 3:
        initial_phase = initial_phase[:, None]
    if weights is None:
        weights = shares_of(magnitudes)
    phase = torch.polar(torch.ones_like(magnitudes), initial_phase.expand_as(magnitudes))
    signals = transform.istft(magnitudes * phase, length)
    for _ in range(iterations):
        error = transform.stft(mix - signals.sum(dim=1))[:, None]  # (B, 1, F, frames)
        spectra = transform.stft(signals) + weights * error
        signals = transform.istft(with_magnitudes(spectra, magnitudes), length)
    error = transform.stft(mix - signals.sum(dim=1))[:, None]
    return signals + transform.istft(weights * error, length)


def shares_of(values: torch.Tensor) -> torch.Tensor:
    """Each source's share of non-negative `values` (batch, n_sources, ...) in every bin,
    equal shares where they are all zero."""
    total = values.sum(dim=1, keepdim=True)
    return torch.where(total > 0, values / total.clamp_min(FLOOR),
                       torch.full_like(values, 1.0 / values.shape[1]))


def with_magnitudes(spectra: torch.Tensor, magnitudes: torch.Tensor) -> torch.Tensor:
    """`spectra`'s phases with `magnitudes` (a bin where `spectra` is zero stays zero)."""
    parts = torch.view_as_real(spectra)
    power = parts[..., 0].square() + parts[..., 1].square()
    return spectra * (magnitudes * power.clamp_min(torch.finfo(power.dtype).tiny).rsqrt())
