"""The priors under evaluation and their noise levels.

Three kinds of model:
- a **sigma-conditional** model (`trained_sigma_max > 0`): one set of weights, given the
  noise level as an input; its levels are a list of sigmas (default: the thesis' five);
- **per-level** checkpoints: a folder of `sigma-<value>/` model folders as written by
  per-level fine-tuning (`finetune_levels`, BASIS' protocol), one model per level; the folder itself
  may also hold the clean model (config.json at its top);
- a **clean** model (`trained_sigma_max == 0`): no noise levels, so the noise sections are skipped.

The "clean" sections (cross-likelihood, Gaussian noise, samples, separation) use the base priors
at `base_sigma`: 0 for a clean or sigma-conditional model, and for per-level checkpoints without
a clean model at the top, the lowest level (the report says so).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from priorsep.nn.levels import NearestLevelPriors, PriorLevel
from priorsep.nn.prior import CombinedPriors, SourcePriors
from priorsep.storage import (
    CONFIG_NAME,
    SeparationSettings,
    load_model,
)

THESIS_SIGMAS: tuple[float, ...] = (0.01, 0.027, 0.077, 0.129, 0.359)
"""The noise levels of the thesis and of BASIS' fine-tuning."""

Priors = SourcePriors | CombinedPriors


@dataclass
class PriorsUnderTest:
    """What the evaluation runs on.

    Attributes:
        model_id: as given.
        kind: "sigma-conditional", "per-level" or "clean".
        priors: the base priors, used by the clean sections at condition `base_sigma`.
        base_sigma: the noise level the clean sections give the priors.
        levels: the noise levels, lowest first (empty for a clean model).
        info: the base model's card info (may hold tuned "separation" settings).
        notes: caveats for the report.
    """

    model_id: str
    kind: str
    priors: Priors
    base_sigma: float
    levels: list[PriorLevel]
    info: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    settings: SeparationSettings = field(default_factory=SeparationSettings)
    """The separation settings stored with the (base) model."""

    @property
    def sources(self) -> tuple[str, ...]:
        return self.priors.sources

    def separation_priors(self) -> Priors | NearestLevelPriors:
        """What the sampler uses: the per-level models switched by sigma, else the base priors."""
        if self.kind == "per-level":
            return NearestLevelPriors(self.levels).eval()
        return self.priors

    def describe(self) -> dict[str, Any]:
        """The model part of the report."""
        config = self.priors.config
        return {
            "id": self.model_id,
            "kind": self.kind,
            "family": config.family,
            "sources": list(config.sources),
            "sample_rate": config.sample_rate,
            "mixing": config.mixing,
            "trained_sigma_range": [config.trained_sigma_min, config.trained_sigma_max],
            "base_sigma": self.base_sigma,
            "levels": [level.sigma for level in self.levels],
            "parameters": sum(p.numel() for p in self.priors.parameters()),
            "notes": list(self.notes),
        }


def load_priors_under_test(model_id: str, device: torch.device | str,
                           sigmas: tuple[float, ...] = THESIS_SIGMAS,
                           notify: Callable[[str], None] | None = None) -> PriorsUnderTest:
    """Load a model: any id `priorsep.api.load_pretrained` takes, per-level ones included.

    Args:
        sigmas: the levels of a sigma-conditional model (ignored for the other kinds).
        notify: receives notices (levels outside the trained range, a cache fallback).

    Raises:
        UsageError: the per-level models disagree on sources, sample rate or mixing.
    """
    from priorsep import hub
    from priorsep.api import load_resolved_model

    resolved = hub.resolve_model(model_id, notify=notify)
    priors, info, _, settings = load_resolved_model(resolved, device)
    if isinstance(priors, NearestLevelPriors):  # the resolver checked the levels agree
        levels = [PriorLevel(sigma, part) for sigma, part
                  in zip(priors.sigmas, priors.levels, strict=True)]
        notes = [f"per-level checkpoints: sigma = "
                 f"{', '.join(f'{level.sigma:g}' for level in levels)}"]
        top = resolved.top
        if top is not None and (top / CONFIG_NAME).is_file():  # a clean model at the top
            base, base_sigma = load_model(top, device), 0.0
        else:
            base, base_sigma = levels[0].priors, levels[0].sigma
            notes.append(f"no clean model at the top of the folder: the clean sections use the "
                         f"lowest level, sigma = {base_sigma:g}")
        return PriorsUnderTest(model_id, "per-level", base, base_sigma, levels, info, notes,
                               settings)

    config = priors.config
    if config.trained_sigma_max <= 0:
        return PriorsUnderTest(model_id, "clean", priors, 0.0, [], info,
                               ["clean priors (no noise levels): noise sections skipped"],
                               settings)
    notes = []
    outside = [s for s in sigmas if not config.trained_sigma_min <= s <= config.trained_sigma_max]
    if outside:
        message = (f"noise level(s) {', '.join(f'{s:g}' for s in outside)} outside the range the "
                   f"model was trained on [{config.trained_sigma_min:g}, "
                   f"{config.trained_sigma_max:g}]")
        notes.append(message)
        if notify is not None:
            notify(message)
    levels = [PriorLevel(float(sigma), priors) for sigma in sorted(sigmas)]
    return PriorsUnderTest(model_id, "sigma-conditional", priors, 0.0, levels, info, notes,
                           settings)
