"""The spectral prior families (`priorsep.nn.nmf`, `priorsep.nn.spectral_vae`) and the Wiener
separation method they share (`priorsep.separation.wiener`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from priorsep.config.fields import FieldError, check_counts, check_finite

PHASES: tuple[str, ...] = ("mix", "misi")
"""Output stages of the Wiener method: the mix's phase (the Wiener share of its STFT), or MISI
phases consistent with the STFT and the mix."""
MAGNITUDES: tuple[str, ...] = ("share", "model", "blend")
"""The magnitudes MISI keeps: each source's Wiener share of the mix's, the model's own
(the square root of its variance), or their geometric mean."""


def _check_transform(config) -> None:
    check_counts(config, 4, "n_fft")
    check_counts(config, 1, "hop")
    if config.n_fft % 2:
        raise FieldError("n_fft", f"must be even, got {config.n_fft}")
    if config.hop * 4 > config.n_fft:
        raise FieldError("hop", f"must be at most n_fft / 4 ({config.n_fft // 4}) for an "
                                f"exact inverse, got {config.hop}")


@dataclass(frozen=True)
class NMFConfig:
    """Spectral priors (`priorsep.nn.nmf`): per source a non-negative dictionary W_k (bins x
    rank) learnt from solos; a spectrogram frame of source k is W_k h, h >= 0.

    The model is fitted to |STFT|**power by the beta-divergence (beta 1, power 1: KL on
    magnitudes, the usual supervised NMF; beta 0, power 2: Itakura-Saito on power spectra, the
    Gaussian composite model itself); the variance of the composite model is
    (W h)**(2 / power). `sparsity` is the rate of an exponential prior on the activations (an
    L1 penalty, in units of the mean spectrum).
    """

    n_fft: int = 2048
    hop: int = 256
    rank: int = 48
    beta: float = 1.0
    power: float = 1.0
    sparsity: float = 0.0
    fit_iterations: int = 200
    """Multiplicative updates of the activations when a signal is fitted (separation, density,
    and each training batch)."""

    def __post_init__(self) -> None:
        _check_transform(self)
        check_counts(self, 1, "rank", "fit_iterations")
        check_finite(self, 0.0, 2.0, "beta")
        check_finite(self, 0.5, 2.0, "power")
        check_finite(self, 0.0, math.inf, "sparsity")

    @property
    def length_multiple(self) -> int:
        return 1


@dataclass(frozen=True)
class SpectralVAEConfig:
    """Deep spectral priors (`priorsep.nn.spectral_vae`): per source a variational autoencoder
    of power-spectrum frames whose decoder gives the variance of the Gaussian composite model,
    v = g * shape(z): z (`latent` numbers) through an MLP to `rank` non-negative activations of
    a learnt dictionary, normalised; the frame's gain g is free (a flat prior on its log).

    Separation infers every source's z and g per frame under the mix's likelihood: a warm start
    by KL-NMF with the decoders' dictionaries (`warm_iterations`), each source's share encoded,
    then `iterations` Adam steps of `step_size` on the posterior (the mix's log-likelihood +
    log N(z; 0, I) * `prior_weight`, + a Gaussian random-walk prior of weight `smoothness` on
    z over time). The variances given to the Wiener filter are v_VAE**(1 - w) * v_NMF**w with
    w = `nmf_weight` (0: the VAE's alone; 1: the warm start's alone).
    """

    n_fft: int = 2048
    hop: int = 256
    rank: int = 48
    latent: int = 16
    hidden: int = 256
    kl_weight: float = 1.0
    warm_iterations: int = 100
    iterations: int = 200
    step_size: float = 0.05
    prior_weight: float = 1.0
    smoothness: float = 0.0
    nmf_weight: float = 0.5
    """The NMF expert's weight in the product (validation chorales, MISI with blended
    magnitudes: 0.3 +14.33 dB, 0.5 +14.42, 0.7 +14.33, 0 +13.81)."""

    def __post_init__(self) -> None:
        _check_transform(self)
        check_finite(self, 0.0, 1.0, "nmf_weight")
        check_counts(self, 1, "rank", "latent", "hidden", "warm_iterations")
        check_counts(self, 0, "iterations")
        check_finite(self, 0.0, math.inf, "kl_weight", "prior_weight", "smoothness")
        check_finite(self, 0.0, math.inf, "step_size", low_open=True)

    @property
    def length_multiple(self) -> int:
        return 1


@dataclass(frozen=True)
class WienerConfig:
    """The spectral families' separation (`priorsep.separation.wiener`): the priors give every
    source's variances given the mix; the estimates are their Wiener shares of the mix's STFT
    (`phase` "mix"), or waveforms whose STFT magnitudes are `magnitudes` and whose phases are
    made consistent with the STFT and the mix by MISI (`phase` "misi", `misi_iterations`)."""

    phase: str = "mix"
    magnitudes: str = "blend"
    """What MISI keeps (`MAGNITUDES`; ignored with phase "mix"). On the validation chorales
    (NMF, 30 iterations): share +13.21 dB, model +13.73, blend +13.73; with the VAE's combined
    variances blend is ahead of model by 0.3 dB."""
    misi_iterations: int = 30

    def __post_init__(self) -> None:
        if self.phase not in PHASES:
            raise FieldError("phase", f"must be one of {', '.join(PHASES)}, got {self.phase!r}")
        if self.magnitudes not in MAGNITUDES:
            raise FieldError("magnitudes", f"must be one of {', '.join(MAGNITUDES)}, got "
                                           f"{self.magnitudes!r}")
        check_counts(self, 0, "misi_iterations")
