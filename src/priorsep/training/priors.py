"""Training source priors: `priorsep train` (any family) and `finetune-noise` (one
σ-conditional model, or one model per level as BASIS does).

Each family brings its loss (`SourcePrior.training_loss`) and validation figure; the loop is
`priorsep.training.loop.optimise`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from priorsep.config import FieldError, ModelConfig, TrainConfig
from priorsep.errors import UsageError
from priorsep.nn.interface import SourcePrior
from priorsep.nn.registry import build_priors
from priorsep.storage import WEIGHTS_NAME, level_folder_name, save_model, write_levels
from priorsep.training.loop import (
    CHECKPOINT_NAME,
    SourceData,
    TrainingStep,
    distributed_rank,
    fresh_checkpoint_path,
    optimise,
    rank_device,
)


def training_card(info: dict[str, Any] | None, train_config: TrainConfig, step: int,
                  world: int, elapsed: float, device: torch.device) -> dict[str, Any]:
    """`info` with the "training" lines of a finished run added."""
    card = dict(info or {})
    training = dict(card.get("training", {}))
    training.update({
        "steps": step,
        "batch size": f"{train_config.batch_size} x {world} rank(s)",
        "crop length": train_config.crop_length,
        "learning rate": f"{train_config.lr} (x{train_config.lr_decay}, "
                         f"{train_config.lr_decay_times} times)",
        "noise levels": f"[{train_config.draw_sigma_min}, {train_config.draw_sigma_max}]",
        "training time (s)": round(elapsed, 1),
        "device": str(device),
    })
    card["training"] = training
    return card


def train(
    model_config: ModelConfig,
    train_config: TrainConfig,
    data: SourceData,
    out_dir: str | Path,
    *,
    resume: bool = False,
    device: str | torch.device = "cpu",
    init_state: dict[str, torch.Tensor] | None = None,
    validation: torch.Tensor | None = None,
    info: dict[str, Any] | None = None,
    on_progress: Callable[[TrainingStep], None] | None = None,
) -> SourcePrior:
    """Train the priors of `model_config` on `data` and write the model folder `out_dir`.

    Args:
        init_state: weights to start from (fine-tuning); ignored when resuming.
        validation: (n, n_sources, length) held-out sources, scored every `eval_every` steps
            and at the end (the figure goes into the model card).
        info: extra lines for the model card (dataset name, ...).

    Returns:
        The trained priors (on `device`, eval mode).

    Raises:
        TrainingInterrupted: after Ctrl-C, once the checkpoint is written.
        TrainingDiverged: the loss or the weights became NaN or infinite (nothing of them is
            saved).
    """
    out_dir = Path(out_dir)
    if train_config.draw_sigma_max > 0:
        model_config = dataclasses.replace(
            model_config,
            trained_sigma_min=min(train_config.draw_sigma_min,
                                  model_config.trained_sigma_min or math.inf),
            trained_sigma_max=max(train_config.draw_sigma_max, model_config.trained_sigma_max))
    rank, world = distributed_rank()
    device = rank_device(device, world)
    if tuple(data.sources) != model_config.sources:
        raise UsageError(f"data has sources {data.sources}, model has {model_config.sources}")
    if train_config.crop_length % model_config.length_multiple:
        raise FieldError("crop_length",
                         f"must be a multiple of {model_config.length_multiple}")
    if train_config.score_weight > 0 and world > 1:
        raise UsageError("score matching differentiates the gradient, which DDP does not "
                         "support: train with one process")
    checkpoint_path = fresh_checkpoint_path(out_dir, resume)

    torch.manual_seed(train_config.seed)
    priors = build_priors(model_config).to(device)
    generator = torch.Generator().manual_seed(train_config.seed * 1000 + rank)
    length = train_config.crop_length

    def prepare() -> None:
        if init_state is not None:
            priors.load_state_dict(init_state)
        priors.prepare(data.sample(generator, priors.prepare_batch or train_config.batch_size,
                                   length))

    def batch_loss(model: torch.nn.Module, generator: torch.Generator) -> tuple[torch.Tensor, int]:
        clean = data.sample(generator, train_config.batch_size, length)
        return priors.training_loss(model, clean, generator, train_config), clean.numel()

    def validate() -> list[float]:
        return priors.validation_scores(validation)

    step, elapsed = optimise(
        priors, train_config, checkpoint_path, batch_loss,
        configs={"model_config": model_config, "train_config": train_config},
        resume=resume, generator=generator, rank=rank, world=world, prepare=prepare,
        validate=validate if validation is not None else None, on_progress=on_progress)

    if rank == 0:
        card = training_card(info, train_config, step, world, elapsed, device)
        if validation is not None:
            scores = priors.validation_scores(validation)
            card.setdefault("evaluation", {})[priors.validation_name] = {
                source: round(score, 3) for source, score in zip(model_config.sources, scores)}
        save_model(priors, out_dir, card)
    if world > 1:
        dist.barrier()
    return priors


def finetune_levels(
    priors: SourcePrior,
    sigmas: list[float],
    train_config: TrainConfig,
    data: SourceData,
    out_dir: str | Path,
    **kwargs: Any,
) -> list[Path]:
    """The BASIS protocol: fine-tune one model per noise level, serially, each from the last.

    Level i is written to `out_dir/sigma-<value>/` and starts from level i-1 (the first from
    `priors`). A level whose folder already holds a model is skipped, so `resume=True`
    continues an interrupted sequence.

    Reference: Jayaram & Thickstun 2020, "Source Separation with Deep Generative Priors"
    (BASIS), arXiv 2002.07942.

    Returns:
        The level folders, in the order of `sigmas`.
    """
    out_dir = Path(out_dir)
    resume = kwargs.pop("resume", False)
    folders = []
    state = priors.state_dict()
    for sigma in sigmas:
        folder = out_dir / level_folder_name(sigma)
        folders.append(folder)
        if (folder / WEIGHTS_NAME).is_file() and not (folder / CHECKPOINT_NAME).exists():
            from priorsep.storage import load_model

            state = load_model(folder).state_dict()
            continue
        level_config = dataclasses.replace(train_config, draw_sigma_min=sigma, draw_sigma_max=sigma,
                                           clean_fraction=0.0)
        level_resume = resume and (folder / CHECKPOINT_NAME).exists()
        trained = train(priors.config, level_config, data, folder, init_state=state,
                        resume=level_resume, **kwargs)
        (folder / CHECKPOINT_NAME).unlink(missing_ok=True)
        state = trained.state_dict()
    write_levels(out_dir, list(sigmas))
    return folders
