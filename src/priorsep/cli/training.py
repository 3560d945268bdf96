"""`priorsep train`, `finetune-noise` and `train-posterior`."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
from pathlib import Path
from typing import Annotated, Any

import typer

from priorsep.cli.app import (
    BatchOption,
    CheckpointOption,
    CropOption,
    DatasetOption,
    DecayOption,
    DecayTimesOption,
    DeviceOption,
    EvalOption,
    LrOption,
    OutOption,
    QuietOption,
    ResumeOption,
    RootOption,
    SeedOption,
    StepsOption,
    TrainReporter,
    app,
    console,
    notice,
    option_error,
    reports_errors,
)
from priorsep.cli.data_summary import StrictOption, show_summary
from priorsep.config import (
    FlowConfig,
    ScoreConfig,
    TrainConfig,
    WaveNetConfig,
    WavetableConfig,
)
from priorsep.errors import UsageError

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


FAMILY_OPTIONS = {
    **{name: ("flowavenet",) for name in ("early_squeezes", "n_flows", "cond_channels",
                                          "permutation", "frame_transform")},
    **{name: ("flowavenet", "wavenet") for name in ("n_blocks", "n_layers", "width")},
    **{name: ("score",) for name in ("front_end", "shared")},
    **{name: ("score", "wavenet") for name in ("sigma_min", "sigma_max")},
}
"""`train`'s architecture options and the families they shape."""


WIDTH_FIELDS = {"flowavenet": ("residual_channels", "skip_channels"),
                "wavenet": ("residual_channels",)}
"""The architecture fields `--width` sets, per family (the others' fields are named as their
options)."""


def given(ctx: typer.Context, name: str) -> bool:
    """Whether option `name` was given on the command line (not left at its default)."""
    source = ctx.get_parameter_source(name)  # by name: Typer may bring its own click enum
    return source is not None and source.name == "COMMANDLINE"


def given_elsewhere(ctx: typer.Context, prior: str) -> list[str]:
    """The architecture options given on the command line that do not shape `prior`."""
    return [name for name, families in FAMILY_OPTIONS.items()
            if prior not in families and given(ctx, name)]


def read_architecture_file(path: Path) -> tuple[str, dict]:
    """(family, architecture fields) from `--config FILE`: a model folder's config.json, or
    {"prior": family, "architecture": {field: value}}."""
    import json

    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise UsageError(f"--config {path}: {error.strerror or error}") from None
    except ValueError as error:
        raise UsageError(f"--config {path}: not JSON ({error})") from None
    if isinstance(values, dict) and isinstance(values.get("model"), dict):  # a model folder's
        model = values["model"]
        values = {"prior": model.get("family") or "flowavenet",
                  "architecture": model.get("architecture", model.get("flow", {}))}
    if (not isinstance(values, dict) or set(values) - {"prior", "architecture"}
            or not isinstance(values.get("architecture", {}), dict)):
        raise UsageError(f"--config {path}: expected a model's config.json or "
                         '{"prior": ..., "architecture": {...}}')
    return str(values.get("prior", "flowavenet")), dict(values.get("architecture", {}))


def parse_fields(items: list[str]) -> dict:
    """`--set FIELD=VALUE` items -> {field: value}; values are JSON where they parse
    (numbers, true/false), else strings."""
    import json

    fields = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--set {item}: expected FIELD=VALUE")
        try:
            fields[name.strip()] = json.loads(value)
        except ValueError:
            fields[name.strip()] = value
    return fields


