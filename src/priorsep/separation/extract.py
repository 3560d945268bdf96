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

Why: the symmetric samplers move all slots together, and every slot goes first for the loudest
component of the mix; with exact priors they still commit to the wrong sources. Ordering by
evidence lets the class that explains the most claim its source before the others look.

Reference: the measurements behind this method are in docs/benchmarks.md ("Separation that
assigns"); greedy source extraction as in matching pursuit (Mallat & Zhang 1993).
"""

from __future__ import annotations

import dataclasses
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
    the beam held fewer)."""

    sources: torch.Tensor
    order: torch.Tensor
    evidence: torch.Tensor
    beam_evidence: torch.Tensor


def extraction_steps(n_sources: int, config: ExtractConfig) -> int:
    """Proposal rounds per batch: one per stage, one per source and sweep."""
    return n_sources * (1 + config.sweeps)


@torch.no_grad()
def assign_by_evidence(priors: SourcePrior, mix: torch.Tensor, mixing: Mixing,
                       config: ExtractConfig, progress: CountCallback | None = None
                       ) -> ExtractionResult:
    """The beam search over assignment orders (no sweeps, no refinement).

    Args:
        mix: (batch, time).

    Returns:
        An `ExtractionResult`.
    """
    batch, time = mix.shape
    n_sources, beam = len(priors.sources), config.beam
    weights = mixing.weights(n_sources, mix.dtype, mix.device)
    total_steps = extraction_steps(n_sources, config)
    sources = mix.new_zeros(batch, beam, n_sources, time)
    assigned = torch.zeros(batch, beam, n_sources, dtype=torch.bool, device=mix.device)
    order = torch.full((batch, beam, n_sources), -1, dtype=torch.long, device=mix.device)
    stage_evidence = mix.new_zeros(batch, beam, n_sources)
    total = torch.full((batch, beam), -torch.inf, dtype=torch.float64, device=mix.device)
    total[:, 0] = 0.0  # one empty assignment to start from
    for stage in range(n_sources):
        residual = (mix[:, None] - mixing(sources)).flatten(0, 1)
        evidence = torch.full((batch * beam, n_sources), -torch.inf, dtype=torch.float64,
                              device=mix.device)
        proposed = mix.new_zeros(batch * beam, n_sources, time)
        # only the classes each path has not assigned yet are searched: one call per set
        for rows, classes in _open_classes(torch.isfinite(total).flatten(),
                                           assigned.flatten(0, 1), stage, config.order):
            proposal = priors.propose(residual[rows], config.sigma, weights, classes=classes)
            evidence[rows[:, None], classes] = proposal.evidence.double()[:, classes]
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


def _open_classes(alive: torch.Tensor, assigned: torch.Tensor, stage: int,
                  order: str) -> list[tuple[torch.Tensor, list[int]]]:
    """The live paths grouped by the classes still open to them: [(rows, classes)].

    Args:
        alive: (paths,) bool; assigned: (paths, n_sources) bool.
        order: "evidence" (any unassigned class may go) or "fixed" (only class `stage`).
    """
    groups: dict[tuple[int, ...], list[int]] = {}
    rows = alive.nonzero().flatten()
    for row, flags in zip(rows.tolist(), assigned[rows].tolist()):  # one copy to the host
        classes = ((stage,) if order == "fixed" else
                   tuple(k for k, taken in enumerate(flags) if not taken))
        groups.setdefault(classes, []).append(row)
    return [(torch.tensor(rows, device=alive.device), list(classes))
            for classes, rows in groups.items()]


@torch.no_grad()
def sweep(priors: SourcePrior, mix: torch.Tensor, mixing: Mixing, sources: torch.Tensor,
          order: torch.Tensor, sigma: float) -> torch.Tensor:
    """One pass that re-extracts every source from the mix less all the others, in the order
    the sources were assigned (each update seen by the next).

    Args:
        mix: (batch, time); sources: (batch, n_sources, time); order: (batch, n_sources).

    Returns:
        (batch, n_sources, time).
    """
    sources = sources.clone()
    n_sources = sources.shape[1]
    weights = mixing.weights(n_sources, mix.dtype, mix.device)
    rows = torch.arange(mix.shape[0], device=mix.device)
    for stage in range(n_sources):
        chosen = order[:, stage]  # (B,)
        own = sources[rows, chosen] * weights[chosen][:, None]
        residual = mix - mixing(sources) + own
        classes = sorted(set(chosen.tolist()))
        proposal = priors.propose(residual, sigma, weights, classes=classes)
        sources[rows, chosen] = proposal.sources[rows, chosen].to(sources)
    return sources


def extract_separate(priors: SourcePrior, mix: torch.Tensor, mixing: Mixing,
                     config: ExtractConfig, langevin: LangevinConfig | None = None,
                     diffusion: DiffusionConfig | None = None,
                     progress: CountCallback | None = None) -> ExtractionResult:
    """Separate by staged extraction, sweeps, then the optional refinement.

    Args:
        mix: (batch, time), time a multiple of the priors' `length_multiple`.
        langevin, diffusion: the samplers' settings for `config.refine`.
        progress: called with (proposal rounds done, total) (the refinement not counted).

    Returns:
        An `ExtractionResult` (its `sources` refined).
    """
    n_sources = len(priors.sources)
    result = assign_by_evidence(priors, mix, mixing, config, progress)
    sources = result.sources
    for index in range(config.sweeps):
        sources = sweep(priors, mix, mixing, sources, result.order, config.sweep_sigma)
        if progress is not None:
            progress(n_sources * (2 + index), extraction_steps(n_sources, config))
    if config.refine == "langevin":
        from priorsep.separation.langevin import langevin_separate

        sources = langevin_separate(priors, mix, mixing, langevin or LangevinConfig(),
                                    initial=sources).sources
    elif config.refine == "diffusion":
        from priorsep.separation.diffusion import diffusion_separate

        sources = diffusion_separate(priors, mix, mixing, diffusion or DiffusionConfig(),
                                     initial=sources).sources
    return dataclasses.replace(result, sources=sources)
