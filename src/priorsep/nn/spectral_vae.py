"""Deep spectral priors: a variational autoencoder of power-spectrum frames per source class.

Source k's frame t has composite-model variance v_t = g_t * shape_k(z_t) (`priorsep.nn.spectral`):
z_t ~ N(0, I) (`latent` numbers) goes through an MLP to `rank` non-negative activations of a
learnt power dictionary, whose output is normalised to a mean of 1 over the bins; the gain g_t
is free (a flat prior on log g), so a source at any level is inside its prior. The encoder
q(z | frame) reads the frame's log power spectrum less its mean (level-free).

Training starts each decoder's dictionary from a KL-NMF of solo frames (squared), then
maximises the ELBO on solo frames: the Itakura-Saito fit of the decoded variance (the
composite model's negative log-likelihood, up to a constant; the gain at its optimum
mean_f(|X|**2 / shape)) plus `kl_weight` times KL(q || N(0, I)).

Separation infers every source's (z_t, g_t) under the mix's likelihood,
x_ft ~ CN(0, sum_k g_k,t shape_k(z_k,t)_f), by gradient steps on the log posterior, started
from Itakura-Saito NMF with the decoders' dictionaries and the encoder's reading of each
source's share; the estimates are then the Wiener shares of the mix.

Reference: Bando, Mimura, Itoyama, Yoshii and Kawahara 2018, "Statistical speech enhancement
based on probabilistic integration of variational autoencoder and non-negative matrix
factorization", ICASSP; Leglaive, Girin and Horaud 2018, "A variance modeling framework based
on variational autoencoders for speech enhancement", MLSP; Kingma and Welling 2014
(arXiv 1312.6114).
"""

from __future__ import annotations

import torch
from torch import nn

from priorsep.config import ModelConfig, TrainConfig
from priorsep.nn.spectral import (
    RELATIVE_FLOOR,
    SpectralPriors,
    fit_activations,
    learn_dictionary,
    sounding_frames,
)

SHAPE_FLOOR = 1e-5
"""Added to the normalised decoded shape (mean 1): a bin is never modelled below -50 dB."""
QUIET_FRAME = 1e-4
"""Training frames quieter than this share of the loudest frame of their crop train nothing."""
LOG_EPS = 1e-10