@app.command()
@reports_errors
@training_options()
def train(
    ctx: typer.Context,
    out: OutOption,
    dataset: DatasetOption = "toy",
    root: RootOption = None,
    sources: Annotated[str | None, typer.Option(
        help="Comma-separated source names (folder dataset; default: every subfolder).")] = None,
    sample_rate: Annotated[int, typer.Option(help="Sample rate of the priors, Hz.")] = 16000,
    prior: Annotated[str, typer.Option(
        help="Prior family: flowavenet (normalizing flows, exact likelihood), score "
             "(denoisers trained by denoising score matching, separated by diffusion), "
             "wavenet (autoregressive, a categorical over quantised levels per sample) or "
             "wavetable (a learnt wavetable per source with a latent f0, phase and gain: "
             "generator priors, separated by staged extraction).")
    ] = "flowavenet",
    front_end: Annotated[str, typer.Option(
        help="Score priors: time, spectral, hybrid (time + spectral), stft (short-time "
             "spectra) or time+stft; the views' outputs are summed.")
    ] = ScoreConfig.front_end,
    shared: Annotated[bool, typer.Option(
        "--shared", help="Score priors: one network for all sources, told the source by an "
                         "embedding (instead of one grouped network per source).")] = False,
    sigma_min: Annotated[float, typer.Option(
        help="Score and WaveNet priors: lowest training noise level (log-uniform draws).")
    ] = 0.005,
    sigma_max: Annotated[float, typer.Option(
        help="Score and WaveNet priors: highest training noise level.")] = 2.0,
    config_file: Annotated[Path | None, typer.Option(
        "--config", metavar="FILE",
        help="Start from the family and architecture in FILE: a model folder's config.json "
             "(train the same kind of priors) or {\"prior\": ..., \"architecture\": {...}}. "
             "Options given on the command line, and --set, win over it.")] = None,
    set_fields: Annotated[list[str] | None, typer.Option(
        "--set", metavar="FIELD=VALUE",
        help="Set any architecture field of the family's config (FlowConfig, ScoreConfig, "
             "WaveNetConfig or WavetableConfig; see docs/cli.md), e.g. --set "
             "time_channels=64. Repeatable.")] = None,
    n_blocks: Annotated[int | None, typer.Option(
        help="Flow blocks (one squeeze each; default 2), or WaveNet blocks of dilated layers "
             "(default 3).", show_default=False)] = None,
    early_squeezes: Annotated[int, typer.Option(help="Squeezes before the first block.")
                              ] = FlowConfig.early_squeezes,
    n_flows: Annotated[int, typer.Option(help="Flows per block.")] = FlowConfig.n_flows,
    n_layers: Annotated[int | None, typer.Option(
        help="WaveNet layers per coupling (flows, default 5) or per block (wavenet, default "
             "10).", show_default=False)] = None,
    width: Annotated[int | None, typer.Option(
        help="WaveNet residual channels (flows: and skip channels; default 24; wavenet: "
             "default 32).", show_default=False)] = None,
    cond_channels: Annotated[int, typer.Option(help="Noise-level embedding width.")
                             ] = FlowConfig.cond_channels,
    permutation: Annotated[str, typer.Option(
        help="After each coupling: flip (FloWaveNet) or invconv (Glow's 1x1 convolution).")
    ] = FlowConfig.permutation,
    frame_transform: Annotated[str, typer.Option(
        help="After the early squeezes: none, or dct (orthonormal DCT of each frame).")
    ] = FlowConfig.frame_transform,
    grouped: Annotated[bool, typer.Option(
        "--grouped/--separate", help="One grouped module for all sources, or one per source.")
    ] = True,
    train_options: dict[str, Any] | None = None,
    strict: StrictOption = False,
    resume: ResumeOption = False,
    device: DeviceOption = "auto",
    quiet: QuietOption = False,
) -> None:
    """Train one prior per source on solo recordings (never on mixes)."""
    from priorsep.config import ModelConfig
    from priorsep.data.datasets import training_data
    from priorsep.devices import resolve_device
    from priorsep.training import train as run_training

    classes = {"flowavenet": FlowConfig, "score": ScoreConfig, "wavenet": WaveNetConfig,
               "wavetable": WavetableConfig}
    set_values = parse_fields(set_fields or [])
    file_fields = {}
    if config_file is not None:
        file_prior, file_fields = read_architecture_file(config_file)
        prior = prior if given(ctx, "prior") else file_prior
    if prior not in classes:
        raise UsageError(f"--prior {prior}: choose flowavenet, score, wavenet or wavetable")
    architecture_class = classes[prior]
    width_fields = WIDTH_FIELDS.get(prior, ())
    # the fields the shape options set (None: not given, the family's default)
    shape = {name: value for name, value in (("n_blocks", n_blocks), ("n_layers", n_layers),
                                             *((field, width) for field in width_fields))
             if value is not None}
    overridden = set(shape) | {name for name in FAMILY_OPTIONS if given(ctx, name)}
    fields = {**{name: value for name, value in file_fields.items()
                 if name not in overridden and name != "segment_length"}, **set_values}
    misplaced = given_elsewhere(ctx, prior)
    if misplaced:
        option = misplaced[0]
        raise UsageError(f"--{option.replace('_', '-')} does not apply to {prior} priors "
                         f"(it sets {', '.join(FAMILY_OPTIONS[option])} priors; any field: "
                         "--set FIELD=VALUE)")
    known = {field.name for field in dataclasses.fields(architecture_class)}
    unknown = sorted(set(fields) - known)
    if unknown:
        where = "--set" if unknown[0] in set_values else f"--config {config_file}:"
        raise UsageError(f"{where} {unknown[0]}: not a field of {architecture_class.__name__} "
                         f"({', '.join(sorted(known))})")
    try:
        if prior == "score":
            architecture = ScoreConfig(**{"front_end": front_end, "shared": shared,
                                          "segment_length": train_options["crop_length"],
                                          **fields})
            noise = {"draw_sigma_min": sigma_min, "draw_sigma_max": sigma_max}
        elif prior == "wavenet":
            architecture = WaveNetConfig(**{**shape, **fields})
            noise = {"draw_sigma_min": sigma_min, "draw_sigma_max": sigma_max}
        elif prior == "wavetable":
            architecture = WavetableConfig(**{"segment_length": train_options["crop_length"],
                                              **fields})
            noise = {}
        else:
            architecture = FlowConfig(**{
                "early_squeezes": early_squeezes, "n_flows": n_flows,
                "cond_channels": cond_channels, "permutation": permutation,
                "frame_transform": frame_transform, **shape, **fields})
            noise = {}
        train_config = TrainConfig(**train_options, **noise)
        ModelConfig(sample_rate=sample_rate, architecture=architecture)  # checks the rate
    except (ValueError, TypeError) as error:
        widths = dict.fromkeys(width_fields, "--width")
        raise option_error(error, {**TRAIN_FLAGS, **widths}, settable=True) from None
    data, validation, info = training_data(dataset, root, sources, sample_rate,
                                           train_config.crop_length, notice,
                                           strict=strict, on_summary=show_summary(quiet, strict))
    model_config = ModelConfig(sources=data.sources, sample_rate=sample_rate,
                               architecture=architecture, grouped=grouped)
    from priorsep.nn.registry import build_priors

    family = build_priors(model_config)
    units = ({"loss_name": "reconstruction loss", "loss_unit": "(waveform + MR-STFT)"}
             if prior == "wavetable" else {} if family.has_log_prob else
             {"loss_name": "denoising loss", "loss_unit": "(EDM-weighted)"})
    with TrainReporter(train_config.steps, quiet, train_config.checkpoint_every, data.sources,
                       validation_name=family.validation_name, **units) as reporter:
        priors = run_training(model_config, train_config, data, out, resume=resume,
                              device=resolve_device(device), validation=validation, info=info,
                              on_progress=reporter)
    if not quiet:
        console.print(f"wrote {out} ({len(priors.sources)} priors: {', '.join(priors.sources)})")


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
    import dataclasses

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


