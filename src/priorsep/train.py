"""One training loop for `priorsep train` and `priorsep finetune-noise`.

Maximises the exact log-likelihood of solo sources (optionally noised, x + sigma * eps, with
sigma given to the prior as its condition). Checkpoints are written atomically every
`checkpoint_every` steps and on Ctrl-C; `resume=True` continues bit for bit (weights, Adam state,
step, every random generator). Under `torchrun` the loop runs data-parallel (DDP: gloo on CPU,
NCCL on CUDA); each rank draws its own batches and rank 0 writes the files.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from priorsep.config import FieldError, ModelConfig, TrainConfig
from priorsep.errors import CheckpointError, TrainingDiverged, TrainingInterrupted, UsageError
from priorsep.files import atomic_write
from priorsep.nn.interface import SourcePrior
from priorsep.nn.registry import build_priors
from priorsep.storage import save_model, write_levels

CHECKPOINT_NAME = "checkpoint.pt"


class SourceData(Protocol):
    """Anything that draws (batch, n_sources, length) solo-source batches from a generator."""

    sources: tuple[str, ...]

    def sample(self, generator: torch.Generator, batch: int, length: int) -> torch.Tensor: ...


@dataclass
class Progress:
    """What the loop reports after every step (the CLI renders it)."""

    step: int
    total: int
    loss: float
    """Negative log-likelihood in nats per sample, averaged over sources."""
    samples_per_second: float
    """Audio samples (all sources) processed per second, all ranks together."""
    lr: float
    validation: list[float] | None = None
    """Per-source validation log-likelihood (nats/sample), on evaluation steps."""


def learning_rate(config: TrainConfig, step: int) -> float:
    """Step decay: multiplied by `lr_decay` `lr_decay_times` times, evenly over the run."""
    stage = min(step * (config.lr_decay_times + 1) // config.steps, config.lr_decay_times)
    return config.lr * config.lr_decay**stage


class _StopFlag:
    """First Ctrl-C asks the loop to checkpoint and stop; a second one interrupts at once."""

    def __init__(self) -> None:
        self.requested = False
        self.previous: Any = None

    def __enter__(self) -> _StopFlag:
        try:
            self.previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not in the main thread: leave signals alone
            self.previous = None
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def distributed_rank() -> tuple[int, int]:
    """(rank, world size); starts the process group under torchrun (gloo on CPU, NCCL on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and os.environ.get(
            "PRIORSEP_DDP_BACKEND", "") != "gloo" else "gloo"
        dist.init_process_group(backend)
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _gather(value: Any, world: int) -> list[Any]:
    if world == 1:
        return [value]
    values: list[Any] = [None] * world
    dist.all_gather_object(values, value)
    return values


def _check_resumable(saved: dict, identity: dict[str, dict], path: Path) -> None:
    """Refuse a checkpoint made with other configurations; only `steps` may change.

    `identity` holds each configuration as `dataclasses.asdict`; both sides are compared as
    JSON values, so a tuple and the list a checkpoint may hold for it are equal.
    """
    for key, config in identity.items():
        old, new = json.loads(json.dumps(saved.get(key))), json.loads(json.dumps(config))
        if key == "model_config" and old is not None:
            # a checkpoint from before a field was added reads with that field's default
            try:
                old = json.loads(json.dumps(dataclasses.asdict(ModelConfig.from_dict(old))))
            except (ValueError, TypeError):
                pass
        if key == "train_config":
            if old is None or {**old, "steps": new["steps"]} != new:
                raise CheckpointError(f"{path}: was made with other training options; "
                                      "only --steps may change on --resume")
        elif old != new:
            what = key.removesuffix("_config")
            raise CheckpointError(f"{path}: was made with another {what} configuration")


def optimise(
    module: torch.nn.Module,
    train_config: TrainConfig,
    checkpoint_path: Path,
    batch_loss: Callable[[torch.nn.Module, torch.Generator], tuple[torch.Tensor, int]],
    *,
    identity: dict[str, Any],
    resume: bool,
    generator: torch.Generator,
    rank: int = 0,
    world: int = 1,
    prepare: Callable[[], None] | None = None,
    validate: Callable[[], list[float]] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> tuple[int, float]:
    """The loop shared by every trainer: Adam, step decay, clipping, checkpoints, resume, Ctrl-C.

    Args:
        module: the trainable module (its trainable parameters are optimised; its state is
            checkpointed).
        batch_loss: (module or its DDP wrapper, data generator) -> (loss, audio samples in
            the batch); draws its own batch from the generator.
        identity: configuration dataclasses stored in the checkpoint and checked on `resume`
            ("train_config" may differ in its `steps` only).
        generator: the data generator of this rank (its state is checkpointed per rank).
        prepare: runs once before a fresh start (e.g. ActNorm's data-dependent initialisation).
        validate: per-source validation figures, every `eval_every` steps and at the end.

    Returns:
        (steps done, seconds spent training, all sessions together).

    Raises:
        TrainingInterrupted: after Ctrl-C, once the checkpoint is written.
        TrainingDiverged: the loss or the weights became NaN or infinite (nothing of them is
            saved).
    """
    identity = {key: dataclasses.asdict(config) for key, config in identity.items()}
    parameters = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(parameters, lr=train_config.lr)
    step, elapsed = 0, 0.0
    if resume:
        if not checkpoint_path.is_file():
            raise CheckpointError(f"{checkpoint_path}: nothing to resume")
        try:
            saved = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
        except Exception as error:  # torch raises many types for a damaged file
            raise CheckpointError(f"{checkpoint_path}: unreadable ({error})") from None
        _check_resumable(saved, identity, checkpoint_path)
        module.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        generator.set_state(saved["data_rng"][rank])
        torch.set_rng_state(saved["torch_rng"])
        step, elapsed = saved["step"], saved["elapsed"]
    elif prepare is not None:
        prepare()
    model = DistributedDataParallel(module) if world > 1 else module

    def save_checkpoint() -> None:
        if not all(bool(torch.isfinite(p.detach()).all()) for p in parameters):
            raise TrainingDiverged(f"the weights became NaN or infinite by step {step}; the "
                                   "checkpoint before it is kept; lower the learning rate")
        states = _gather(generator.get_state(), world)
        if rank == 0:
            state = {
                "model": module.state_dict(),
                "optimizer": optimizer.state_dict(),
                "data_rng": states,
                "torch_rng": torch.get_rng_state(),
                "step": step,
                "elapsed": elapsed,
                **identity,
            }
            atomic_write(checkpoint_path, lambda tmp: torch.save(state, tmp))
        if world > 1:
            dist.barrier()

    module.train()
    with _StopFlag() as stop:
        while step < train_config.steps:
            started = time.perf_counter()
            lr = learning_rate(train_config, step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss, n_samples = batch_loss(model, generator)
            if not all(_gather(bool(torch.isfinite(loss.detach()).all()), world)):
                raise TrainingDiverged(
                    f"the training loss became {loss.item():g} at step {step + 1}; nothing of "
                    f"this run after step {step} is saved; lower the learning rate "
                    f"(it is {lr:g})")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if train_config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(parameters, train_config.grad_clip)
            optimizer.step()
            step += 1
            duration = time.perf_counter() - started
            elapsed += duration
            scores = None
            if validate is not None and train_config.eval_every and (
                    step % train_config.eval_every == 0 or step == train_config.steps):
                scores = validate()
            if on_progress is not None and rank == 0:
                on_progress(Progress(step, train_config.steps, loss.item(),
                                     n_samples * world / duration, lr, scores))
            stop_now = _gather(stop.requested, world)
            if any(stop_now):
                save_checkpoint()
                raise TrainingInterrupted(
                    f"stopped at step {step}; checkpoint saved to {checkpoint_path}, "
                    "continue with --resume")
            if step % train_config.checkpoint_every == 0 or step == train_config.steps:
                save_checkpoint()
    module.eval()
    return step, elapsed


def training_card(info: dict[str, Any] | None, train_config: TrainConfig, step: int,
                  world: int, elapsed: float, device: torch.device) -> dict[str, Any]:
    """`info` with the "training" lines of a finished run added."""
    card = dict(info or {})
    training = dict(card.get("training", {}))
    training.update({
        "steps": step,
        "batch size": f"{train_config.batch_size} x {world} rank(s)",
        "frame length": train_config.frame_length,
        "learning rate": f"{train_config.lr} (x{train_config.lr_decay}, "
                         f"{train_config.lr_decay_times} times)",
        "noise levels": f"[{train_config.sigma_min}, {train_config.sigma_max}]",
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
    on_progress: Callable[[Progress], None] | None = None,
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
    if train_config.sigma_max > 0:
        model_config = dataclasses.replace(
            model_config,
            sigma_min=min(train_config.sigma_min, model_config.sigma_min or math.inf),
            sigma_max=max(train_config.sigma_max, model_config.sigma_max))
    rank, world = distributed_rank()
    device = rank_device(device, world)
    if tuple(data.sources) != model_config.sources:
        raise UsageError(f"data has sources {data.sources}, model has {model_config.sources}")
    if train_config.frame_length % model_config.frame_multiple:
        raise FieldError("frame_length",
                         f"must be a multiple of {model_config.frame_multiple}")
    if train_config.score_weight > 0 and world > 1:
        raise UsageError("score matching differentiates the gradient, which DDP does not "
                         "support: train with one process")
    checkpoint_path = fresh_checkpoint_path(out_dir, resume)

    torch.manual_seed(train_config.seed)
    priors = build_priors(model_config).to(device)
    generator = torch.Generator().manual_seed(train_config.seed * 1000 + rank)
    length = train_config.frame_length

    def prepare() -> None:
        if init_state is not None:
            priors.load_state_dict(init_state)
        priors.prepare(data.sample(generator, train_config.batch_size, length))

    def batch_loss(model: torch.nn.Module, generator: torch.Generator) -> tuple[torch.Tensor, int]:
        clean = data.sample(generator, train_config.batch_size, length)
        return priors.training_loss(model, clean, generator, train_config), clean.numel()

    def validate() -> list[float]:
        return priors.validation_scores(validation)

    step, elapsed = optimise(
        priors, train_config, checkpoint_path, batch_loss,
        identity={"model_config": model_config, "train_config": train_config},
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


def rank_device(device: str | torch.device, world: int) -> torch.device:
    """`device`, or under torchrun on CUDA, this rank's GPU."""
    device = torch.device(device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def fresh_checkpoint_path(out_dir: Path, resume: bool) -> Path:
    """`out_dir/checkpoint.pt`; refuses to start afresh over an existing one."""
    checkpoint_path = out_dir / CHECKPOINT_NAME
    if not resume and checkpoint_path.exists():
        raise UsageError(f"{checkpoint_path} exists: pass --resume to continue it, "
                         "or choose another --out")
    return checkpoint_path


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
        folder = out_dir / f"sigma-{sigma:g}"
        folders.append(folder)
        if (folder / "model.safetensors").is_file() and not (folder / CHECKPOINT_NAME).exists():
            from priorsep.storage import load_model

            state = load_model(folder).state_dict()
            continue
        level_config = dataclasses.replace(train_config, sigma_min=sigma, sigma_max=sigma,
                                           clean_fraction=0.0)
        level_resume = resume and (folder / CHECKPOINT_NAME).exists()
        trained = train(priors.config, level_config, data, folder, init_state=state,
                        resume=level_resume, **kwargs)
        (folder / CHECKPOINT_NAME).unlink(missing_ok=True)
        state = trained.state_dict()
    write_levels(out_dir, list(sigmas))
    return folders
