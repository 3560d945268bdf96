"""`priorsep finetune-noise`: clean priors fine-tuned on noisy sources, one sigma-conditional
model or one model per noise level."""

from __future__ import annotations

import dataclasses
import math
from typing import Annotated, Any

import typer

from priorsep.cli.app import (
    DatasetOption,
    DeviceOption,
    OutOption,
    QuietOption,
    ResumeOption,
    RootOption,
    TrainReporter,
    app,
    console,
    notice,
    option_error,
    reports_errors,
)
from priorsep.cli.data_summary import StrictOption, show_summary
from priorsep.cli.train_options import TRAIN_FLAGS, training_options
from priorsep.config import TrainConfig
from priorsep.errors import UsageError


@app.command("finetune-noise")
@reports_errors
@training_options(steps=1000, lr=5e-4)
def finetune_noise(
    model: Annotated[str, typer.Argument(help="Model id of clean (or earlier) priors.")],
    out: OutOption,
    dataset: DatasetOption = "toy",
    root: RootOption = None,
    sigma_min: Annotated[float, typer.Option(help="Lowest noise level (continuous mode).")
                         ] = 0.01,
    sigma_max: Annotated[float, typer.Option(help="Highest noise level (continuous mode).")
                         ] = 1.0,
    clean_fraction: Annotated[float, typer.Option(
        help="Share of clean examples (continuous mode).")] = 0.1,
    score_weight: Annotated[float, typer.Option(
        help="Add denoising score matching with this weight to the loss: trains the gradient "
             "separation follows (about 3x the cost per step; single process).")] = 0.0,
    sigmas: Annotated[str | None, typer.Option(
        help="Comma-separated levels: one model per level, fine-tuned serially (BASIS). "
             "Without it, one sigma-conditional model covers [--sigma-min, --sigma-max].")
    ] = None,
    train_options: dict[str, Any] | None = None,
    strict: StrictOption = False,
    resume: ResumeOption = False,
    device: DeviceOption = "auto",
    quiet: QuietOption = False,
) -> None:
    """Fine-tune priors on noisy sources x + sigma * eps, so their gradients guide Langevin."""

    from priorsep.api import load_pretrained
    from priorsep.data.datasets import training_data
    from priorsep.devices import resolve_device
    from priorsep.nn.levels import NearestLevelPriors
    from priorsep.nn.prior import CombinedPriors
    from priorsep.training import finetune_levels
    from priorsep.training import train as run_training

    try:
        levels = [float(v) for v in sigmas.split(",")] if sigmas else None
    except ValueError:
        raise UsageError(f"--sigmas {sigmas}: expected comma-separated numbers") from None
    try:
        train_config = TrainConfig(**train_options, draw_sigma_min=sigma_min,
                                   draw_sigma_max=sigma_max, clean_fraction=clean_fraction,
                                   score_weight=score_weight)
    except ValueError as error:
        raise option_error(error, TRAIN_FLAGS) from None
    if levels and any(not math.isfinite(level) or level <= 0 for level in levels):
        raise UsageError("--sigmas must be positive finite numbers")
    priors, base_info = load_pretrained(model, notify=notice)
    if isinstance(priors, (CombinedPriors, NearestLevelPriors)):
        raise UsageError("finetune-noise needs one model, not a combination of several or "
                         "a folder of per-level models")
    config = priors.config
    data, validation, info = training_data(
        dataset, root, ",".join(config.sources) if dataset in ("folder", "chorales") else None,
        config.sample_rate, train_config.crop_length, notice, min_sources=1, strict=strict,
        on_summary=show_summary(quiet, strict))
    info["training"]["fine-tuned from"] = str(model)
    if "training" in base_info:
        info["base training"] = base_info["training"]
    options = dict(resume=resume, device=resolve_device(device), validation=validation,
                   info=info)
    steps, every = train_config.steps, train_config.checkpoint_every
    if levels:
        with TrainReporter(steps * len(levels), quiet, every, config.sources) as rep:
            offset = {"steps": 0}

            def report(progress):
                rep(dataclasses.replace(progress, step=offset["steps"] + progress.step,
                                        total=steps * len(levels)))
                if progress.step == progress.total:
                    offset["steps"] += progress.total

            folders = finetune_levels(priors, levels, train_config, data, out,
                                      on_progress=report, **options)
        if not quiet:
            console.print(f"wrote {len(folders)} levels to {out}: "
                          + ", ".join(folder.name for folder in folders))
        return
    with TrainReporter(steps, quiet, every, config.sources) as reporter:
        run_training(config, train_config, data, out, init_state=priors.state_dict(),
                     on_progress=reporter, **options)
    if not quiet:
        console.print(f"wrote {out} (sigma-conditional, sigma in [{sigma_min}, {sigma_max}])")