class FrameVAE(nn.Module):
    """One source class's encoder and decoder of power-spectrum frames.

    Args:
        bins: frequency bins; rank: dictionary atoms; latent, hidden: sizes.
    """

    def __init__(self, bins: int, rank: int, latent: int, hidden: int) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(bins, hidden), nn.Tanh(),
                                     nn.Linear(hidden, hidden), nn.Tanh(),
                                     nn.Linear(hidden, 2 * latent))
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.Tanh(),
                                     nn.Linear(hidden, hidden), nn.Tanh(),
                                     nn.Linear(hidden, rank))
        self.log_dictionary = nn.Parameter(
            torch.rand(bins, rank, generator=torch.Generator().manual_seed(0)).log())

    @property
    def dictionary(self) -> torch.Tensor:
        """(bins, rank) positive power atoms."""
        return self.log_dictionary.exp()

    def encode(self, power: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(..., bins) power frames -> mean and log-variance of q(z), each (..., latent)."""
        log_power = torch.log(power + LOG_EPS)
        mean, log_variance = self.encoder(log_power - log_power.mean(-1, keepdim=True)).chunk(2, -1)
        return mean, log_variance.clamp(-12.0, 6.0)

    def shape(self, latent: torch.Tensor) -> torch.Tensor:
        """(..., latent) -> (..., bins) normalised variance shape (mean 1 over the bins)."""
        activations = nn.functional.softplus(self.decoder(latent))
        variance = activations @ self.dictionary.T
        return variance / variance.mean(-1, keepdim=True).clamp_min(1e-30) + SHAPE_FLOOR


def itakura_saito(power: torch.Tensor, variance: torch.Tensor) -> torch.Tensor:
    """sum over the last axis of d_IS(power | variance) (the composite model's negative
    log-likelihood less its minimum)."""
    ratio = (power + LOG_EPS) / (variance + LOG_EPS)
    return (ratio - torch.log(ratio) - 1).sum(-1)


def optimal_gain(power: torch.Tensor, shape: torch.Tensor) -> torch.Tensor:
    """argmax_g of the composite likelihood of `power` under variance g * shape: mean_f(P / s),
    (..., 1)."""
    return (power / shape).mean(-1, keepdim=True)


class SpectralVAEPriors(SpectralPriors):
    """One frame VAE per source (see the module docstring).

    Args:
        config: a ModelConfig whose architecture is a `SpectralVAEConfig`.
    """

    validation_name = "validation log-likelihood (nats/sample, composite model)"

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        arch = self.arch
        self.vaes = nn.ModuleList(FrameVAE(self.transform.bins, arch.rank, arch.latent,
                                           arch.hidden) for _ in config.sources)
        self.register_buffer("log_gain", torch.tensor([[-4.0, 2.0]] * len(config.sources)))
        """Mean and standard deviation of log g over the training frames (for samples)."""

    @torch.no_grad()
    def prepare(self, clean: torch.Tensor) -> None:
        """Start every decoder's power dictionary from a KL-NMF of the crops' magnitude
        frames, squared (the classical dictionary, made a power one)."""
        spectra = self.transform.stft(clean.to(self.device)).abs()  # (B, N, F, T)
        generator = torch.Generator().manual_seed(0)
        for k, vae in enumerate(self.vaes):
            frames = sounding_frames(spectra[:, k])
            if frames.shape[0] >= self.arch.rank:
                dictionary = learn_dictionary(frames, self.arch.rank, self.prepare_iterations,
                                              1.0, generator)
                vae.log_dictionary.copy_(2 * dictionary.clamp_min(1e-15).log())

    def powers(self, signals: torch.Tensor) -> torch.Tensor:
        """|STFT|**2 of (..., time) signals, frames last: (..., frames, bins)."""
        spectra = self.transform.stft(signals)
        return (spectra.real.pow(2) + spectra.imag.pow(2)).transpose(-2, -1)

    def forward(self, power: torch.Tensor, noise: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The autoencoder pass DDP wraps.

        Args:
            power: (n_sources, frames, bins); noise: (n_sources, frames, latent) standard normal.

        Returns:
            (shapes (n_sources, frames, bins), means, log-variances (n_sources, frames, latent)).
        """
        shapes, means, log_variances = [], [], []
        for k, vae in enumerate(self.vaes):
            mean, log_variance = vae.encode(power[k])
            shapes.append(vae.shape(mean + noise[k] * (0.5 * log_variance).exp()))
            means.append(mean)
            log_variances.append(log_variance)
        return torch.stack(shapes), torch.stack(means), torch.stack(log_variances)

    def training_loss(self, model: nn.Module, clean: torch.Tensor, generator: torch.Generator,
                      config: TrainConfig) -> torch.Tensor:
        """Negative ELBO per bin over the frames that sound: Itakura-Saito fit at the optimal
        gain plus kl_weight * KL(q(z | frame) || N(0, I))."""
        power = self.powers(clean.to(self.device))  # (B, N, T, F)
        n_sources, bins = power.shape[1], power.shape[-1]
        power = power.transpose(0, 1).reshape(n_sources, -1, bins)  # (N, B T, F)
        energy = power.sum(-1)  # (N, M)
        crop_max = energy.reshape(n_sources, clean.shape[0], -1).amax(-1, keepdim=True)
        loudest = crop_max.expand(-1, -1, energy.shape[1] // clean.shape[0]).reshape_as(energy)
        weight = ((energy > QUIET_FRAME * loudest) & (energy > 0)).float()
        noise = torch.randn(*power.shape[:2], self.arch.latent, generator=generator)
        shapes, means, log_variances = model(power, noise.to(power))
        gain = optimal_gain(power, shapes).detach()
        fit = itakura_saito(power, gain * shapes)
        kl = 0.5 * (means.pow(2) + log_variances.exp() - log_variances - 1).sum(-1)
        self._track_gains(gain[..., 0], weight)
        per_frame = (fit + self.arch.kl_weight * kl) / bins
        return (per_frame * weight).sum() / weight.sum().clamp_min(1.0)

    @torch.no_grad()
    def _track_gains(self, gain: torch.Tensor, weight: torch.Tensor) -> None:
        for k in range(gain.shape[0]):
            kept = gain[k][weight[k] > 0]
            if kept.numel() > 1:
                logs = kept.clamp_min(1e-30).log()
                stats = torch.stack([logs.mean(), logs.std()])
                self.log_gain[k] = 0.9 * self.log_gain[k] + 0.1 * stats

    @torch.no_grad()
    def source_variances(self, spectra: torch.Tensor) -> torch.Tensor:
        """Each source's variance at the encoder's mean latent and the optimal gain."""
        power = (spectra.real.pow(2) + spectra.imag.pow(2)).transpose(-2, -1)  # (B, N, T, F)
        out = []
        for k, vae in enumerate(self.vaes):
            shape = vae.shape(vae.encode(power[:, k])[0])
            out.append(optimal_gain(power[:, k], shape) * shape)
        return torch.stack(out, dim=1).transpose(-2, -1)

    @torch.no_grad()
    def draw_variances(self, n: int, frames: int, generator: torch.Generator) -> torch.Tensor:
        out = []
        for k, vae in enumerate(self.vaes):
            latent = torch.randn(n, frames, self.arch.latent, generator=generator)
            mean, std = self.log_gain[k].cpu().tolist()
            gain = (mean + std * torch.randn(n, frames, 1, generator=generator)).exp()
            out.append(gain.to(self.device) * vae.shape(latent.to(self.device)))
        return torch.stack(out, dim=1).transpose(-2, -1)

    def warm_start(self, power: torch.Tensor, classes: list[int]) -> torch.Tensor:
        """Itakura-Saito NMF of the mix with the decoders' dictionaries: each source's share
        of the mix's power, (n_classes, B, T, F) from power (B, T, F)."""
        dictionaries = [self.vaes[k].dictionary for k in classes]
        rank = self.arch.rank
        joint = torch.cat(dictionaries, dim=1)  # (F, n R)
        activations = fit_activations(power.transpose(-2, -1), joint,
                                      self.arch.warm_iterations, beta=0.0)  # (B, n R, T)
        parts = torch.stack([(dictionaries[i] @ activations[:, i * rank:(i + 1) * rank])
                             for i in range(len(classes))])  # (n, B, F, T)
        shares = parts / parts.sum(0, keepdim=True).clamp_min(1e-30)
        return shares.transpose(-2, -1) * power[None]

    def mix_variances(self, mix_spectra: torch.Tensor, classes: list[int] | None = None
                      ) -> torch.Tensor:
        classes = list(range(len(self.sources))) if classes is None else classes
        arch = self.arch
        power = (mix_spectra.real.pow(2) + mix_spectra.imag.pow(2)).transpose(-2, -1)  # (B,T,F)
        floor = RELATIVE_FLOOR * power.mean(dim=(-2, -1), keepdim=True)
        with torch.no_grad():
            shares = self.warm_start(power, classes)  # (n, B, T, F)
            latents, log_gains = [], []
            for index, k in enumerate(classes):
                latent = self.vaes[k].encode(shares[index])[0]
                shape = self.vaes[k].shape(latent)
                latents.append(latent)
                log_gains.append(optimal_gain(shares[index], shape).clamp_min(1e-30).log())
        latent = torch.stack(latents).requires_grad_(True)  # (n, B, T, latent)
        log_gain = torch.stack(log_gains).requires_grad_(True)  # (n, B, T, 1)
        optimiser = torch.optim.Adam([latent, log_gain], lr=arch.step_size)
        with torch.enable_grad():
            for _ in range(arch.iterations):
                variance = self._variances(latent, log_gain, classes)
                loss = itakura_saito(power, variance.sum(0) + floor).sum()
                loss = loss + 0.5 * arch.prior_weight * latent.pow(2).sum()
                if arch.smoothness > 0:
                    steps = latent[:, :, 1:] - latent[:, :, :-1]
                    loss = loss + 0.5 * arch.smoothness * steps.pow(2).sum()
                # gradients of the latents only: the decoders' weights stay out of the graph's
                # accumulation
                latent.grad, log_gain.grad = torch.autograd.grad(loss, [latent, log_gain])
                optimiser.step()
        with torch.no_grad():
            variance = self._variances(latent, log_gain, classes)  # (n, B, T, F)
        out = torch.zeros(mix_spectra.shape[0], len(self.sources), *mix_spectra.shape[1:],
                          dtype=power.dtype, device=power.device)
        out[:, classes] = variance.permute(1, 0, 3, 2)
        return out

    def _variances(self, latent: torch.Tensor, log_gain: torch.Tensor,
                   classes: list[int]) -> torch.Tensor:
        return torch.stack([log_gain[i].exp() * self.vaes[k].shape(latent[i])
                            for i, k in enumerate(classes)])

    def summary(self) -> str:
        arch = self.arch
        return (f"spectral VAE per source, latent {arch.latent}, hidden {arch.hidden}, "
                f"{arch.rank}-atom power dictionary (n_fft {arch.n_fft}, hop {arch.hop})")
