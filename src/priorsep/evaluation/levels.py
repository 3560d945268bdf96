"""The priors under evaluation and their noise levels.

Three kinds of model:
- a **sigma-conditional** model (trained with `sigma_max > 0`): one set of weights, given the
  noise level as an input; its levels are a list of sigmas (default: the thesis' five);
- **per-level** checkpoints: a folder of `sigma-<value>/` model folders as written by
  per-level fine-tuning (`finetune_levels`, BASIS' protocol), one model per level; the folder itself
  may also hold the clean model (config.json at its top);
- a **clean** model (`sigma_max == 0`): no noise levels, so the noise sections are skipped.

The "clean" sections (cross-likelihood, Gaussian noise, samples, separation) use the base priors
at `base_sigma`: 0 for a clean or sigma-conditional model, and for per-level checkpoints without
a clean model at the top, the lowest level (the report says so).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from priorsep.errors import UsageError
from priorsep.nn.levels import NearestLevelPriors, PriorLevel
from priorsep.nn.prior import CombinedPriors, SourcePriors
from priorsep.storage import CONFIG_NAME, SeparationSettings, level_folders, read_separation

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
            "trained_sigma_range": [config.sigma_min, config.sigma_max],
            "base_sigma": self.base_sigma,
            "levels": [level.sigma for level in self.levels],
            "parameters": sum(p.numel() for p in self.priors.parameters()),
            "notes": list(self.notes),
        }


def load_priors_under_test(model_id: str, device: torch.device | str,
                           sigmas: tuple[float, ...] = THESIS_SIGMAS,
                           notify: Callable[[str], None] | None = None) -> PriorsUnderTest:
    """Load a model (any id `priorsep.api.load_pretrained` takes, or a per-level folder).

    Args:
        sigmas: the levels of a sigma-conditional model (ignored for the other kinds).
        notify: receives notices (levels outside the trained range, a cache fallback).

    Raises:
        UsageError: the per-level models disagree on sources or sample rate.
    """
    from priorsep.api import load_model_id, load_pretrained

    folders = level_folders(Path(model_id).expanduser())
    if folders:
        levels = [PriorLevel(sigma, load_pretrained(str(folder), device, notify)[0])
                  for sigma, folder in folders]
        first = levels[0].priors.config
        for level in levels[1:]:
            config = level.priors.config
            if (config.sources, config.sample_rate) != (first.sources, first.sample_rate):
                raise UsageError(f"{model_id}: the level models differ in sources or sample rate")
        notes = [f"per-level checkpoints: {', '.join(folder.name for _, folder in folders)}"]
        if (Path(model_id).expanduser() / CONFIG_NAME).is_file():
            priors, info = load_pretrained(model_id, device, notify)
            base_sigma = 0.0
        else:
            priors, info = levels[0].priors, {}
            base_sigma = levels[0].sigma
            notes.append(f"no clean model at the top of the folder: the clean sections use the "
                         f"lowest level, sigma = {base_sigma:g}")
        settings = SeparationSettings()
        if (Path(model_id).expanduser() / CONFIG_NAME).is_file():
            settings = read_separation(Path(model_id).expanduser())
        return PriorsUnderTest(model_id, "per-level", priors, base_sigma, levels, info, notes,
                               settings)

    priors, info, _, settings = load_model_id(model_id, device, notify)
    config = priors.config
    if config.sigma_max <= 0:
        return PriorsUnderTest(model_id, "clean", priors, 0.0, [], info,
                               ["clean priors (no noise levels): noise sections skipped"],
                               settings)
    notes = []
    outside = [s for s in sigmas if not config.sigma_min <= s <= config.sigma_max]
    if outside:
        message = (f"noise level(s) {', '.join(f'{s:g}' for s in outside)} outside the range the "
                   f"model was trained on [{config.sigma_min:g}, {config.sigma_max:g}]")
        notes.append(message)
        if notify is not None:
            notify(message)
    levels = [PriorLevel(float(sigma), priors) for sigma in sorted(sigmas)]
    return PriorsUnderTest(model_id, "sigma-conditional", priors, 0.0, levels, info, notes,
                           settings)
