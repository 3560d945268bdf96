"""The options every training command shares, derived from `TrainConfig`, and the option
that sets each training field (for error messages)."""

from __future__ import annotations

import dataclasses
import functools
import inspect
from typing import Any

from priorsep.cli.app import (
    BatchOption,
    CheckpointOption,
    CropOption,
    DecayOption,
    DecayTimesOption,
    EvalOption,
    LrOption,
    SeedOption,
    StepsOption,
)
from priorsep.config import TrainConfig

TRAINING_OPTIONS = {
    "steps": StepsOption, "batch_size": BatchOption, "crop_length": CropOption, "lr": LrOption,
    "lr_decay": DecayOption, "lr_decay_times": DecayTimesOption,
    "checkpoint_every": CheckpointOption, "eval_every": EvalOption, "seed": SeedOption,
}
"""The `TrainConfig` fields every training command sets with an option of its own."""


def training_options(*omit: str, **defaults: Any):
    """Give a command the options of `TRAINING_OPTIONS` (but `omit`), with `TrainConfig`'s
    defaults unless `defaults` says otherwise, in place of its `train_options` parameter; the
    command receives their values together as `train_options`, a dict of `TrainConfig` fields."""
    fields = {field.name: field.default for field in dataclasses.fields(TrainConfig)}
    names = [name for name in TRAINING_OPTIONS if name not in omit]

    def decorate(command):
        signature = inspect.signature(command, eval_str=True)
        parameters = []
        for parameter in signature.parameters.values():
            if parameter.name != "train_options":
                parameters.append(parameter)
                continue
            parameters += [inspect.Parameter(
                name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=TRAINING_OPTIONS[name],
                default=defaults.get(name, fields[name])) for name in names]

        @functools.wraps(command)
        def wrapper(**kwargs):
            return command(train_options={name: kwargs.pop(name) for name in names}, **kwargs)

        wrapper.__signature__ = signature.replace(parameters=parameters)
        return wrapper

    return decorate


TRAIN_FLAGS = {field: "--" + field.replace("_", "-") for field in (
    *TRAINING_OPTIONS, "clean_fraction", "score_weight", "sample_rate", "n_blocks",
    "early_squeezes", "n_flows", "n_layers", "cond_channels", "permutation", "frame_transform",
    "front_end")} | {
    "draw_sigma_min": "--sigma-min", "draw_sigma_max": "--sigma-max"}
"""Fields that `train` sets with an option of its own (the others: `--set FIELD=VALUE`)."""
