"""The separation experiment: SI-SDR and SDR per source on held-out mixes, with anchors.

Each held-out example's sources are mixed with the model's own mixing function and separated by
`priorsep.api.Separator` (Langevin posterior sampling, long audio through the overlap-add of
`priorsep.separation.apply.separate_long`). Two anchors frame the figures:
- lower, the **mix**: the mix itself as every source's estimate (for the mean mixing; for other
  mixings the least-norm sources that mix to it, `Mixing.least_norm_sources`);
- upper, the **oracle**: the true sources sent through the same segmentation, padding and
  cross-fade as the separator's estimates. The overlap-add is linear and works on each source
  channel alone, so a segment function returning each segment's true sources is the same as
  running `separate_long` on the true sources themselves, one source per row, with the identity
  as segment function; any loss there is the path's, not the sampler's.

For MUSDB18 the SiSEC figure is added when `museval` (the `eval` extra) can be imported: BSSEval
v4 SDR, median over 1 s frames per mix, then median over mixes (mono, at the model's rate).

Reference: Le Roux et al. 2019 (SI-SDR), arXiv 1811.02508; Stöter et al. 2018, "The 2018 Signal
Separation Evaluation Campaign" (museval, BSSEval v4), arXiv 1804.06267.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from priorsep.api import Separator
from priorsep.evaluation.levels import PriorsUnderTest
from priorsep.metrics import sdr, si_sdr
from priorsep.separation.apply import separate_long

ESTIMATES = ("separated", "mix", "oracle")


def oracle_estimates(sources: torch.Tensor, separator: Separator) -> torch.Tensor:
    """The true sources through the separator's overlap-add path.

    Args:
        sources: (batch, n_sources, time).

    Returns:
        (batch, n_sources, time).
    """
    batch, n_sources, time = sources.shape
    rows = sources.reshape(batch * n_sources, time)  # one source per row: (B*N, T)
    rebuilt = separate_long(rows, lambda segments: segments[:, None, :], separator.segment_length,
                            separator.overlap, separator.priors.config.length_multiple,
                            separator.batch_size)  # (B*N, 1, T)
    return rebuilt.reshape(batch, n_sources, time)


def _summary(values: torch.Tensor, sources: tuple[str, ...]) -> dict:
    """values (batch, n_sources) -> {source: {"median", "mean"}} plus "all" over every entry."""
    columns = {source: values[:, k].tolist() for k, source in enumerate(sources)}
    columns["all"] = values.flatten().tolist()
    return {name: {"median": statistics.median(column), "mean": statistics.fmean(column)}
            for name, column in columns.items()}


def sisec_sdr(estimates: torch.Tensor, sources: torch.Tensor, window: int
              ) -> tuple[dict | None, str | None]:
    """SiSEC-style SDR with museval (BSSEval v4): per mix and source the median over frames of
    `window` samples, then per source the median over mixes.

    Args:
        estimates, sources: (batch, n_sources, time).

    Returns:
        ({source: median SDR}, None), or (None, why) when museval cannot be imported.
    """
    try:
        import museval  # the `eval` extra; its import also needs ffmpeg (through stempeg)
    except Exception as error:  # ImportError, or stempeg's RuntimeError without ffmpeg
        return None, (f"SiSEC SDR skipped: museval unavailable ({type(error).__name__}: "
                      f"{str(error).splitlines()[0] if str(error) else ''}); install "
                      "'priorsep[eval]' and ffmpeg")
    per_mix = []
    for estimate, reference in zip(estimates, sources):
        # museval wants (n_sources, time, channels)
        frame_sdr = museval.evaluate(reference.double().numpy()[..., None],
                                     estimate.double().numpy()[..., None],
                                     win=window, hop=window)[0]  # (n_sources, n_frames)
        per_mix.append(np.nanmedian(frame_sdr, axis=1))
    medians = np.nanmedian(np.stack(per_mix), axis=0)  # (n_sources,)
    return {"window": window, "median_sdr": medians.tolist()}, None


def separation_section(model: PriorsUnderTest, sources: torch.Tensor, max_steps: int | None,
                       seed: int, sisec: bool = False,
                       progress: Callable[[int, int], None] | None = None,
                       notify: Callable[[str], None] | None = None) -> dict:
    """Separate the mixes of `sources` and score every estimate against the truth.

    Args:
        sources: (batch, n_sources, time) aligned held-out sources; the mixes are made from them
            with the model's mixing function.
        max_steps: cap on the sampler's steps (diffusion steps, or Langevin steps in all;
            None: the model's stored settings).
        seed: the sampler's seed.
        sisec: also compute the SiSEC SDR with museval (MUSDB18).

    Returns:
        {"settings", "si_sdr" and "sdr": {estimate: {source: {"median", "mean"}}},
         "per_mix": {"si_sdr" and "sdr": {estimate: rows (mix) x columns (source)}},
         "sisec" (or None) and "sisec_note"}.
    """
    config = model.priors.config
    settings = model.settings
    separator = Separator(model.separation_priors(), settings, batch_size=sources.shape[0])
    model_steps = (separator.settings["diffusion"].steps if separator.method == "diffusion"
                   else separator.settings["langevin"].total_steps)
    separator.configure(steps=min(max_steps, model_steps) if max_steps else None, seed=seed)
    mixing = separator.mixing
    mixes = mixing(sources)  # (batch, time)
    separated = separator.separate_tensor(
        mixes, None if progress is None else lambda event: progress(event.done, event.total))
    estimates = {
        "separated": separated,
        "mix": mixing.least_norm_sources(mixes, len(model.sources)),
        "oracle": oracle_estimates(sources, separator),
    }
    scores = {name: {"si_sdr": si_sdr(estimate, sources), "sdr": sdr(estimate, sources)}
              for name, estimate in estimates.items()}
    result: dict[str, Any] = {
        "settings": {
            "mixes": sources.shape[0],
            "length": sources.shape[-1],
            "seconds": sources.shape[-1] / config.sample_rate,
            "mixing": config.mixing,
            "segment_length": separator.segment_length,
            "overlap": separator.overlap,
            "method": separator.method,
            "sampler": dataclasses.asdict(separator.settings[
                "diffusion" if separator.method == "diffusion" else "langevin"]),
            "steps_cap": max_steps,
            "model_steps": model_steps,
        },
    }
    for metric in ("si_sdr", "sdr"):
        result[metric] = {name: _summary(scores[name][metric], model.sources)
                          for name in ESTIMATES}
    result["per_mix"] = {metric: {name: scores[name][metric].tolist() for name in ESTIMATES}
                         for metric in ("si_sdr", "sdr")}
    result["sisec"], result["sisec_note"] = None, None
    if sisec:
        window = min(config.sample_rate, sources.shape[-1])
        sisec_result, why = sisec_sdr(separated, sources, window)
        if sisec_result is not None:
            sisec_result["median_sdr"] = dict(zip(model.sources, sisec_result["median_sdr"]))
        result["sisec"], result["sisec_note"] = sisec_result, why
        if why is not None and notify is not None:
            notify(why)
    return result
