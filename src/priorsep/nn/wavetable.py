"""Generator priors: a learnt wavetable per source class, exclusive by construction.

Source k is generated from a three-number latent z = (f0, theta, g):

    x[t] = g * W_k(frac(f0 t / rate + theta)),   W_k one period, RMS 1 (`bins` values),

so whatever z is, the output is one source of class k. The prior on z is learnt from the solos
too: f0 log-uniform over the range seen in training, g log-uniform over the gain range seen
widened 40 dB down and 20 up (a source at its own level), theta uniform; and with probability
`silence` the class is silent. Given a signal r, the projection is the latent search of
`priorsep.nn.latent_search` (energy explained, gain clamped to the prior's range), and the
evidence that the class sounds the profile log-likelihood, less the BIC price of z:

    log p_sigma(r) ~ max_z [log N(r; G_k(z), sigma_eff**2) + log p(z)] - 3/2 log T,
    sigma_eff = max(sigma, noise_floor),

noise_floor the RMS error of the decoder on its training solos; against log N(r; 0, ...) that
it is silent. This is what staged extraction (`priorsep.separation.extract`) needs: each
class proposes one source of its own from a residual and says how well it explains it.
Denoising is the projection G_k(z*(x)); the score follows from Tweedie's formula.

Training autoencodes solo crops: the encoder is the latent search with the class's current
table (the tables start as a cosine, so the first encoder is a fundamental tracker), the loss
is the waveform error (SI-SDR is measured on waveforms: phases must be right) plus a
multi-resolution STFT term; the ranges of f0 and of the crops' RMS and the noise floor are
buffers updated as training goes.

With `WavetableConfig.exact` the tables, the renderer and the latent ranges are the toy
generator's own (`priorsep.data.toy`): model `toy-exact`, a reference whose prior cannot be the
problem, with nothing to learn.

Reference: Shan et al. 2022, "Differentiable Wavetable Synthesis", arXiv 2111.10003; Engel et
al. 2020, "DDSP: Differentiable Digital Signal Processing", arXiv 2001.04643.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from priorsep.config import ModelConfig, TrainConfig, WavetableConfig
from priorsep.data import toy
from priorsep.nn.interface import Proposal, SourcePrior, expand_sigma
from priorsep.nn.latent_search import (
    LatentCandidates,
    SearchSettings,
    latent_price,
    log_uniform_density,
    noise_log_likelihood,
    posterior_mean_by_zoom,
    search_latents,
)
from priorsep.nn.oscillators import (
    fill_circular,
    fold_by_phase,
    phase_positions,
    render_table,
    spectral_peaks,
    yin,
)
from priorsep.nn.spectral_loss import multi_resolution_stft_loss

SILENT_RMS = 1e-3
"""Training crops quieter than this carry no pitch: they train nothing and set no range."""
RANGE_MARGIN = 0.02
"""Relative margin added around the learnt f0 and gain ranges."""
ZOOM_ROUNDS = 6
"""Nested (f0, theta) grids of the exact toy priors' estimate: the last spans +-0.5 / 4**5
of a sample."""


@dataclass(frozen=True)
class Latents:
    """One latent per signal and class, each (batch, n_classes): f0 (Hz), phase (cycles),
    gain (RMS), and the fit (energy explained) they reach."""

    f0: torch.Tensor
    phase: torch.Tensor
    gain: torch.Tensor
    fit: torch.Tensor


class WavetablePriors(SourcePrior):
    """One wavetable generator per source (see the module docstring).

    Args:
        config: the model configuration; `config.architecture` is a `WavetableConfig`.
    """

    has_log_prob = True
    preferred_method = "extract"
    validation_name = "validation reconstruction SI-SDR (dB)"

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        arch: WavetableConfig = config.architecture
        n = len(config.sources)
        positions = torch.arange(arch.bins, dtype=torch.float64) / arch.bins
        if arch.exact:
            missing = set(config.sources) - set(toy.SOURCES)
            if missing:
                raise ValueError(f"exact wavetables exist for the toy sources only, not "
                                 f"{', '.join(sorted(missing))}")
            shapes = torch.stack([toy.shape(name, positions) for name in config.sources])
            self.register_buffer("tables", shapes.float())
        else:
            self.tables = nn.Parameter(torch.cos(2 * math.pi * positions).float().repeat(n, 1))
        # The latent prior: ranges (low, high) of f0 and gain per source, empty (low > high)
        # until training has seen the source; the running min and max of what it saw.
        self.register_buffer("f0_range", torch.tensor([[math.inf, 0.0]] * n))
        self.register_buffer("gain_range", torch.tensor([[math.inf, 0.0]] * n))
        self.register_buffer("noise_floor", torch.full((n,), 1e-2))
        if arch.exact:  # the toy generator's ranges; the gain is the RMS, a * RMS(shape)
            shape_rms = shapes.float().pow(2).mean(-1).sqrt()
            self.f0_range.copy_(torch.tensor([toy.FREQUENCY_RANGE] * n))
            self.gain_range.copy_(shape_rms[:, None] * torch.tensor(toy.AMPLITUDE_RANGE))
            self.noise_floor.fill_(1e-4)

    @property
    def arch(self) -> WavetableConfig:
        return self.config.architecture

    @property
    def segment_length(self) -> int:
        return self.arch.segment_length

    @property
    def search_settings(self) -> SearchSettings:
        return SearchSettings(peaks=self.arch.peaks, subharmonics=self.arch.subharmonics,
                              rounds=self.arch.rounds)

    def normalised_tables(self) -> torch.Tensor:
        """The tables scaled to RMS 1, (n_sources, bins)."""
        return self.tables / self.tables.pow(2).mean(-1, keepdim=True).sqrt().clamp_min(1e-8)

    def trained(self) -> bool:
        """Whether every source has learnt ranges (training has seen it)."""
        return bool((self.gain_range[:, 0] <= self.gain_range[:, 1]).all()
                    and (self.f0_range[:, 0] <= self.f0_range[:, 1]).all())

    def bounds(self, learnt: bool = True) -> tuple[torch.Tensor, ...]:
        """(f0 low, f0 high, gain low, gain high), each (n_sources,): the learnt f0 range and
        the gain range of the prior (the learnt one widened by `gain_spread_db` below and
        `gain_headroom_db` above), or with `learnt` False (the training encoder) or before
        training the search bounds."""
        if learnt and self.trained():
            below, above = (10 ** (self.arch.gain_spread_db / 20),
                            10 ** (self.arch.gain_headroom_db / 20))
            return (self.f0_range[:, 0], self.f0_range[:, 1], self.gain_range[:, 0] / below,
                    self.gain_range[:, 1] * above)
        n = len(self.sources)
        return (torch.full((n,), self.arch.f0_min), torch.full((n,), self.arch.f0_max),
                torch.zeros(n), torch.full((n,), math.inf))

    # --- the generator and its latent search ---------------------------------------------

    def render(self, f0: torch.Tensor, phase: torch.Tensor, gain: torch.Tensor,
               length: int, tables: torch.Tensor | None = None) -> torch.Tensor:
        """G_k(z) for every class: (batch, n_sources) latents -> (batch, n_sources, length)."""
        positions = phase_positions(f0, phase, length, self.sample_rate)
        if self.arch.exact:
            shapes = torch.stack([toy.shape(name, positions[:, k])
                                  for k, name in enumerate(self.sources)], dim=1).float()
            scale = self.tables.float().pow(2).mean(-1).sqrt()[:, None]  # RMS of each shape
            return gain[..., None].float() * shapes / scale
        tables = self.normalised_tables() if tables is None else tables
        return gain[..., None].to(tables.dtype) * render_table(tables, positions)

    def search(self, residual: torch.Tensor, weights: torch.Tensor | None = None,
               learnt: bool = True, classes: list[int] | None = None) -> LatentCandidates:
        """Candidate latents of one source of every class in `residual` (best first).

        Args:
            residual: (batch, time) seen by every class (`weights` scale class k's gain range
                by |a_k|: the residual holds a_k s_k), or (batch, n_sources, time), row k
                searched with class k.
            learnt: search within the learnt ranges (False: the training encoder's bounds).
            classes: search for these classes only (a shared residual); the others get
                no candidate (fit -inf).
        """
        f0_low, f0_high, gain_low, gain_high = (bound.to(residual.device)
                                                for bound in self.bounds(learnt))
        if weights is not None:
            gain_low, gain_high = gain_low * weights, gain_high * weights
        tables = self.normalised_tables().detach()
        index = list(range(len(self.sources))) if classes is None else classes
        trials = None
        if not learnt and residual.dim() == 3 and self.arch.pitch == "yin":  # solos
            trials = self.track_pitch(residual)[..., None]
        with torch.no_grad():
            found = search_latents(residual, tables[index], f0_low[index], f0_high[index],
                                   gain_low[index], gain_high[index], self.sample_rate,
                                   self.search_settings, trials)
        if classes is None:
            return found
        full = []
        for value, fill in ((found.f0, 1.0), (found.phase, 0.0), (found.gain, 0.0),
                            (found.fit, -torch.inf)):
            whole = value.new_full((value.shape[0], len(self.sources), value.shape[-1]), fill)
            full.append(whole.index_copy_(1, value.new_tensor(index).long(), value))
        return LatentCandidates(*full)

    def effective_sigma(self, sigma: torch.Tensor) -> torch.Tensor:
        """max(sigma, noise_floor): never below the decoder's own error on its solos."""
        return torch.maximum(sigma, self.noise_floor.to(sigma))

    def track_pitch(self, solos: torch.Tensor) -> torch.Tensor:
        """The training encoder's f0 of solo crops, (batch, n_sources): YIN's (it does not jump
        to a harmonic), replaced by the strongest spectral peak within 3 % of it when there is
        one (the peak is far more precise for high notes, a period of a few samples)."""
        low = max(self.arch.f0_min, 2.2 * self.sample_rate / solos.shape[-1])  # 2 periods
        tracked = yin(solos, self.sample_rate, low, self.arch.f0_max)[0]
        peaks = spectral_peaks(solos, self.arch.peaks, self.sample_rate, low, self.arch.f0_max)
        near = (peaks / tracked[..., None] - 1).abs() < 0.03  # peaks: strongest first
        first = near.float().argmax(-1, keepdim=True)
        peak = torch.gather(peaks, -1, first)[..., 0]
        return torch.where(near.any(-1), peak, tracked)

    def log_prior(self, f0: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
        """log p(z | the class sounds): log f0 uniform over the learnt range, log gain uniform
        over the prior's gain range, phase uniform."""
        low, high, gain_low, gain_high = self.bounds()
        return (log_uniform_density(f0, low, high)
                + log_uniform_density(gain, gain_low, gain_high)).float()

    def best_latents(self, candidates: LatentCandidates) -> Latents:
        return Latents(*(value[..., 0] for value in (candidates.f0, candidates.phase,
                                                      candidates.gain, candidates.fit)))

    def project(self, signals: torch.Tensor) -> tuple[torch.Tensor, Latents]:
        """G_k(z*) of row k of (batch, n_sources, time): the one source of class k that
        explains row k best, and its latents."""
        latents = self.best_latents(self.search(signals))
        return self.render(latents.f0, latents.phase, latents.gain, signals.shape[-1]), latents

    def estimate(self, signals: torch.Tensor, latents: Latents, sigma: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each class's estimate of its source in row k, and the row's log-likelihood with it
        less that as noise alone (`noise_log_likelihood`). Learnt tables: the projection
        G_k(z*) and the profile likelihood; exact toy shapes: the posterior mean over nested
        (f0, theta) grids around z* (`latent_search.posterior_mean_by_zoom`) and the log of
        the finest grid's mean likelihood.

        Args:
            signals: (batch, n_sources, time); sigma: (batch, n_sources).

        Returns:
            (estimates (batch, n_sources, time), log-likelihood ratio (batch, n_sources)).
        """
        length = signals.shape[-1]
        variance = self.effective_sigma(sigma).double().pow(2)  # (B, N)
        if not self.arch.exact:
            rendered = self.render(latents.f0, latents.phase, latents.gain, length)
            fit = signals.double().pow(2).sum(-1) - (signals - rendered).double().pow(2).sum(-1)
            return rendered, fit / (2 * variance)
        _, _, gain_low, gain_high = self.bounds()
        mean, grid_mean = posterior_mean_by_zoom(
            signals, lambda f0, phase: self.render(f0, phase, torch.ones_like(latents.gain),
                                                   length),
            latents.f0, latents.phase, gain_low, gain_high, variance, self.sample_rate,
            ZOOM_ROUNDS)
        return mean.to(signals.dtype), grid_mean

    # --- the source-prior interface -------------------------------------------------------

    @torch.no_grad()
    def propose(self, residual: torch.Tensor, sigma: float, weights: torch.Tensor,
                classes: list[int] | None = None) -> Proposal:
        """Every class's source from one residual that holds `weights[k] * s_k` plus the rest;
        the evidence is the profile log-likelihood of `residual / weights[k]` (the rest as
        noise of level sigma) and log p(z)."""
        weights = weights.to(residual)  # positive: the residual holds a_k s_k
        best = self.best_latents(self.search(residual, weights, classes=classes))
        best = Latents(best.f0, best.phase, best.gain / weights, best.fit)
        seen = residual[:, None] / weights[:, None]  # (B, N, T): what class k sees
        sigma = expand_sigma(sigma, seen)
        sources, ratio = self.estimate(seen, best, sigma)
        noise = noise_log_likelihood(seen, self.effective_sigma(sigma))
        evidence = (noise + ratio + self.log_prior(best.f0, best.gain)
                    + math.log1p(-self.arch.silence) - latent_price(3, seen.shape[-1]))
        silence = noise + math.log(self.arch.silence)
        return Proposal(sources, evidence.float(), silence.float())

    def log_prob(self, sources: torch.Tensor, sigma=None) -> torch.Tensor:
        """log N(x; G(z*), sigma_eff**2) + log p(z*) of each source under its own prior,
        (batch, n_sources): the profile log-likelihood (the exact toy priors: a local
        quadrature around z*), a stated stand-in for log p_sigma (see `estimate`).

        Differentiable in `sources`: its gradient is the envelope theorem's,
        (D(x) - x) / sigma_eff**2 (the latent search itself is not differentiated)."""
        log_prob, score = self.log_prob_and_score(sources, sigma)
        return log_prob + (score * (sources - sources.detach())).sum(-1)

    @torch.no_grad()
    def log_prob_and_score(self, sources: torch.Tensor,
                           sigma) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(log_prob, Tweedie's score (D(x) - x) / sigma_eff**2 with D the `estimate`)."""
        sources = sources.detach()
        sigma = expand_sigma(sigma, sources)
        latents = self.best_latents(self.search(sources))
        estimate, ratio = self.estimate(sources, latents, sigma)
        width = self.effective_sigma(sigma)
        log_prob = (noise_log_likelihood(sources, width) + ratio
                    + self.log_prior(latents.f0, latents.gain)).float()
        return log_prob, (estimate - sources) / width.pow(2)[..., None]

    def score(self, sources: torch.Tensor, sigma) -> torch.Tensor:
        return self.log_prob_and_score(sources, sigma)[1]

    @torch.no_grad()
    def denoise(self, noisy: torch.Tensor, sigma) -> torch.Tensor:
        """The projection G_k(z*(x)) (the posterior mean near z* for the exact toy priors)."""
        latents = self.best_latents(self.search(noisy))
        return self.estimate(noisy, latents, expand_sigma(sigma, noisy))[0]

    def sample(self, n: int, length: int, sigma=None, temperature: float = 1.0,
               generator: torch.Generator | None = None, progress=None) -> torch.Tensor:
        """Latents drawn from the learnt prior given that the class sounds (f0 and gain
        log-uniform), rendered; sigma adds noise of that level."""
        uniform = torch.rand(3, n, len(self.sources), generator=generator, dtype=torch.float64)
        low, high, gain_low, gain_high = (bound.double() for bound in self.bounds())
        f0 = torch.exp(torch.log(low) + uniform[0] * torch.log(high / low))
        gain_high = torch.where(torch.isfinite(gain_high), gain_high, torch.ones_like(gain_high))
        gain_low = gain_low.clamp_min(1e-6 * gain_high)
        gain = torch.exp(torch.log(gain_low) + uniform[1] * torch.log(gain_high / gain_low))
        with torch.no_grad():
            signals = self.render(f0, uniform[2], gain.float(), length)
        if sigma:
            signals = signals + float(sigma) * temperature * torch.randn(
                signals.shape, generator=generator)
        return signals

    def receptive_field(self) -> int:
        return self.segment_length

    @torch.no_grad()
    def prepare(self, clean: torch.Tensor) -> None:
        """Data-dependent start: each table becomes the average period of a batch of its solos
        (every voiced crop folded by phase at its encoded f0 and theta, divided by its gain),
        so gradient steps start from the right shape instead of a cosine.

        Args:
            clean: (batch, n_sources, time) solo crops.
        """
        if self.arch.exact:
            return
        clean = clean.to(self.device)
        latents = self.best_latents(self.search(clean, learnt=False))
        bins = self.arch.bins
        voiced = (clean.pow(2).mean(-1).sqrt() > SILENT_RMS).float()
        sums, counts = fold_by_phase(clean / latents.gain.clamp_min(1e-6)[..., None],
                                     latents.f0[..., None], bins, self.sample_rate)
        shift = torch.round(latents.phase * bins).long()  # (B, N): the fold starts at theta
        index = (torch.arange(bins, device=clean.device) - shift[..., None]) % bins
        sums = torch.gather(sums[..., 0, :], -1, index) * voiced[..., None]
        counts = torch.gather(counts[..., 0, :], -1, index) * voiced[..., None]
        total, seen = sums.sum(0), counts.sum(0)  # (N, bins)
        average = fill_circular(total / seen.clamp_min(1.0), seen > 0)
        keep = seen.sum(-1) > 0
        self.tables[keep] = average[keep].to(self.tables)

    def forward(self, f0: torch.Tensor, phase: torch.Tensor, gain: torch.Tensor,
                length: int) -> torch.Tensor:
        """The decoder (what DDP wraps): `render` with the tables as parameters."""
        return self.render(f0, phase, gain, length)

    def training_loss(self, model: nn.Module, clean: torch.Tensor, generator: torch.Generator,
                      config: TrainConfig) -> torch.Tensor:
        """Autoencode solo crops: waveform error / energy plus the multi-resolution STFT term,
        over crops that are not silent; updates the latent ranges and the noise floor."""
        clean = clean.to(self.device)
        rms = clean.pow(2).mean(-1).sqrt()  # (B, N)
        voiced = rms > SILENT_RMS
        latents = self.best_latents(self.search(clean, learnt=False))
        gain = latents.gain.where(voiced, torch.zeros_like(latents.gain))
        reconstruction = model(latents.f0, latents.phase, gain.float(), clean.shape[-1])
        weight = voiced.float()
        error = (reconstruction - clean).pow(2).mean(-1) / rms.pow(2).clamp_min(SILENT_RMS ** 2)
        loss = (error * weight).sum() / weight.sum().clamp_min(1.0)
        if self.arch.spectral_weight > 0 and bool(voiced.any()):
            loss = loss + self.arch.spectral_weight * multi_resolution_stft_loss(
                reconstruction[voiced], clean[voiced])
        self._update_ranges(latents.f0.float(), rms, voiced, (reconstruction - clean).detach())
        return loss

    @torch.no_grad()
    def _update_ranges(self, f0: torch.Tensor, rms: torch.Tensor, voiced: torch.Tensor,
                       error: torch.Tensor) -> None:
        """Widen each source's f0 and gain ranges to what this batch's voiced crops hold (with
        a margin of RANGE_MARGIN), and track the decoder's RMS error (noise floor)."""
        for k in range(len(self.sources)):
            seen = voiced[:, k]
            if not bool(seen.any()):
                continue
            for buffer, values in ((self.f0_range, f0[seen, k]), (self.gain_range, rms[seen, k])):
                buffer[k, 0] = torch.minimum(buffer[k, 0], values.min() * (1 - RANGE_MARGIN))
                buffer[k, 1] = torch.maximum(buffer[k, 1], values.max() * (1 + RANGE_MARGIN))
            floor = error[seen, k].pow(2).mean().sqrt()
            self.noise_floor[k] = 0.9 * self.noise_floor[k] + 0.1 * floor

    @torch.no_grad()
    def validation_scores(self, sources: torch.Tensor) -> list[float]:
        """SI-SDR (dB) of each source's held-out solos rebuilt through encoder and decoder."""
        from priorsep.metrics import si_sdr

        totals = torch.zeros(sources.shape[1], dtype=torch.float64)
        for chunk in sources.split(8):
            projected, _ = self.project(chunk.to(self.device))
            totals += si_sdr(projected.cpu(), chunk).double().sum(0)
        return (totals / sources.shape[0]).tolist()

    def summary(self) -> str:
        arch = self.arch
        kind = "exact toy generator" if arch.exact else f"learnt wavetables of {arch.bins} bins"
        return (f"{kind}, latent (f0, phase, gain) per {arch.segment_length}-sample segment, "
                f"f0 search from {arch.peaks} spectral peaks")
