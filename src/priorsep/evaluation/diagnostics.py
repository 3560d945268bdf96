"""Score diagnostics that work for every prior family (they need only `score` / `denoise`).

- Tweedie gain: how much each source's own prior denoises its held-out data at a noise level,
  10 log10(||noise||**2 / ||D(x + noise) - x||**2) dB (0 dB: no better than the noisy input).
- Cross-denoising: the score analogue of the cross-likelihood table. Data of source j, noised
  at sigma, denoised by the prior of source k: a class-discriminative set of priors has its
  largest gain on the diagonal in every row.
- Sample statistics: loudness (RMS) and spectral concentration (the share of energy in the
  strongest `peaks` bins of the segment's spectrum) of unconditional samples, against real
  data. Priors whose samples are too quiet or too noisy take the wrong share of a mix.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from priorsep.nn.interface import SourcePrior, tweedie_gain


@torch.no_grad()
def tweedie_table(priors: SourcePrior, clean: torch.Tensor, sigmas: list[float],
                  seed: int = 0) -> list[dict]:
    """Tweedie gain per noise level and source.

    Args:
        clean: (n, n_sources, time) held-out sources in the priors' order.

    Returns:
        [{"sigma": s, "gain_db": [one per source]}] in the order of `sigmas`.
    """
    return [{"sigma": sigma,
             "gain_db": tweedie_gain(priors, clean, sigma, torch.Generator().manual_seed(seed))}
            for sigma in sigmas]


@torch.no_grad()
def cross_denoising(priors: SourcePrior, clean: torch.Tensor, sigma: float, seed: int = 0,
                    batch_size: int = 8) -> torch.Tensor:
    """Tweedie gain (dB) of every source's data under every prior.

    Args:
        clean: (n, n_sources, time).

    Returns:
        (n_sources, n_sources): entry [j, k] is source j's data denoised by prior k.
    """
    n_sources = clean.shape[1]
    table = torch.zeros(n_sources, n_sources, dtype=torch.float64)
    for j in range(n_sources):
        generator = torch.Generator().manual_seed(seed)
        noise_energy = torch.zeros(n_sources, dtype=torch.float64)
        error_energy = torch.zeros(n_sources, dtype=torch.float64)
        for chunk in clean[:, j:j + 1].split(batch_size):
            # every prior sees source j's signal with the same noise: (b, 1, T) -> (b, N, T)
            data = chunk.expand(-1, n_sources, -1)
            noise = sigma * torch.randn(chunk.shape, generator=generator).expand_as(data)
            denoised = priors.denoise((data + noise).to(priors.device), sigma).cpu()
            noise_energy += noise.double().pow(2).sum(dim=(0, 2))
            error_energy += (denoised - data).double().pow(2).sum(dim=(0, 2))
        table[j] = 10 * torch.log10(noise_energy / error_energy.clamp_min(1e-20))
    return table


def spectral_concentration(signals: torch.Tensor, peaks: int = 8) -> torch.Tensor:
    """Share of each signal's energy in its `peaks` strongest FFT bins.

    Args:
        signals: (..., time).

    Returns:
        (...,) in [0, 1].
    """
    power = torch.fft.rfft(signals.double()).abs().pow(2)
    strongest = power.topk(min(peaks, power.shape[-1]), dim=-1).values.sum(dim=-1)
    return strongest / power.sum(dim=-1).clamp_min(1e-20)


def sample_statistics(samples: torch.Tensor, real: torch.Tensor, peaks: int = 8) -> dict:
    """Loudness and spectral concentration of samples against real data, per source.

    Args:
        samples, real: (n, n_sources, time), the same time.

    Returns:
        {"rms": {"samples": [...], "real": [...]}, "concentration": {...}} with one mean per
        source.
    """
    def rms(x: torch.Tensor) -> list[float]:
        return x.double().pow(2).mean(dim=-1).sqrt().mean(dim=0).tolist()

    def concentration(x: torch.Tensor) -> list[float]:
        return spectral_concentration(x, peaks).mean(dim=0).tolist()

    return {"rms": {"samples": rms(samples), "real": rms(real)},
            "concentration": {"samples": concentration(samples), "real": concentration(real)},
            "peaks": peaks}


@torch.no_grad()
def mix_response(priors: SourcePrior, clean: torch.Tensor, mixing, sigma: float,
                 seed: int = 0, batch_size: int = 8) -> torch.Tensor:
    """What each prior keeps of a mix: the separation sampler's first question.

    Every slot is given the least-norm sources that mix to the mix (the mix itself for the
    mean), noised at sigma, and denoised by its prior; the result of prior k is regressed on the
    true sources. Entry [k, j] is the least-squares gain of source j in prior k's output (the
    mix holds each source at its mixing weight a_j, e.g. 1/N). Priors that separate take their
    own source up to full level ([k, k] near 1) and drop the others ([k, j] near 0); priors that
    keep every source at its level in the mix leave the sampler at the mix, a fixed point of
    the constrained dynamics.

    Args:
        clean: (n, n_sources, time) aligned held-out sources (they make the mixes).
        mixing: the `Mixing` of the model.

    Returns:
        (n_sources, n_sources) gains, averaged over the examples.
    """
    n_sources = clean.shape[1]
    generator = torch.Generator().manual_seed(seed)
    total = torch.zeros(n_sources, n_sources, dtype=torch.float64)
    for chunk in clean.split(batch_size):
        start = mixing.least_norm_sources(mixing(chunk), n_sources)
        noisy = start + sigma * torch.randn(start.shape, generator=generator)
        denoised = priors.denoise(noisy.to(priors.device), sigma).cpu()
        total += source_gains(denoised, chunk).sum(dim=0)
    return total / clean.shape[0]


def source_gains(estimates: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Gain of true source j in estimate k, <e_k, s_j> / <s_j, s_j> (the toy sources are nearly
    orthogonal, so the single regressions are close to the joint one).

    Args:
        estimates: (batch, n_sources, time); truth: (batch, n_sources, time).

    Returns:
        (batch, n_sources, n_sources) float64: [b, k, j].
    """
    truth = truth.double()
    inner = torch.einsum("bkt,bjt->bkj", estimates.double(), truth)
    return inner / truth.pow(2).sum(dim=-1)[:, None, :].clamp_min(1e-12)


