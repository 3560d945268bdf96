"""The training loop every trainer shares: optimise a module step by step with checkpoints.

Checkpoints are written atomically every `checkpoint_every` steps and on Ctrl-C; `resume=True`
continues bit for bit (weights, Adam state, step, every random generator). Under `torchrun` the
loop runs data-parallel (DDP: gloo on CPU, NCCL on CUDA); each rank draws its own batches and
rank 0 writes the files. A non-finite loss or weights stop the run before anything broken is
saved.
"""

from __future__ import annotations

import dataclasses
import json
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

from priorsep.config import ModelConfig, TrainConfig
from priorsep.errors import (
    CheckpointError,
    CheckpointExistsError,
    TrainingDiverged,
    TrainingInterrupted,
)
from priorsep.files import atomic_write

CHECKPOINT_NAME = "checkpoint.pt"


class SourceData(Protocol):
    """Anything that draws (batch, n_sources, length) solo-source batches from a generator."""

    sources: tuple[str, ...]

    def sample(self, generator: torch.Generator, batch: int, length: int) -> torch.Tensor: ...


@dataclass
class TrainingStep:
    """What the loop reports after every step (the CLI renders it)."""

    step: int
    total: int
    loss: float
    """The family's training loss, averaged over sources: the negative log-likelihood in nats
    per sample for the density families, the EDM-weighted denoising loss for score priors, the
    waveform + MR-STFT reconstruction loss for wavetables, the divergence per bin for the
    spectral families."""
    samples_per_second: float
    """Audio samples (all sources) processed per second, all ranks together."""
    lr: float
    validation: list[float] | None = None
    """Per-source validation figure on evaluation steps, the family's own
    (`SourcePrior.validation_name`: a log-likelihood in nats/sample, a Tweedie gain or a
    reconstruction SI-SDR in dB)."""


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


def _check_resumable(saved: dict, configs: dict[str, dict], path: Path) -> None:
    """Refuse a checkpoint made with other configurations; only `steps` may change.

    `configs` holds each configuration as `dataclasses.asdict`; both sides are compared as
    JSON values, so a tuple and the list a checkpoint may hold for it are equal.
    """
    for key, config in configs.items():
        old, new = json.loads(json.dumps(saved.get(key))), json.loads(json.dumps(config))
        if key == "model_config" and old is not None:
            # a checkpoint from before a field was added reads with that field's default
            try:
                old = json.loads(json.dumps(dataclasses.asdict(ModelConfig.from_dict(old))))
            except (ValueError, TypeError):
                pass
        if key == "train_config" and old is not None:  # older checkpoints: renamed keys
            old = {TrainConfig.RENAMED.get(name, name): value for name, value in old.items()}
        if key == "train_config":
            if old is None or {**old, "steps": new["steps"]} != new:
                raise CheckpointError(f"{path}: was made with other training options; "
                                      "only the number of steps may change when resuming")
        elif old != new:
            what = key.removesuffix("_config")
            raise CheckpointError(f"{path}: was made with another {what} configuration")


def optimise(
    module: torch.nn.Module,
    train_config: TrainConfig,
    checkpoint_path: Path,
    batch_loss: Callable[[torch.nn.Module, torch.Generator], tuple[torch.Tensor, int]],
    *,
    configs: dict[str, Any],
    resume: bool,
    generator: torch.Generator,
    rank: int = 0,
    world: int = 1,
    prepare: Callable[[], None] | None = None,
    validate: Callable[[], list[float]] | None = None,
    on_progress: Callable[[TrainingStep], None] | None = None,
) -> tuple[int, float]:
    """The loop shared by every trainer: Adam, step decay, clipping, checkpoints, resume, Ctrl-C.

    Args:
        module: the trainable module (its trainable parameters are optimised; its state is
            checkpointed).
        batch_loss: (module or its DDP wrapper, data generator) -> (loss, audio samples in
            the batch); draws its own batch from the generator.
        configs: configuration dataclasses stored in the checkpoint and checked on `resume`
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
    configs = {key: dataclasses.asdict(config) for key, config in configs.items()}
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
        _check_resumable(saved, configs, checkpoint_path)
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
                **configs,
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
                on_progress(TrainingStep(step, train_config.steps, loss.item(),
                                     n_samples * world / duration, lr, scores))
            stop_now = _gather(stop.requested, world)
            if any(stop_now):
                save_checkpoint()
                raise TrainingInterrupted(
                    f"stopped at step {step}; checkpoint saved to {checkpoint_path}")
            if step % train_config.checkpoint_every == 0 or step == train_config.steps:
                save_checkpoint()
    module.eval()
    return step, elapsed


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
        raise CheckpointExistsError(checkpoint_path)
    return checkpoint_path


