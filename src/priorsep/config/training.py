"""Optimisation settings: training the priors (`TrainConfig`) and the amortised posterior
encoder (`PosteriorConfig`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from priorsep.config.fields import FieldError, check_counts, check_finite


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings shared by `priorsep train` and `priorsep finetune-noise`."""

    RENAMED: ClassVar[dict[str, str]] = {"frame_length": "crop_length",
                                         "sigma_min": "draw_sigma_min",
                                         "sigma_max": "draw_sigma_max"}
    """Keys of older checkpoints and their names now."""

    steps: int = 2000
    batch_size: int = 8
    crop_length: int = 4096
    """Samples per training example (each a random crop of a recording)."""
    lr: float = 1e-3
    lr_decay: float = 0.6
    lr_decay_times: int = 5
    """The learning rate is multiplied by `lr_decay` this many times, evenly over `steps`."""
    grad_clip: float = 10.0
    draw_sigma_min: float = 0.0
    draw_sigma_max: float = 0.0
    """Noise levels drawn per example, log-uniform in [draw_sigma_min, draw_sigma_max]; 0, 0 =
    clean. (The model's `trained_sigma_*` record the range; samplers' `sigma_*` are schedules.)"""
    clean_fraction: float = 0.1
    """Share of examples kept clean (sigma = 0) when training with noise."""
    score_weight: float = 0.0
    """Weight of a denoising score-matching term added to the negative log-likelihood of the
    noised examples: mean (sigma * grad log p_sigma(x + sigma eps) + eps)**2 per sample, which
    trains the gradient that Langevin and the posterior follow (costs about 3x per step)."""
    checkpoint_every: int = 100
    eval_every: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        check_counts(self, 1, "steps", "batch_size", "crop_length", "checkpoint_every")
        check_counts(self, 0, "lr_decay_times", "eval_every", "seed")
        check_finite(self, 0.0, math.inf, "lr", low_open=True)
        check_finite(self, 0.0, 1.0, "lr_decay", low_open=True)
        check_finite(self, 0.0, 1.0, "clean_fraction")
        check_finite(self, 0.0, math.inf, "grad_clip", "draw_sigma_min", "draw_sigma_max",
                     "score_weight")
        if self.draw_sigma_min > self.draw_sigma_max:
            raise FieldError("draw_sigma_min", f"({self.draw_sigma_min:g}) must not exceed the "
                                               f"top of the range ({self.draw_sigma_max:g})")


@dataclass(frozen=True)
class PosteriorConfig:
    """An amortised posterior encoder q(s | m) and the ELBO it is trained with.

    The encoder is a non-causal WaveNet on frames of `2**squeezes` mix samples; it emits, per
    sample and source, a normal truncated to [-1, 1]. Training maximises
    `sum_k E_q[log p_k,sigma(s_k)] + H(q) - ||m - g(s)||**2 / (2 gamma**2)` with the priors frozen,
    evaluated at the noise level `sigma` the priors condition on.
    """

    squeezes: int = 3
    n_layers: int = 8
    residual_channels: int = 48
    skip_channels: int = 48
    kernel_size: int = 3
    min_scale: float = 1e-3
    initial_scale: float = 0.1
    sigma: float = 0.05
    """Noise level the frozen priors are evaluated at."""
    gamma: float = 0.05
    """Width of the Gaussian likelihood of the mix given the sources."""

    def __post_init__(self) -> None:
        check_counts(self, 0, "squeezes")
        check_counts(self, 1, "n_layers", "residual_channels", "skip_channels", "kernel_size")
        if self.kernel_size % 2 != 1:
            raise FieldError("kernel_size", "must be odd (the WaveNet is non-causal)")
        check_finite(self, 0.0, math.inf, "min_scale", "gamma", low_open=True)
        check_finite(self, 0.0, math.inf, "sigma")
        if not self.min_scale < self.initial_scale:
            raise FieldError("initial_scale", f"must exceed min_scale ({self.min_scale:g})")

    @property
    def frame(self) -> int:
        """Mix lengths must be a multiple of this: the samples of one encoder time step."""
        return 2**self.squeezes