@dataclass(frozen=True)
class FullScaleResponse:
    """`gains` (n_sources, n_sources): [k, j] the mean gain of true source j in prior k's
    extraction; `top` (n_sources,): the mean over examples of the largest |gain| in prior k's
    row; `rest` (n_sources,): the mean of the sum of the other |gains| (exclusive: top ~1,
    rest ~0, whichever source it took)."""

    gains: torch.Tensor
    top: torch.Tensor
    rest: torch.Tensor


@torch.no_grad()
def full_scale_response(priors: SourcePrior, clean: torch.Tensor, mixing, sigma: float,
                        batch_size: int = 8) -> FullScaleResponse:
    """What each prior extracts from the whole mix: staged extraction's first question.

    Prior k is given the mix as its residual (`SourcePrior.propose`: it sees m / a_k, every
    source at its own level for the mean) at level sigma; its proposal is regressed on the true
    sources. An exclusive prior returns one source at about 1 and the others at about 0 (not
    always its own: the loudest one of a shape it can explain, which is why extraction orders
    the classes by evidence); a prior that keeps every source returns them all.

    Args:
        clean: (n, n_sources, time) aligned held-out sources (they make the mixes).

    Returns:
        A `FullScaleResponse`.
    """
    n_sources = clean.shape[1]
    weights = mixing.weights(n_sources)
    gains = []
    for chunk in clean.split(batch_size):
        proposal = priors.propose(mixing(chunk).to(priors.device), sigma,
                                  weights.to(priors.device))
        gains.append(source_gains(proposal.sources.cpu(), chunk))
    gains = torch.cat(gains)  # (n, k, j)
    top = gains.abs().max(dim=-1).values
    return FullScaleResponse(gains.mean(0), top.mean(0), (gains.abs().sum(-1) - top).mean(0))


def assignment_accuracy(estimates: torch.Tensor, truth: torch.Tensor) -> float:
    """Share of slots whose best-matching true source (largest |correlation|) is their own.

    Args:
        estimates, truth: (batch, n_sources, time).
    """
    estimates = estimates.double() - estimates.double().mean(-1, keepdim=True)
    truth = truth.double() - truth.double().mean(-1, keepdim=True)
    inner = torch.einsum("bkt,bjt->bkj", estimates, truth)
    norms = (estimates.norm(dim=-1)[:, :, None] * truth.norm(dim=-1)[:, None, :]).clamp_min(1e-12)
    best = (inner / norms).abs().argmax(dim=-1)  # (batch, n_sources)
    own = torch.arange(truth.shape[1])[None]
    return float((best == own).double().mean())
