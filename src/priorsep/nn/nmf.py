"""Spectral priors by non-negative matrix factorisation: one dictionary per source class.

A frame of class k's spectrogram |X_k|**power is W_k h with h >= 0: W_k (bins x rank) is
learnt from the class's solos, the activations h are the latent. The variance of the Gaussian
composite model is (W_k h)**(2 / power) (`priorsep.nn.spectral`). Given a mix, the activations
of all dictionaries are fitted jointly (multiplicative updates, the dictionaries fixed) and
each source is its Wiener share of the mix: the classical pair-free separation by source
models learnt from solos (supervised NMF).

Training fits each batch's activations with the dictionaries fixed, then takes a gradient
step of the beta-divergence in log W (stochastic NMF; the dictionaries stay positive); they
start from a batch NMF (multiplicative updates of W and H) of `prepare_batch` crops.

Reference: Smaragdis, Raj and Shashanka 2007, "Supervised and semi-supervised separation of
sounds from single-channel mixtures", ICA; Févotte, Bertin and Durrieu 2009 (the composite
model); Févotte and Idier 2011 (beta-divergence multiplicative updates).
"""

from __future__ import annotations

import torch
from torch import nn

from priorsep.config import ModelConfig, TrainConfig
from priorsep.nn.spectral import (
    RELATIVE_FLOOR,
    SpectralPriors,
    beta_divergence,
    fit_activations,
    learn_dictionary,
    sounding_frames,
)

SILENT_POWER = 1e-8
"""Crops whose mean power is below this (-80 dB) train nothing."""
TRAIN_FIT_ITERATIONS = 50
"""Multiplicative updates of a training batch's activations (the dictionary moves slowly)."""


