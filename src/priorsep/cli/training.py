"""`priorsep train`: priors of any family from solo recordings."""

from __future__ import annotations

import dataclasses
from pathlib import Path
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
from priorsep.config import (
    FlowConfig,
    NMFConfig,
    ScoreConfig,
    SpectralVAEConfig,
    TrainConfig,
    WaveNetConfig,
    WavetableConfig,
)
from priorsep.errors import UsageError

FAMILY_OPTIONS = {
    **{name: ("flowavenet",) for name in ("early_squeezes", "n_flows", "cond_channels",
                                          "permutation", "frame_transform")},
    **{name: ("flowavenet", "wavenet") for name in ("n_blocks", "n_layers", "width")},
    **{name: ("score",) for name in ("front_end", "shared")},
    **{name: ("score", "wavenet") for name in ("sigma_min", "sigma_max")},
}
"""`train`'s architecture options and the families they shape."""
AUTO_PRIOR = "auto"
BEST_FAMILY = {"toy": "wavetable"}
"""The family measured best on each dataset (docs/benchmarks.md); every other dataset, real
recordings, gets `vae` (ahead of NMF and of the ideal mask on the chorales)."""


def best_family(dataset: str) -> str:
    """What `--prior auto` trains on `dataset`."""
    return BEST_FAMILY.get(dataset, "vae")


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
    # architecture files were flows' before the other families came: no "prior", a flow
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
        help="Prior family: auto (the family measured best on the data: wavetable on the "
             "toy, vae on recordings such as chorales or a folder), flowavenet (normalizing "
             "flows, exact likelihood; they do not separate), score "
             "(denoisers trained by denoising score matching, separated by diffusion), "
             "wavenet (autoregressive, a categorical over quantised levels per sample), "
             "wavetable (a learnt wavetable per source with a latent f0, phase and gain: "
             "generator priors, separated by staged extraction), nmf (a non-negative "
             "dictionary of spectra per source, separated by Wiener filtering) or vae (a "
             "variational autoencoder of spectrum frames per source, its latents inferred "
             "under the mix; the best on real instruments).")
    ] = AUTO_PRIOR,
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
             "WaveNetConfig, WavetableConfig, NMFConfig or SpectralVAEConfig; see "
             "docs/cli.md), e.g. --set "
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
               "wavetable": WavetableConfig, "nmf": NMFConfig, "vae": SpectralVAEConfig}
    set_values = parse_fields(set_fields or [])
    file_fields = {}
    if config_file is not None:
        file_prior, file_fields = read_architecture_file(config_file)
        prior = prior if given(ctx, "prior") else file_prior
    chosen_by_auto = prior == AUTO_PRIOR
    if chosen_by_auto:
        prior = best_family(dataset)
    if prior not in classes:
        raise UsageError(f"--prior {prior}: choose {AUTO_PRIOR}, {', '.join(classes)}")
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
        families = FAMILY_OPTIONS[option]
        if chosen_by_auto:
            raise UsageError(f"--{option.replace('_', '-')} shapes {', '.join(families)} "
                             f"priors, but --prior auto chose {prior} for --dataset {dataset}: "
                             f"name the family, e.g. --prior {families[0]}")
        raise UsageError(f"--{option.replace('_', '-')} does not apply to {prior} priors "
                         f"(it sets {', '.join(families)} priors; any field: "
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
        elif prior in ("nmf", "vae"):
            architecture = architecture_class(**fields)
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
             if prior == "wavetable" else
             {"loss_name": "spectral loss", "loss_unit": "(divergence per bin)"}
             if prior in ("nmf", "vae") else {} if family.has_log_prob else
             {"loss_name": "denoising loss", "loss_unit": "(EDM-weighted)"})
    with TrainReporter(train_config.steps, quiet, train_config.checkpoint_every, data.sources,
                       validation_name=family.validation_name, **units) as reporter:
        priors = run_training(model_config, train_config, data, out, resume=resume,
                              device=resolve_device(device), validation=validation, info=info,
                              on_progress=reporter)
    if not quiet:
        console.print(f"wrote {out} ({len(priors.sources)} priors: {', '.join(priors.sources)})")
