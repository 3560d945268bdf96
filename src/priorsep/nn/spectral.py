"""What the spectral prior families share: the Gaussian composite model on the STFT.

Source k's STFT coefficients are independent complex Gaussians, X_k,ft ~ CN(0, v_k,ft), with
variances its model gives (an NMF dictionary times activations, a VAE decoder). A family
implements three things:
- `source_variances`: v_k of a signal of class k at its best latent (activations, z): the
  profile likelihood's fit;
- `mix_variances`: every source's v_k fitted jointly to a mix (the mix's variance is the sum);
- `draw_variances`: variances drawn from the prior, for samples.

From them this module gives the interface: the log-density of a signal under its class,

    log p_sigma(x) = max_latent sum_ft [-log(pi v_ft) - |X_ft|**2 / v_ft],
    v = v_k(latent) + sigma**2 * sum(window**2),

(a density of the STFT coefficients, the composite model's own; the score differentiates it
at the best latent, which by the envelope theorem is the profile's gradient), samples, and
the variances the Wiener separation method (`priorsep.separation.wiener`) filters with.

Reference: Févotte, Bertin and Durrieu 2009, "Nonnegative matrix factorization with the
Itakura-Saito divergence: with application to music analysis", Neural Computation 21(3).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from priorsep.nn.interface import SourcePrior, expand_sigma
from priorsep.signal.transforms import Spectrogram

SEGMENT_FRAMES = 64
"""Separation segments span this many STFT frames (131072 samples at n_fft 2048)."""
RELATIVE_FLOOR = 1e-6
"""Variances are floored at this share of the mean power of what is fitted: a bin no model
explains costs a bounded likelihood, never an infinite one."""


def beta_divergence(target: torch.Tensor, model: torch.Tensor, beta: float) -> torch.Tensor:
    """Elementwise beta-divergence d_beta(target | model) (0: Itakura-Saito, 1: KL,
    2: half the squared error); both positive."""
    if beta == 0:
        ratio = target / model
        return ratio - torch.log(ratio) - 1
    if beta == 1:
        return target * torch.log(target / model) - target + model
    return ((target.pow(beta) + (beta - 1) * model.pow(beta) - beta * target * model.pow(beta - 1))
            / (beta * (beta - 1)))


def fit_activations(spectra: torch.Tensor, dictionary: torch.Tensor, iterations: int,
                    beta: float, sparsity: float = 0.0) -> torch.Tensor:
    """Non-negative activations H minimising d_beta(V | W H) + sparsity * mean(V) * sum(H)
    by multiplicative updates, the dictionary fixed:

        H <- H * W^T ((W H)**(beta - 2) V) / (W^T (W H)**(beta - 1) + sparsity * mean(V)).

    Args:
        spectra: V (batch, bins, frames), non-negative.
        dictionary: W (bins, rank) or (batch, bins, rank), positive.

    Returns:
        H (batch, rank, frames).

    Reference: Févotte and Idier 2011, "Algorithms for nonnegative matrix factorization with
    the beta-divergence", Neural Computation 23(9).
    """
    scale = spectra.mean(dim=(-2, -1), keepdim=True).clamp_min(1e-30)  # (B, 1, 1)
    target = spectra / scale + RELATIVE_FLOOR
    transposed = dictionary.transpose(-2, -1)
    activations = torch.ones(spectra.shape[0], dictionary.shape[-1], spectra.shape[-1],
                             dtype=spectra.dtype, device=spectra.device)
    activations = activations / dictionary.sum(dim=-2).mean()  # the flat fit
    for _ in range(iterations):
        model = dictionary @ activations + RELATIVE_FLOOR
        numerator, denominator = _update_terms(target, model, transposed, beta)
        activations = activations * numerator / (denominator + sparsity).clamp_min(1e-30)
    return activations * scale


def learn_dictionary(frames: torch.Tensor, rank: int, iterations: int, beta: float,
                     generator: torch.Generator) -> torch.Tensor:
    """A dictionary W (bins, rank) of unit-sum atoms with V ~ W H, both updated by the
    multiplicative rules of the beta-divergence (the batch NMF that starts stochastic training).

    Args:
        frames: V^T (n_frames, bins), non-negative.
    """
    target = frames.T / frames.mean().clamp_min(1e-30) + RELATIVE_FLOOR  # (F, M)
    dictionary = torch.rand(target.shape[0], rank, generator=generator).to(target) + 0.1
    activations = torch.rand(rank, target.shape[1], generator=generator).to(target) + 0.1
    for _ in range(iterations):
        model = dictionary @ activations + RELATIVE_FLOOR
        numerator, denominator = _update_terms(target, model, dictionary.T, beta)
        activations = activations * numerator / denominator.clamp_min(1e-30)
        model = dictionary @ activations + RELATIVE_FLOOR
        # the same rule for W, on the transposed problem V^T ~ H^T W^T
        numerator, denominator = _update_terms(target.T, model.T, activations, beta)
        dictionary = dictionary * (numerator / denominator.clamp_min(1e-30)).T
        scale = dictionary.sum(0).clamp_min(1e-30)
        dictionary = dictionary / scale
        activations = activations * scale[:, None]
    return dictionary


def sounding_frames(spectra: torch.Tensor, relative: float = 1e-4) -> torch.Tensor:
    """The frames of (batch, bins, frames) spectra louder than `relative` times the loudest
    of their crop, as (n_frames, bins)."""
    frames = spectra.transpose(-2, -1)  # (B, T, F)
    energy = frames.sum(-1)
    keep = (energy > relative * energy.amax(-1, keepdim=True)) & (energy > 0)
    return frames[keep]


def _update_terms(target: torch.Tensor, model: torch.Tensor, transposed: torch.Tensor,
                  beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """W^T ((W H)**(beta - 2) V) and W^T (W H)**(beta - 1), without general powers for the
    usual betas (Itakura-Saito, KL, Euclidean)."""
    if beta == 1:
        return transposed @ (target / model), transposed.sum(dim=-1, keepdim=True)
    if beta == 0:
        inverse = 1 / model
        return transposed @ (target * inverse * inverse), transposed @ inverse
    if beta == 2:
        return transposed @ target, transposed @ model
    return transposed @ (model.pow(beta - 2) * target), transposed @ model.pow(beta - 1)


def power_of(spectra: torch.Tensor) -> torch.Tensor:
    """|X|**2 of complex spectra, elementwise."""
    return spectra.real.pow(2) + spectra.imag.pow(2)


def composite_log_likelihood(spectra: torch.Tensor, variances: torch.Tensor) -> torch.Tensor:
    """sum over (bins, frames) of log CN(X; 0, v) = -log(pi v) - |X|**2 / v.

    Args:
        spectra: (..., bins, frames) complex; variances: the same shape, positive.

    Returns:
        (...) in nats.
    """
    return -(torch.log(math.pi * variances) + power_of(spectra) / variances).sum(dim=(-2, -1))


class SpectralPriors(SourcePrior):
    """The interface for families of the Gaussian composite model; subclasses give the
    variances (`source_variances`, `mix_variances`, `draw_variances`)."""

    has_log_prob = True
    preferred_method = "wiener"
    has_power_spectra = True
    separation_batch = 1
    """One segment at a time: four 8-s segments held 0.96 GB at peak, one 0.64 GB, in the
    same time (a 30-s chorale, 2 cores)."""
    prepare_iterations = 150
    """Multiplicative updates of the batch NMF that starts the dictionaries (`prepare`)."""

    @property
    def arch(self):
        return self.config.architecture

    @property
    def transform(self) -> Spectrogram:
        return Spectrogram(self.arch.n_fft, self.arch.hop)

    @property
    def segment_length(self) -> int:
        return SEGMENT_FRAMES * self.arch.n_fft

    def receptive_field(self) -> int:
        return self.arch.n_fft

    def source_variances(self, spectra: torch.Tensor) -> torch.Tensor:
        """Each source's variances at its best latent.

        Args:
            spectra: (batch, n_sources, bins, frames) complex, source k a signal of class k.

        Returns:
            (batch, n_sources, bins, frames), positive.
        """
        raise NotImplementedError

    def mix_variances(self, mix_spectra: torch.Tensor, classes: list[int] | None = None
                      ) -> torch.Tensor:
        """The variances of every source's contribution, fitted jointly to a mix.

        Args:
            mix_spectra: (batch, bins, frames) complex.
            classes: the sources that may be present (default: all); the others get 0.

        Returns:
            (batch, n_sources, bins, frames), non-negative; their sum models the mix.
        """
        raise NotImplementedError

    def draw_variances(self, n: int, frames: int, generator: torch.Generator) -> torch.Tensor:
        """(n, n_sources, bins, frames) variances drawn from the prior."""
        raise NotImplementedError

    def log_prob(self, sources: torch.Tensor, sigma=None) -> torch.Tensor:
        """Composite-model log-likelihood of each source's STFT at its best latent (nats).

        Args:
            sources: (batch, n_sources, time); sigma: white noise added (float or
                (batch, n_sources)).

        Returns:
            (batch, n_sources).
        """
        spectra = self.transform.stft(sources)  # (B, N, F, frames)
        with torch.no_grad():
            variances = self.source_variances(spectra.detach())
        noise = expand_sigma(sigma, sources).pow(2) * self.transform.noise_power
        floor = RELATIVE_FLOOR * variances.mean(dim=(-2, -1), keepdim=True).clamp_min(1e-20)
        return composite_log_likelihood(spectra, variances + floor + noise[..., None, None])

    def sample(self, n: int, length: int, sigma=None, temperature: float = 1.0,
               generator: torch.Generator | None = None,
               progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
        generator = generator or torch.Generator().manual_seed(0)
        frames = length // self.arch.hop + 1
        variances = self.draw_variances(n, frames, generator).cpu() * temperature ** 2
        shape = variances.shape
        real, imag = torch.randn((2, *shape), generator=generator)
        spectra = torch.complex(real, imag) * (variances / 2).sqrt()
        samples = self.transform.istft(spectra, length)
        if sigma:
            samples = samples + float(sigma) * torch.randn(samples.shape, generator=generator)
        return samples.to(self.device)
