"""Staged extraction by evidence: the sources are taken out of the mix one at a time, the
class whose prior explains the residual best going first.

For a linear mix m = sum_k a_k s_k, the residual after some sources are assigned is
r = m - sum_assigned a_j s_j. At every stage each unassigned class k proposes its source from r
(`SourcePrior.propose`: it sees r / a_k, the other sources as noise of level sigma) and says how
well it explains it (its evidence, log p_k,sigma(r / a_k) or the family's stated proxy). A beam
keeps the `beam` best partial assignments by total evidence; after N stages the best full one
wins. Then `sweeps` passes re-extract each source from the mix less all the others (at the
lower level `sweep_sigma`), and optionally the model's Langevin or diffusion sampler refines
the result from there.

Level and presence: every segment is first scaled to a fixed RMS (`ExtractConfig.level`; the
scale is undone on the sources), so the sigmas mean the same at any input loudness; the
priors' gain ranges are wide, so each source may sit at its own level. Where a family's prior
gives silence a probability (`Proposal.silence`), every sweep keeps a class only if the
evidence that it sounds beats the evidence that it is silent (the price of its latent
included) and it explains most of the mix less the others (`ExtractConfig.presence`), and
writes silence in its slot otherwise: a class that is not in the mix takes nothing.

Why: the symmetric samplers move all slots together, and every slot goes first for the loudest
component of the mix; with exact priors they still commit to the wrong sources. Ordering by
evidence lets the class that explains the most claim its source before the others look.

Reference: the measurements behind this method are in docs/benchmarks.md ("Separation that
assigns"); greedy source extraction as in matching pursuit (Mallat & Zhang 1993).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from priorsep.config import DiffusionConfig, ExtractConfig, LangevinConfig
from priorsep.nn.interface import SourcePrior
from priorsep.separation import CountCallback
from priorsep.separation.mixing import Mixing


@dataclass(frozen=True)
class ExtractionResult:
    """`sources` (batch, n_sources, time); `order` (batch, n_sources): the class assigned at
    each stage; `evidence` (batch, n_sources): each stage's evidence of the winning path;
    `beam_evidence` (batch, beam): the total evidence of every kept full assignment (-inf where
    the beam held fewer); `present` (batch, n_sources): False for a class known absent or
    found silent by the last sweep."""

    sources: torch.Tensor
    order: torch.Tensor
    evidence: torch.Tensor
    beam_evidence: torch.Tensor
    present: torch.Tensor | None = None


QUIET_RMS = 1e-5
"""A segment quieter than this (-100 dB full scale) is scaled as if it were this loud: it is
not raised to the extraction's level, so its noise is not taken for sources."""


def extraction_steps(n_sources: int, config: ExtractConfig) -> int:
    """Proposal rounds per batch: one per stage, one per source and sweep."""
    return n_sources * (1 + config.sweeps)


@torch.no_grad()
def assign_by_evidence(priors: SourcePrior, mix: torch.Tensor, mixing: Mixing,
                       config: ExtractConfig, progress: CountCallback | None = None,
                       classes: list[int] | None = None) -> ExtractionResult:
    """The beam search over assignment orders (no sweeps, no refinement).

    Args:
        mix: (batch, time).
        classes: the classes that may be in the mix (default: all); the others are known
            absent and keep silent slots.

    Returns:
        An `ExtractionResult` (`order` and `evidence` have one column per stage, one stage
        per class in `classes`).
    """
    batch, time = mix.shape
    n_sources, beam = len(priors.sources), config.beam
    classes = list(range(n_sources)) if classes is None else list(classes)
    n_stages = len(classes)
    weights = mixing.weights(n_sources, mix.dtype, mix.device)
    total_steps = extraction_steps(n_stages, config)
    sources = mix.new_zeros(batch, beam, n_sources, time)
    assigned = torch.ones(batch, beam, n_sources, dtype=torch.bool, device=mix.device)
    assigned[..., classes] = False  # the absent classes count as assigned (silent) from the start
    order = torch.full((batch, beam, n_stages), -1, dtype=torch.long, device=mix.device)
    stage_evidence = mix.new_zeros(batch, beam, n_stages)
    total = torch.full((batch, beam), -torch.inf, dtype=torch.float64, device=mix.device)
    total[:, 0] = 0.0  # one empty assignment to start from
    for stage in range(n_stages):
        residual = (mix[:, None] - mixing(sources)).flatten(0, 1)
        evidence = torch.full((batch * beam, n_sources), -torch.inf, dtype=torch.float64,
                              device=mix.device)
        proposed = mix.new_zeros(batch * beam, n_sources, time)
        # only the classes each path has not assigned yet are searched: one call per set
        for rows, open_ in _open_classes(torch.isfinite(total).flatten(),
                                         assigned.flatten(0, 1), classes[stage], config.order):
            proposal = priors.propose(residual[rows], config.sigma, weights, classes=open_)
            evidence[rows[:, None], open_] = proposal.evidence.double()[:, open_]
            proposed[rows] = proposal.sources.to(mix)
        evidence = evidence.view(batch, beam, n_sources)
        children = (total[..., None] + evidence).flatten(1)  # (B, beam * N)
        kept, index = children.topk(beam, dim=-1)
        parent, chosen = index // n_sources, index % n_sources  # (B, beam)
        rows = torch.arange(batch, device=mix.device)[:, None]
        sources, assigned = sources[rows, parent].clone(), assigned[rows, parent].clone()
        order, stage_evidence = order[rows, parent].clone(), stage_evidence[rows, parent].clone()
        winners = proposed.view(batch, beam, n_sources, time)[rows, parent, chosen]
        sources[rows, torch.arange(beam)[None], chosen] = winners
        assigned[rows, torch.arange(beam)[None], chosen] = True
        order[..., stage] = chosen
        stage_evidence[..., stage] = evidence[rows, parent, chosen].to(mix)
        total = kept
        if progress is not None:
            progress(stage + 1, total_steps)
    best = total.argmax(dim=-1)
    rows = torch.arange(batch, device=mix.device)
    return ExtractionResult(sources[rows, best], order[rows, best], stage_evidence[rows, best],
                            total)