@app.command("train-posterior")
@reports_errors
@training_options("eval_every")
def train_posterior_command(
    model: Annotated[str, typer.Argument(help="Model id of the (noise-conditioned) priors.")],
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Model folder to write: the priors plus the encoder.")],
    dataset: Annotated[str, typer.Option(
        help="toy, folder (solos mixed on the fly, ROOT/<source>/*.wav), chorales (the same, "
             "from the rendered chorales) or mixes (mix recordings, ROOT/**/*.wav).")] = "toy",
    root: RootOption = None,
    sigma: Annotated[float, typer.Option(help="Noise level the frozen priors condition on.")
                     ] = 0.05,
    gamma: Annotated[float, typer.Option(help="Width of the likelihood of the mix.")] = 0.05,
    layers: Annotated[int, typer.Option(help="WaveNet layers of the encoder.")] = 8,
    width: Annotated[int, typer.Option(help="WaveNet width of the encoder.")] = 48,
    squeezes: Annotated[int, typer.Option(
        help="The encoder reads frames of 2**squeezes samples.")] = 3,
    train_options: dict[str, Any] | None = None,
    strict: StrictOption = False,
    resume: ResumeOption = False,
    device: DeviceOption = "auto",
    quiet: QuietOption = False,
) -> None:
    """Train an amortised posterior q(s | m) against frozen priors, on mixes only (ELBO)."""
    from priorsep.amortised import train_posterior
    from priorsep.api import load_pretrained
    from priorsep.config import PosteriorConfig
    from priorsep.data.datasets import mix_training_data
    from priorsep.devices import resolve_device
    from priorsep.separation.mixing import Mixing

    try:
        posterior_config = PosteriorConfig(squeezes=squeezes, n_layers=layers,
                                           residual_channels=width, skip_channels=width,
                                           sigma=sigma, gamma=gamma)
        train_config = TrainConfig(**train_options)
    except ValueError as error:
        raise option_error(error, {"n_layers": "--layers", "residual_channels": "--width"}
                           ) from None
    priors, priors_info = load_pretrained(model, notify=notice)
    config = priors.config
    data, validation, info = mix_training_data(dataset, root, config.sources,
                                               config.sample_rate, Mixing.from_config(config),
                                               train_config.crop_length, notice,
                                               strict=strict,
                                               on_summary=show_summary(quiet, strict))
    info["training"]["priors"] = str(model)
    with TrainReporter(train_config.steps, quiet, train_config.checkpoint_every,
                       config.sources, loss_name="-ELBO") as reporter:
        train_posterior(priors, posterior_config, train_config, data, out,
                        priors_info=priors_info, resume=resume, device=resolve_device(device),
                        validation=validation, info=info["training"], on_progress=reporter)
    if not quiet:
        console.print(f"wrote {out} (priors + amortised posterior; separate with "
                      f"--model {out} --method posterior)", highlight=False)
