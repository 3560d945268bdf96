"""Frozen dataclasses holding every hyperparameter, one per component.

Checkpoints and model folders store `dataclasses.asdict(config)`; `from_dict` rebuilds them,
ignoring nothing silently: unknown keys are an error so that a newer format is never misread.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


def from_dict(cls: type[T], values: dict[str, Any]) -> T:
    """Build dataclass `cls` from `values`, rejecting keys the class does not have."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(values) - names
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {', '.join(sorted(unknown))}")
    converted = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return cls(**converted)


@dataclass(frozen=True)
class FlowConfig:
    """Architecture of one FloWaveNet prior (Kim et al. 2019, arXiv 1811.02155).

    Each of `n_blocks` blocks squeezes (time/2, channels*2) then applies `n_flows` flows of
    ActNorm -> affine coupling -> flip. Every coupling runs a non-causal WaveNet of `n_layers`
    dilated layers (dilations 1..2**(n_layers-1)) with `residual_channels` channels.
    """

    n_blocks: int = 3
    n_flows: int = 4
    n_layers: int = 6
    residual_channels: int = 32
    skip_channels: int = 32
    kernel_size: int = 3
    cond_channels: int = 16
    """Width of the noise-level (log sigma) embedding added into every WaveNet gate."""
    max_log_scale: float = 4.0
    """Soft bound (tanh) on each coupling's |log s|: keeps the flow invertible in float32."""

    def __post_init__(self) -> None:
        if min(self.n_blocks, self.n_flows, self.n_layers) < 1:
            raise ValueError("n_blocks, n_flows and n_layers must be at least 1")
        if self.kernel_size % 2 != 1:
            raise ValueError("kernel_size must be odd (the WaveNet is non-causal)")

    @property
    def frame_multiple(self) -> int:
        """Input lengths must be a multiple of this (one halving per block)."""
        return 2**self.n_blocks


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a set of source priors from `config.json` alone."""

    sources: tuple[str, ...] = ("sine", "sawtooth", "square", "triangle")
    sample_rate: int = 16000
    flow: FlowConfig = field(default_factory=FlowConfig)
    grouped: bool = True
    """One module whose convolutions use groups=len(sources), or one module per source."""
    sigma_min: float = 0.0
    sigma_max: float = 0.0
    """Noise levels the priors were trained on (0, 0 for clean priors)."""
    mixing: str = "mean"
    gains: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if not self.sources or len(set(self.sources)) != len(self.sources):
            raise ValueError("sources must be a non-empty list of distinct names")
        if self.sample_rate <= 0:
            raise ValueError("sample_rate must be positive")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelConfig:
        values = dict(values)
        values["flow"] = from_dict(FlowConfig, values.get("flow", {}))
        return from_dict(cls, values)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings shared by `priorsep train` and `priorsep finetune-noise`."""

    steps: int = 2000
    batch_size: int = 8
    frame_length: int = 4096
    lr: float = 1e-3
    lr_decay: float = 0.6
    lr_decay_times: int = 5
    """The learning rate is multiplied by `lr_decay` this many times, evenly over `steps`."""
    grad_clip: float = 10.0
    sigma_min: float = 0.0
    sigma_max: float = 0.0
    """Noise levels drawn per example, log-uniform in [sigma_min, sigma_max]; 0, 0 = clean."""
    clean_fraction: float = 0.1
    """Share of examples kept clean (sigma = 0) when training with noise."""
    checkpoint_every: int = 100
    eval_every: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("steps and batch_size must be at least 1")
        if not 0 <= self.sigma_min <= self.sigma_max:
            raise ValueError("need 0 <= sigma_min <= sigma_max")
        if self.lr <= 0:
            raise ValueError("lr must be positive")