def _open_classes(alive: torch.Tensor, assigned: torch.Tensor, fixed: int,
                  order: str) -> list[tuple[torch.Tensor, list[int]]]:
    """The live paths grouped by the classes still open to them: [(rows, classes)].

    Args:
        alive: (paths,) bool; assigned: (paths, n_sources) bool.
        order: "evidence" (any unassigned class may go) or "fixed" (only class `fixed`).
    """
    groups: dict[tuple[int, ...], list[int]] = {}
    rows = alive.nonzero().flatten()
    for row, flags in zip(rows.tolist(), assigned[rows].tolist()):  # one copy to the host
        classes = ((fixed,) if order == "fixed" else
                   tuple(k for k, taken in enumerate(flags) if not taken))
        groups.setdefault(classes, []).append(row)
    return [(torch.tensor(rows, device=alive.device), list(classes))
            for classes, rows in groups.items()]


@torch.no_grad()
def sweep(priors: SourcePrior, mix: torch.Tensor, mixing: Mixing, sources: torch.Tensor,
          order: torch.Tensor, sigma: float, silence: bool = False, presence: float = 0.0,
          presence_db: float = -math.inf) -> tuple[torch.Tensor, torch.Tensor]:
    """One pass that re-extracts every source from the mix less all the others, in the order
    the sources were assigned (each update seen by the next).

    Args:
        mix: (batch, time); sources: (batch, n_sources, time); order: (batch, n_sources).
        silence: where the family gives the evidence of silence, a class whose evidence of
            sounding is lower gets a silent slot, and so does one that holds less than
            `presence_db` of the mix's energy and explains less than `presence` of the mix
            less the others.

    Returns:
        (sources (batch, n_sources, time), present (batch, n_sources) bool).
    """
    sources = sources.clone()
    n_sources = sources.shape[1]
    weights = mixing.weights(n_sources, mix.dtype, mix.device)
    rows = torch.arange(mix.shape[0], device=mix.device)
    present = assigned(order, n_sources)  # the classes not in `order` are known absent
    for stage in range(order.shape[1]):
        chosen = order[:, stage]  # (B,)
        own = sources[rows, chosen] * weights[chosen][:, None]
        residual = mix - mixing(sources) + own
        classes = sorted(set(chosen.tolist()))
        proposal = priors.propose(residual, sigma, weights, classes=classes)
        update = proposal.sources[rows, chosen].to(sources)
        if silence and proposal.silence is not None:
            contribution = update * weights[chosen][:, None]
            seen = residual.double().pow(2).sum(-1)
            left = (residual - contribution).double().pow(2).sum(-1)
            loud = contribution.double().pow(2).sum(-1) >= (
                10 ** (presence_db / 10) * mix.double().pow(2).sum(-1))
            never = torch.isneginf(proposal.silence[rows, chosen])  # a prior without silence
            sounds = never | ((proposal.evidence[rows, chosen] > proposal.silence[rows, chosen])
                              & (loud | (seen - left >= presence * seen)) & (seen > 0))
            present[rows, chosen] = sounds
            update = update * sounds[:, None]
        sources[rows, chosen] = update
    return sources, present