class NMFPriors(SpectralPriors):
    """One learnt non-negative dictionary per source (see the module docstring).

    Args:
        config: a ModelConfig whose architecture is an `NMFConfig`.
    """

    validation_name = "validation log-likelihood (nats/sample, composite model)"
    prepare_batch = 96

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        n, bins, rank = len(config.sources), self.transform.bins, self.arch.rank
        generator = torch.Generator().manual_seed(0)
        self.log_dictionary = nn.Parameter(torch.rand(n, bins, rank, generator=generator).log())
        self.register_buffer("activation_scale", torch.ones(n, rank))
        """Mean activation of each atom on the training solos (for samples)."""

    @property
    def dictionaries(self) -> torch.Tensor:
        """W (n_sources, bins, rank), each atom of unit sum."""
        dictionary = self.log_dictionary.exp()
        return dictionary / dictionary.sum(dim=1, keepdim=True)

    def spectra(self, signals: torch.Tensor) -> torch.Tensor:
        """|STFT|**power of (..., time) signals: (..., bins, frames)."""
        return self.transform.stft(signals).abs().pow(self.arch.power)

    def variances(self, model: torch.Tensor) -> torch.Tensor:
        """Composite-model variances of model spectra (W h)."""
        return model.clamp_min(0).pow(2 / self.arch.power)

    def fit(self, spectra: torch.Tensor, dictionary: torch.Tensor,
            iterations: int | None = None) -> torch.Tensor:
        arch = self.arch
        return fit_activations(spectra, dictionary, iterations or arch.fit_iterations,
                               arch.beta, arch.sparsity)

    @torch.no_grad()
    def source_variances(self, spectra: torch.Tensor) -> torch.Tensor:
        magnitudes = spectra.abs().pow(self.arch.power)  # (B, N, F, T)
        out = []
        for k, dictionary in enumerate(self.dictionaries):
            activations = self.fit(magnitudes[:, k], dictionary)
            out.append(self.variances(dictionary @ activations))
        return torch.stack(out, dim=1)

    @torch.no_grad()
    def mix_variances(self, mix_spectra: torch.Tensor, classes: list[int] | None = None
                      ) -> torch.Tensor:
        classes = list(range(len(self.sources))) if classes is None else classes
        magnitudes = mix_spectra.abs().pow(self.arch.power)  # (B, F, T)
        dictionaries = self.dictionaries[classes]  # (n, F, R)
        rank = self.arch.rank
        joint = dictionaries.permute(1, 0, 2).reshape(dictionaries.shape[1], -1)  # (F, n R)
        activations = self.fit(magnitudes, joint)  # (B, n R, T)
        out = torch.zeros(mix_spectra.shape[0], len(self.sources), *mix_spectra.shape[1:],
                          dtype=magnitudes.dtype, device=magnitudes.device)
        for index, k in enumerate(classes):
            part = activations[:, index * rank:(index + 1) * rank]
            out[:, k] = self.variances(dictionaries[index] @ part)
        return out

    @torch.no_grad()
    def draw_variances(self, n: int, frames: int, generator: torch.Generator) -> torch.Tensor:
        shape = (n, len(self.sources), self.arch.rank, frames)
        # exponential activations (the sparsity prior's family) of each atom's mean, few atoms on
        draws = -torch.rand(shape, generator=generator).log()
        active = (torch.rand(shape, generator=generator) < 4.0 / self.arch.rank).float()
        activations = draws * active * self.activation_scale.cpu()[None, :, :, None]
        return self.variances(self.dictionaries.cpu()[None] @ activations).to(self.device)

    def forward(self, activations: torch.Tensor) -> torch.Tensor:
        """The model spectra W_k h (what DDP wraps): (B, N, rank, frames) -> (B, N, bins,
        frames)."""
        return self.dictionaries[None] @ activations

    @torch.no_grad()
    def prepare(self, clean: torch.Tensor) -> None:
        """Start every dictionary from a batch NMF of the sounding frames of the crops."""
        spectra = self.spectra(clean.to(self.device))  # (B, N, F, T)
        generator = torch.Generator().manual_seed(0)
        for k in range(len(self.sources)):
            frames = sounding_frames(spectra[:, k])
            if frames.shape[0] >= self.arch.rank:
                dictionary = learn_dictionary(frames, self.arch.rank, self.prepare_iterations,
                                              self.arch.beta, generator)
                self.log_dictionary[k] = dictionary.clamp_min(1e-30).log()

    def training_loss(self, model: nn.Module, clean: torch.Tensor, generator: torch.Generator,
                      config: TrainConfig) -> torch.Tensor:
        """The beta-divergence of the batch's spectra from W_k h, h fitted with W_k fixed,
        per bin and relative to each crop's mean (so every crop counts alike); silent crops
        are left out."""
        spectra = self.spectra(clean.to(self.device))  # (B, N, F, T)
        scale = spectra.mean(dim=(-2, -1))  # (B, N)
        sounding = scale > SILENT_POWER ** (self.arch.power / 2)
        with torch.no_grad():
            dictionaries = self.dictionaries
            activations = torch.stack(
                [self.fit(spectra[:, k], dictionaries[k], TRAIN_FIT_ITERATIONS)
                 for k in range(len(self.sources))], dim=1)  # (B, N, R, T)
            self._track_activations(activations, scale, sounding)
        norm = scale.clamp_min(1e-30)[..., None, None]
        divergence = beta_divergence(spectra / norm + RELATIVE_FLOOR,
                                     model(activations) / norm + RELATIVE_FLOOR, self.arch.beta)
        per_crop = divergence.mean(dim=(-2, -1))  # (B, N)
        weight = sounding.float()
        return (per_crop * weight).sum() / weight.sum().clamp_min(1.0)

    def _track_activations(self, activations: torch.Tensor, scale: torch.Tensor,
                           sounding: torch.Tensor) -> None:
        for k in range(len(self.sources)):
            if bool(sounding[:, k].any()):
                mean = activations[sounding[:, k], k].mean(dim=(0, 2))
                self.activation_scale[k] = 0.9 * self.activation_scale[k] + 0.1 * mean

    def summary(self) -> str:
        arch = self.arch
        divergence = {0.0: "Itakura-Saito", 1.0: "KL", 2.0: "Euclidean"}.get(
            arch.beta, f"beta={arch.beta:g}")
        spectra = {1.0: "magnitude", 2.0: "power"}.get(arch.power, f"STFT magnitude^{arch.power:g}")
        return (f"NMF dictionaries, {arch.rank} atoms per source, {divergence} on {spectra} "
                f"spectra (n_fft {arch.n_fft}, hop {arch.hop})")
