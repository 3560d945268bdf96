"""Samples from the priors at temperature tau: a flow's inverse applied to Gaussian latents, or
a score prior's diffusion sampler started from scaled noise.

A temperature scales the standard normal latent (z ~ N(0, tau² I)); tau < 1 trades variety for
typical, cleaner signals (Kingma & Dhariwal 2018, Glow, arXiv 1807.03039). Every temperature
uses the same latent draw, scaled, so the rows of the waveform plot differ by tau only. Each
sample's RMS and spectral concentration (share of energy in its 8 strongest bins) are reported,
and, for density families, its log-likelihood.

Reference: the thesis this package starts from (M. Frank, University of Amsterdam), Fig. 14.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from priorsep.audio import write_audio
from priorsep.evaluation.diagnostics import spectral_concentration
from priorsep.evaluation.levels import PriorsUnderTest
from priorsep.nn.interface import validation_log_likelihood

TEMPERATURES: tuple[float, ...] = (0.5, 0.8, 1.0)


def sample_file_name(source: str, temperature: float) -> str:
    """Where a sample goes, relative to the report folder."""
    return f"samples/{source}-t{temperature:g}.wav"


def draw_samples(model: PriorsUnderTest, seconds: float, temperatures: tuple[float, ...],
                 seed: int, progress: Callable[[int, int], None] | None = None
                 ) -> dict[float, torch.Tensor]:
    """One sample per source and temperature, at the base noise level.

    Returns:
        {temperature: (n_sources, length)} on the CPU, length = seconds at the model's rate
        rounded down to the length multiple.
    """
    config = model.priors.config
    length = int(seconds * config.sample_rate)
    drawn = {}
    for index, temperature in enumerate(temperatures):
        generator = torch.Generator().manual_seed(seed)  # the same latent at every temperature
        within = None
        if progress is not None:  # samples done within this temperature, in thousandths

            def within(done: int, total: int, index: int = index) -> None:
                progress(index * 1000 + done * 1000 // max(total, 1), len(temperatures) * 1000)

        drawn[temperature] = model.priors.sample(1, length, model.base_sigma, temperature,
                                                 generator, progress=within)[0].cpu()
        if progress is not None:  # families that draw in one pass report nothing themselves
            progress((index + 1) * 1000, len(temperatures) * 1000)
    return drawn


def samples_section(model: PriorsUnderTest, drawn: dict[float, torch.Tensor],
                    with_audio: bool = True) -> dict:
    """Describe the samples; with `with_audio` the report lists the wav files
    `write_samples` writes.

    Args:
        drawn: {temperature: (n_sources, length)} from `draw_samples`.

    Returns:
        {"sigma", "length", "seconds", "temperatures", "files",
         "stats": {temperature: {source: {"rms", "peak", "concentration", "log_likelihood",
         "finite"}}}}; the log-likelihood is under the sample's own prior, in nats/sample
         (None for a family without a log-density).
    """
    config = model.priors.config
    stats = {}
    length = 0
    for temperature, waves in drawn.items():
        length = waves.shape[-1]
        finite = torch.nan_to_num(waves, nan=0.0, posinf=0.0, neginf=0.0)
        own = (validation_log_likelihood(model.priors, finite[None], model.base_sigma)
               if model.priors.has_log_prob else [None] * len(model.sources))
        concentration = spectral_concentration(finite)
        stats[f"{temperature:g}"] = {
            source: {"rms": float(finite[k].pow(2).mean().sqrt()),
                     "peak": float(finite[k].abs().max()),
                     "concentration": float(concentration[k]),
                     "log_likelihood": own[k],
                     "finite": bool(torch.isfinite(waves[k]).all())}
            for k, source in enumerate(model.sources)}
    files = [sample_file_name(source, temperature) for temperature in drawn
             for source in model.sources] if with_audio else []
    return {
        "sigma": model.base_sigma,
        "length": length,
        "seconds": length / config.sample_rate,
        "temperatures": list(drawn),
        "files": files,
        "stats": stats,
    }


def write_samples(drawn: dict[float, torch.Tensor], sources: tuple[str, ...], sample_rate: int,
                  out_dir: Path) -> list[Path]:
    """Write every sample as a 32-bit float wav (exact values: peaks above 1 are kept, and clip
    in most players; non-finite values become 0).

    Returns:
        The files written.
    """
    written = []
    for temperature, waves in drawn.items():
        finite = torch.nan_to_num(waves, nan=0.0, posinf=0.0, neginf=0.0)
        for k, source in enumerate(sources):
            path = out_dir / sample_file_name(source, temperature)
            write_audio(path, finite[k:k + 1], sample_rate, "float32")
            written.append(path)
    return written