def assigned(order: torch.Tensor, n_sources: int) -> torch.Tensor:
    """(batch, n_sources) bool: the classes that `order` (batch, n_stages) assigns."""
    flags = torch.zeros(order.shape[0], n_sources, dtype=torch.bool, device=order.device)
    flags[torch.arange(order.shape[0], device=order.device)[:, None], order] = True
    return flags


def segment_scale(mix: torch.Tensor, level: float) -> torch.Tensor:
    """The factor that brings each segment's mix to RMS `level` is 1 / this, (batch, 1)
    (ones with `level` 0: the mix as it comes)."""
    if level <= 0:
        return mix.new_ones(mix.shape[0], 1)
    rms = mix.double().pow(2).mean(-1, keepdim=True).sqrt()
    return (rms.clamp_min(QUIET_RMS) / level).to(mix.dtype)


def extract_separate(priors: SourcePrior, mix: torch.Tensor, mixing: Mixing,
                     config: ExtractConfig, langevin: LangevinConfig | None = None,
                     diffusion: DiffusionConfig | None = None,
                     progress: CountCallback | None = None,
                     classes: list[int] | None = None) -> ExtractionResult:
    """Separate by staged extraction, sweeps, then the optional refinement.

    Args:
        mix: (batch, time), time a multiple of the priors' `length_multiple`.
        langevin, diffusion: the samplers' settings for `config.refine`.
        progress: called with (proposal rounds done, total) (the refinement not counted).
        classes: the classes that may be in the mix (default: all); the others are known
            absent: silent slots, never searched.

    Returns:
        An `ExtractionResult` (its `sources` refined).
    """
    scale = segment_scale(mix, config.level)
    mix = mix / scale
    result = assign_by_evidence(priors, mix, mixing, config, progress, classes)
    n_stages = result.order.shape[1]
    sources = result.sources
    present = assigned(result.order, len(priors.sources))
    for index in range(config.sweeps):
        sources, present = sweep(priors, mix, mixing, sources, result.order, config.sweep_sigma,
                                 config.silence, config.presence, config.presence_db)
        if progress is not None:
            progress(n_stages * (2 + index), extraction_steps(n_stages, config))
    if config.refine != "none":
        sources = refine(priors, mix, mixing, sources, config.refine, langevin, diffusion,
                         classes)
    return dataclasses.replace(result, sources=sources * scale[..., None], present=present)


def on_classes(priors: SourcePrior, mixing: Mixing, classes: list[int],
               separate: Callable[[SourcePrior, Mixing], torch.Tensor]) -> torch.Tensor:
    """`separate(priors, mixing)` run on the priors of `classes` alone (a combination of them,
    under their own mixing weights); its (batch, len(classes), time) sources returned in the
    slots of `classes` of (batch, n_sources, time), silence in the others."""
    from priorsep.nn.prior import CombinedPriors, SourceRef

    classes = sorted(classes)
    subset = CombinedPriors([priors], [SourceRef(priors.sources[k], 0, priors.sources[k])
                                       for k in classes])
    weights = mixing.weights(len(priors.sources), torch.float64)[classes]
    estimates = separate(subset, Mixing("gains", tuple(weights.tolist())))
    full = estimates.new_zeros(estimates.shape[0], len(priors.sources), estimates.shape[-1])
    full[:, classes] = estimates
    return full


def refine(priors: SourcePrior, mix: torch.Tensor, mixing: Mixing, sources: torch.Tensor,
           sampler: str, langevin: LangevinConfig | None, diffusion: DiffusionConfig | None,
           classes: list[int] | None) -> torch.Tensor:
    """The sampler `sampler` started from `sources`; with `classes`, over those classes alone
    (`on_classes`), the others kept silent."""
    def run(run_priors: SourcePrior, run_mixing: Mixing) -> torch.Tensor:
        start = sources if classes is None else sources[:, sorted(classes)]
        if sampler == "langevin":
            from priorsep.separation.langevin import langevin_separate

            return langevin_separate(run_priors, mix, run_mixing, langevin or LangevinConfig(),
                                     initial=start).sources
        from priorsep.separation.diffusion import diffusion_separate

        return diffusion_separate(run_priors, mix, run_mixing, diffusion or DiffusionConfig(),
                                  initial=start).sources

    return run(priors, mixing) if classes is None else on_classes(priors, mixing, classes, run)
