"""The `priorsep` command line: parses options, calls the core, reports on stderr.

Only this module prints or chooses exit codes. The core raises `PriorsepError` subclasses; each
becomes one line on stderr and the exit code of its class (see docs/cli.md).
"""

from __future__ import annotations

import functools
import os
import traceback
from pathlib import Path
from typing import Annotated

import click
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from priorsep.config import FlowConfig
from priorsep.errors import PriorsepError, TrainingInterrupted, UsageError

app = typer.Typer(
    name="priorsep",
    help="Unsupervised source separation with per-source FloWaveNet priors.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(stderr=True)

DeviceOption = Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]
OutOption = Annotated[Path, typer.Option("--out", "-o", help="Model folder to write.")]
DatasetOption = Annotated[str, typer.Option(help="toy, or folder (ROOT/<source>/*.wav|flac).")]
RootOption = Annotated[Path | None, typer.Option(help="Dataset root for --dataset folder.")]
StepsOption = Annotated[int, typer.Option(help="Optimisation steps (per noise level).")]
BatchOption = Annotated[int, typer.Option(help="Examples per step (per rank).")]
FrameOption = Annotated[int, typer.Option(help="Samples per training example.")]
LrOption = Annotated[float, typer.Option(help="Adam learning rate.")]
DecayOption = Annotated[float, typer.Option(help="Learning-rate decay factor.")]
DecayTimesOption = Annotated[int, typer.Option(help="How many decays over the run.")]
CheckpointOption = Annotated[int, typer.Option(help="Steps between checkpoints.")]
EvalOption = Annotated[int, typer.Option(help="Steps between validation scores (0: end only).")]
ResumeOption = Annotated[bool, typer.Option(help="Continue the checkpoint in --out.")]
SeedOption = Annotated[int, typer.Option(help="Random seed.")]


def reports_errors(command):
    """Turn core errors into one line on stderr and the error's exit code."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except PriorsepError as error:
            label = "stopped" if isinstance(error, TrainingInterrupted) else "[red]error[/red]"
            console.print(f"{label}: {error}", highlight=False, soft_wrap=True)
            raise typer.Exit(error.exit_code) from None
        except (typer.Exit, typer.Abort, click.ClickException):
            raise
        except KeyboardInterrupt:
            console.print("interrupted")
            raise typer.Exit(130) from None
        except Exception as error:  # a bug, not bad input: keep it to one line unless asked
            if os.environ.get("PRIORSEP_DEBUG"):
                traceback.print_exc()
            console.print(f"[red]internal error:[/red] {type(error).__name__}: {error} "
                          "(set PRIORSEP_DEBUG=1 for a traceback)", highlight=False,
                          soft_wrap=True)
            raise typer.Exit(70) from None

    return wrapper


def _notice(message: str) -> None:
    console.print(f"note: {message}", highlight=False, soft_wrap=True)


class TrainReporter:
    """Rich progress bar on a terminal; a plain line every `every` steps otherwise."""

    def __init__(self, total: int, quiet: bool, every: int, sources: tuple[str, ...],
                 loss_name: str = "loss") -> None:
        self.quiet = quiet
        self.loss_name = loss_name
        self.every = max(every, 1)
        self.sources = sources
        self.progress: Progress | None = None
        if not quiet and console.is_terminal:
            self.progress = Progress(
                TextColumn("step"), MofNCompleteColumn(), BarColumn(),
                TextColumn(loss_name + " {task.fields[loss]:.3f} nats/sample"),
                TextColumn("{task.fields[speed]:,.0f} samples/s"),
                TimeRemainingColumn(), console=console)
            self.task = self.progress.add_task("train", total=total, loss=float("nan"), speed=0.0)

    def __enter__(self) -> TrainReporter:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()

    def __call__(self, report) -> None:
        if self.quiet:
            return
        if self.progress is not None:
            self.progress.update(self.task, completed=report.step, loss=report.loss,
                                 speed=report.samples_per_second)
        elif report.step % self.every == 0 or report.step == report.total:
            console.print(f"step {report.step}/{report.total}  {self.loss_name} {report.loss:.4f} "
                          f"nats/sample  {report.samples_per_second:,.0f} samples/s  "
                          f"lr {report.lr:.2e}", highlight=False)
        if report.validation is not None:
            scores = "  ".join(f"{name} {score:+.3f}"
                               for name, score in zip(self.sources, report.validation))
            console.print(f"validation log-likelihood (nats/sample): {scores}", highlight=False)


@app.command()
@reports_errors
def train(
    out: OutOption,
    dataset: DatasetOption = "toy",
    root: RootOption = None,
    sources: Annotated[str | None, typer.Option(
        help="Comma-separated source names (folder dataset; default: every subfolder).")] = None,
    sample_rate: Annotated[int, typer.Option(help="Sample rate of the priors, Hz.")] = 16000,
    n_blocks: Annotated[int, typer.Option(help="Flow blocks (one squeeze each).")
                        ] = FlowConfig.n_blocks,
    early_squeezes: Annotated[int, typer.Option(help="Squeezes before the first block.")
                              ] = FlowConfig.early_squeezes,
    n_flows: Annotated[int, typer.Option(help="Flows per block.")] = FlowConfig.n_flows,
    n_layers: Annotated[int, typer.Option(help="WaveNet layers per coupling.")
                        ] = FlowConfig.n_layers,
    width: Annotated[int, typer.Option(help="WaveNet residual and skip channels.")
                     ] = FlowConfig.residual_channels,
    cond_channels: Annotated[int, typer.Option(help="Noise-level embedding width.")
                             ] = FlowConfig.cond_channels,
    permutation: Annotated[str, typer.Option(
        help="After each coupling: flip (FloWaveNet) or invconv (Glow's 1x1 convolution).")
    ] = FlowConfig.permutation,
    grouped: Annotated[bool, typer.Option(
        "--grouped/--separate", help="One grouped module for all sources, or one per source.")
    ] = True,
    steps: StepsOption = 2000,
    batch_size: BatchOption = 8,
    frame_length: FrameOption = 4096,
    lr: LrOption = 1e-3,
    lr_decay: DecayOption = 0.6,
    lr_decay_times: DecayTimesOption = 5,
    checkpoint_every: CheckpointOption = 100,
    eval_every: EvalOption = 0,
    resume: ResumeOption = False,
    device: DeviceOption = "auto",
    seed: SeedOption = 0,
    quiet: QuietOption = False,
) -> None:
    """Train one prior per source on solo recordings (never on mixes)."""
    from priorsep.config import ModelConfig, TrainConfig
    from priorsep.data.datasets import training_data
    from priorsep.train import resolve_device
    from priorsep.train import train as run_training

    data, validation, info = training_data(dataset, root, sources, sample_rate, frame_length)
    try:
        flow = FlowConfig(n_blocks=n_blocks, early_squeezes=early_squeezes, n_flows=n_flows,
                          n_layers=n_layers,
                          residual_channels=width, skip_channels=width,
                          cond_channels=cond_channels, permutation=permutation)
        model_config = ModelConfig(sources=data.sources, sample_rate=sample_rate, flow=flow,
                                   grouped=grouped)
        train_config = TrainConfig(steps=steps, batch_size=batch_size, frame_length=frame_length,
                                   lr=lr, lr_decay=lr_decay, lr_decay_times=lr_decay_times,
                                   checkpoint_every=checkpoint_every, eval_every=eval_every,
                                   seed=seed)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    with TrainReporter(steps, quiet, checkpoint_every, data.sources) as reporter:
        priors = run_training(model_config, train_config, data, out, resume=resume,
                              device=resolve_device(device), validation=validation, info=info,
                              on_progress=reporter)
    if not quiet:
        console.print(f"wrote {out} ({len(priors.sources)} priors: {', '.join(priors.sources)})")


FORMATS = {"int16": ("wav", "PCM_16"), "int24": ("wav", "PCM_24"),
           "float32": ("wav", "FLOAT"), "flac": ("flac", "PCM_24")}


@app.command()
@reports_errors
def separate(
    inputs: Annotated[list[str], typer.Argument(help="Mix files; - reads a wav from stdin.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output folder.")] = None,
    model: Annotated[str, typer.Option(
        "--model", "-m", help="Bundled name, model folder or Hub repo owner/name@revision.")
    ] = "toy",
    steps: Annotated[int | None, typer.Option(
        help="Langevin steps in all (spread over the noise levels); default: the model's.")
    ] = None,
    chains: Annotated[int | None, typer.Option(help="Chains per segment; the best is kept.")
                      ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed of the sampler.")] = None,
    method: Annotated[str, typer.Option(
        help="langevin (posterior sampling), posterior (one pass of the model's amortised "
             "encoder) or posterior+langevin (the encoder starts a short Langevin run: a "
             "quarter of the model's steps unless --steps).")] = "langevin",
    samples: Annotated[int, typer.Option(
        help="With the posterior methods: average this many encoder draws (0: its mean).")
    ] = 0,
    float32: Annotated[bool, typer.Option("--float32", help="Write 32-bit float wav.")] = False,
    int24: Annotated[bool, typer.Option("--int24", help="Write 24-bit wav.")] = False,
    flac: Annotated[bool, typer.Option("--flac", help="Write FLAC.")] = False,
    filename: Annotated[str, typer.Option(
        help="Output path template with {track}, {source}, {ext}.")] = "{track}/{source}.{ext}",
    stdout_source: Annotated[str | None, typer.Option(
        "--stdout", help="Write this source as wav to stdout (one input).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace existing output files.")] = False,
    device: DeviceOption = "auto",
    quiet: QuietOption = False,
) -> None:
    """Separate each mix into one file per source: OUT/<track>/<source>.wav."""
    import dataclasses
    import sys

    from priorsep.api import Separator, output_path
    from priorsep.audio import encode_wav, read_audio, write_audio
    from priorsep.train import resolve_device

    if out is None and stdout_source is None:
        raise UsageError("give an output folder with -o OUT, or --stdout SOURCE")
    if stdout_source is not None and len(inputs) != 1:
        raise UsageError("--stdout writes one stem of one input: give exactly one input")
    if sum([float32, int24, flac]) > 1:
        raise UsageError("choose at most one of --float32, --int24, --flac")
    if inputs.count("-") > 1:
        raise UsageError("stdin (-) can be read only once")
    ext, subtype = FORMATS["float32" if float32 else "int24" if int24 else
                           "flac" if flac else "int16"]
    overrides = {"seed": seed, "n_chains": chains}
    separator = Separator.from_pretrained(model, resolve_device(device), notify=_notice,
                                          method=method, samples=samples)
    if steps is not None:
        if steps < 1:
            raise UsageError("--steps must be at least 1")
        n_levels = min(separator.langevin.n_levels, steps)
        overrides.update(n_levels=n_levels, steps_per_level=max(steps // n_levels, 1))
    try:
        separator.langevin = dataclasses.replace(
            separator.langevin, **{k: v for k, v in overrides.items() if v is not None})
    except ValueError as error:
        raise UsageError(str(error)) from None
    if stdout_source is not None and stdout_source not in separator.sources:
        raise UsageError(f"--stdout {stdout_source}: the model's sources are "
                         f"{', '.join(separator.sources)}")
    failures: list[PriorsepError] = []
    for name in inputs:
        track = "stdin" if name == "-" else Path(name).stem
        try:
            targets = {}
            if out is not None:
                targets = {source: output_path(out, filename, track, source, ext)
                           for source in separator.sources}
                existing = [str(p) for p in targets.values() if p.exists()]
                if existing and not overwrite:
                    raise UsageError(f"{existing[0]} exists (use --overwrite to replace it)")
            audio, rate = read_audio(name)
            if audio.shape[0] > 1 and not quiet:
                console.print(f"note: {name}: {audio.shape[0]} channels averaged to mono",
                              highlight=False)
            with AudioProgress(track, quiet) as progress:
                stems = separator.separate_audio(audio, rate, progress)
            for source, path in targets.items():
                write_audio(path, stems[source], rate, subtype)
            if stdout_source is not None:
                sys.stdout.buffer.write(encode_wav(stems[stdout_source], rate, subtype))
                sys.stdout.buffer.flush()
            if not quiet and targets:
                console.print(f"{name}: wrote {len(targets)} stems under {out}",
                              highlight=False)
        except PriorsepError as error:
            console.print(f"[red]error:[/red] {error}", highlight=False, soft_wrap=True)
            failures.append(error)
    if failures:
        raise typer.Exit(failures[-1].exit_code)


class AudioProgress:
    """One progress bar per track, in seconds of audio; hidden off a terminal or with --quiet."""

    def __init__(self, track: str, quiet: bool) -> None:
        self.progress = None
        if not quiet and console.is_terminal:
            self.progress = Progress(TextColumn(track), BarColumn(),
                                     TextColumn("{task.completed:.1f}/{task.total:.1f} s"),
                                     TimeRemainingColumn(), console=console, transient=False)
            self.task = self.progress.add_task(track, total=None)

    def __enter__(self):
        if self.progress is None:
            return None
        self.progress.start()

        def update(done: float, total: float) -> None:
            self.progress.update(self.task, completed=done, total=total)

        return update

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()


@app.command("finetune-noise")
@reports_errors
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
    sigmas: Annotated[str | None, typer.Option(
        help="Comma-separated levels: one model per level, fine-tuned serially (BASIS). "
             "Without it, one sigma-conditional model covers [--sigma-min, --sigma-max].")
    ] = None,
    steps: StepsOption = 1000,
    batch_size: BatchOption = 8,
    frame_length: FrameOption = 4096,
    lr: LrOption = 5e-4,
    lr_decay: DecayOption = 0.6,
    lr_decay_times: DecayTimesOption = 5,
    checkpoint_every: CheckpointOption = 100,
    eval_every: EvalOption = 0,
    resume: ResumeOption = False,
    device: DeviceOption = "auto",
    seed: SeedOption = 0,
    quiet: QuietOption = False,
) -> None:
    """Fine-tune priors on noisy sources x + sigma * eps, so their gradients guide Langevin."""
    import dataclasses

    from priorsep.api import load_pretrained
    from priorsep.config import TrainConfig
    from priorsep.data.datasets import training_data
    from priorsep.nn.prior import SourcePriors
    from priorsep.train import finetune_levels, resolve_device
    from priorsep.train import train as run_training

    priors, base_info = load_pretrained(model, notify=_notice)
    if not isinstance(priors, SourcePriors):
        raise UsageError("finetune-noise needs one model, not a combination of several")
    config = priors.config
    data, validation, info = training_data(
        dataset, root, ",".join(config.sources) if dataset == "folder" else None,
        config.sample_rate, frame_length)
    try:
        levels = [float(v) for v in sigmas.split(",")] if sigmas else None
        train_config = TrainConfig(steps=steps, batch_size=batch_size, frame_length=frame_length,
                                   lr=lr, lr_decay=lr_decay, lr_decay_times=lr_decay_times,
                                   sigma_min=sigma_min, sigma_max=sigma_max,
                                   clean_fraction=clean_fraction,
                                   checkpoint_every=checkpoint_every, eval_every=eval_every,
                                   seed=seed)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    info["training"]["fine-tuned from"] = str(model)
    if "training" in base_info:
        info["base training"] = base_info["training"]
    options = dict(resume=resume, device=resolve_device(device), validation=validation,
                   info=info)
    if levels:
        if any(level <= 0 for level in levels):
            raise typer.BadParameter("--sigmas must be positive")
        with TrainReporter(steps * len(levels), quiet, checkpoint_every, config.sources) as rep:
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
    with TrainReporter(steps, quiet, checkpoint_every, config.sources) as reporter:
        run_training(config, train_config, data, out, init_state=priors.state_dict(),
                     on_progress=reporter, **options)
    if not quiet:
        console.print(f"wrote {out} (sigma-conditional, sigma in [{sigma_min}, {sigma_max}])")


@app.command("train-posterior")
@reports_errors
def train_posterior_command(
    model: Annotated[str, typer.Argument(help="Model id of the (noise-conditioned) priors.")],
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Model folder to write: the priors plus the encoder.")],
    dataset: Annotated[str, typer.Option(
        help="toy, folder (solos mixed on the fly, ROOT/<source>/*.wav) or mixes "
             "(mix recordings, ROOT/**/*.wav).")] = "toy",
    root: RootOption = None,
    sigma: Annotated[float, typer.Option(help="Noise level the frozen priors condition on.")
                     ] = 0.05,
    gamma: Annotated[float, typer.Option(help="Width of the likelihood of the mix.")] = 0.05,
    layers: Annotated[int, typer.Option(help="WaveNet layers of the encoder.")] = 8,
    width: Annotated[int, typer.Option(help="WaveNet width of the encoder.")] = 48,
    squeezes: Annotated[int, typer.Option(
        help="The encoder reads frames of 2**squeezes samples.")] = 3,
    steps: StepsOption = 2000,
    batch_size: BatchOption = 8,
    frame_length: FrameOption = 4096,
    lr: LrOption = 1e-3,
    lr_decay: DecayOption = 0.6,
    lr_decay_times: DecayTimesOption = 5,
    checkpoint_every: CheckpointOption = 100,
    resume: ResumeOption = False,
    device: DeviceOption = "auto",
    seed: SeedOption = 0,
    quiet: QuietOption = False,
) -> None:
    """Train an amortised posterior q(s | m) against frozen priors, on mixes only (ELBO)."""
    from priorsep.amortised import train_posterior
    from priorsep.api import load_pretrained
    from priorsep.config import PosteriorConfig, TrainConfig
    from priorsep.data.datasets import mix_training_data
    from priorsep.separation.mixing import Mixing
    from priorsep.train import resolve_device

    priors, priors_info = load_pretrained(model, notify=_notice)
    config = priors.config
    data, validation, info = mix_training_data(dataset, root, config.sources,
                                               config.sample_rate, Mixing.from_config(config),
                                               frame_length)
    try:
        posterior_config = PosteriorConfig(squeezes=squeezes, n_layers=layers,
                                           residual_channels=width, skip_channels=width,
                                           sigma=sigma, gamma=gamma)
        train_config = TrainConfig(steps=steps, batch_size=batch_size, frame_length=frame_length,
                                   lr=lr, lr_decay=lr_decay, lr_decay_times=lr_decay_times,
                                   checkpoint_every=checkpoint_every, seed=seed)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    info["training"]["priors"] = str(model)
    with TrainReporter(steps, quiet, checkpoint_every, config.sources,
                       loss_name="-ELBO") as reporter:
        train_posterior(priors, posterior_config, train_config, data, out,
                        priors_info=priors_info, resume=resume, device=resolve_device(device),
                        validation=validation, info=info["training"], on_progress=reporter)
    if not quiet:
        console.print(f"wrote {out} (priors + amortised posterior; separate with "
                      f"--model {out} --method posterior)", highlight=False)


@app.command()
@reports_errors
def example(
    out: Annotated[Path, typer.Argument(help="Where to write the example mix.")] = Path(
        "toy_mix.wav"),
    overwrite: Annotated[bool, typer.Option(help="Replace an existing file.")] = False,
) -> None:
    """Write the bundled example mix (1 s of the toy test split: sine+sawtooth+square+triangle)."""
    import shutil
    from importlib.resources import as_file, files

    if out.exists() and not overwrite:
        raise UsageError(f"{out} exists (use --overwrite to replace it)")
    with as_file(files("priorsep") / "examples" / "toy_mix.wav") as source:
        shutil.copyfile(source, out)
    console.print(f"wrote {out}", highlight=False)


@app.command("cross-likelihood")
@reports_errors
def cross_likelihood_command(
    model: Annotated[str, typer.Argument(help="Model id (bundled name, folder, Hub repo).")],
    n_examples: Annotated[int, typer.Option(help="Held-out toy examples per source.")] = 16,
    length: Annotated[int, typer.Option(help="Samples per example.")] = 4096,
    sigma: Annotated[float, typer.Option(help="Noise level given to the priors.")] = 0.0,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
    device: DeviceOption = "auto",
) -> None:
    """Mean log-likelihood of each toy source's test data under each prior (nats/sample)."""
    import json

    from priorsep.api import load_pretrained
    from priorsep.data.toy import ToyDataset
    from priorsep.metrics import cross_likelihood
    from priorsep.train import resolve_device

    priors, _ = load_pretrained(model, resolve_device(device), notify=_notice)
    multiple = priors.config.flow.frame_multiple
    data = ToyDataset("test", n_examples, priors.config.sample_rate)
    sources = data.batch(range(n_examples))[..., : length // multiple * multiple]
    table = cross_likelihood(priors, sources, sigma)
    names = priors.sources
    if json_output:
        rows = {data_name: dict(zip(names, map(float, row)))
                for data_name, row in zip(names, table)}
        print(json.dumps({"sigma": sigma, "log_likelihood": rows}, indent=2))
        return
    view = Table(title=f"log-likelihood, nats/sample (rows: data, columns: prior), sigma={sigma}")
    view.add_column("data")
    for name in names:
        view.add_column(name, justify="right")
    for data_name, row in zip(names, table):
        best = int(row.argmax())
        view.add_row(data_name, *[f"[bold]{v:+.2f}[/bold]" if j == best else f"{v:+.2f}"
                                  for j, v in enumerate(row.tolist())])
    Console().print(view)


def print_notice(message: str) -> None:
    """A notice from the core (e.g. a fallback to the cache): one line on stderr."""
    console.print(f"[yellow]note:[/yellow] {message}", highlight=False, soft_wrap=True)


def _human_size(n_bytes: int) -> str:
    size = float(n_bytes)
    for unit in ("B", "kB", "MB"):
        if size < 1000:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


models_app = typer.Typer(help="List bundled and cached models (id, revision, sources, sample "
                         "rate, size); `models download ID` fetches one from the Hub.")
app.add_typer(models_app, name="models")


@models_app.callback(invoke_without_command=True)
@reports_errors
def models_command(
    ctx: typer.Context,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
) -> None:
    """List bundled and cached models: id, revision, sources, sample rate, size."""
    if ctx.invoked_subcommand is not None:
        return
    import json

    from rich.markup import escape

    from priorsep.hub import hub_settings, list_models

    entries = list_models()
    cache = hub_settings().cache_dir
    if json_output:
        print(json.dumps({"cache": str(cache), "models": [entry.to_dict() for entry in entries]},
                         indent=2))
        return
    if not entries:
        console.print(f"no models bundled or cached (cache: {cache}); fetch one with "
                      "`priorsep models download OWNER/NAME`", highlight=False, soft_wrap=True)
        return
    view = Table(title=f"models (Hugging Face cache: {cache})")
    for column in ("id", "revision", "sources", "sample rate", "size"):
        view.add_column(column, justify="right" if column in ("sample rate", "size") else "left")
    for entry in entries:
        if entry.commit is None:
            revision = entry.kind
        elif entry.revisions:
            revision = f"{', '.join(entry.revisions)} ({entry.commit[:8]})"
        else:
            revision = entry.commit[:12]
        sources = (escape(", ".join(entry.sources)) if entry.problem is None
                   else f"[red]{escape(entry.problem)}[/red]")
        view.add_row(escape(entry.model_id), escape(revision), sources,
                     f"{entry.sample_rate} Hz" if entry.sample_rate else "-",
                     _human_size(entry.size_bytes))
    Console().print(view)


@models_app.command("download")
@reports_errors
def models_download_command(
    model: Annotated[str, typer.Argument(
        help="owner/name or owner/name@revision, a comma-separated list of ids, or a bag "
             "file.")],
    revision: Annotated[str | None, typer.Option(help="Branch, tag or commit of owner/name.")
                        ] = None,
    timeout: Annotated[float | None, typer.Option(
        help="Seconds to wait for the Hub (default: HF_HUB_ETAG_TIMEOUT, else 10).")] = None,
    quiet: QuietOption = False,
) -> None:
    """Fetch a model into the Hugging Face cache for later offline use (HF_HUB_OFFLINE=1).

    Prints the model folder(s) on stdout.
    """
    from priorsep.hub import resolve_model

    resolved = resolve_model(model, revision=revision, offline=False, timeout=timeout,
                             notify=print_notice, progress=not quiet and console.is_terminal)
    for folder in dict.fromkeys(resolved.source_folders.values()):
        print(folder)
    if not quiet:
        commit = f" (commit {resolved.commit[:12]})" if resolved.commit else ""
        console.print(f"{resolved.model_id}{commit}: {', '.join(resolved.sources)} at "
                      f"{resolved.config.sample_rate} Hz, available offline", highlight=False,
                      soft_wrap=True)


@app.command("export")
@reports_errors
def export_command(
    model: Annotated[str, typer.Argument(
        help="Model id: bundled name, folder, owner/name@revision, list or bag file.")],
    out: Annotated[Path, typer.Argument(help="Folder to write (new or empty).")],
    license_id: Annotated[str, typer.Option("--license", help="License id for the model card.")
                          ] = "mit",
    datasets: Annotated[list[str] | None, typer.Option(
        "--dataset", help="Hub dataset id the priors were trained on (repeatable).")] = None,
    tags: Annotated[list[str] | None, typer.Option(
        "--tag", help="Extra model-card tag (repeatable).")] = None,
    repo_id: Annotated[str | None, typer.Option(
        help="The Hub repo you will upload to (for the card's usage lines).")] = None,
    force: Annotated[bool, typer.Option(help="Write into a folder that is not empty.")] = False,
    quiet: QuietOption = False,
) -> None:
    """Write a Hub-ready folder: config.json, model.safetensors and a README.md model card.

    Prints the folder on stdout; push it with `hf upload OWNER/NAME DIR .`.
    """
    from priorsep.export import export_model

    folder = export_model(model, out, license=license_id, datasets=datasets or (),
                          tags=tags or (), repo_id=repo_id, force=force, notify=print_notice)
    print(folder)
    if not quiet:
        console.print(f"wrote {folder}; publish it with: hf upload {repo_id or 'OWNER/NAME'} "
                      f"{folder} .", highlight=False, soft_wrap=True)


class SectionProgress:
    """One progress bar per running evaluation section; hidden off a terminal or with --quiet."""

    def __init__(self, quiet: bool) -> None:
        self.progress = None
        self.tasks: dict[str, int] = {}
        if not quiet and console.is_terminal:
            self.progress = Progress(TextColumn("{task.description:<10}"), BarColumn(),
                                     MofNCompleteColumn(), TimeRemainingColumn(),
                                     console=console)

    def __enter__(self) -> SectionProgress:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()

    def __call__(self, section: str, done: int, total: int) -> None:
        if self.progress is None:
            return
        if section not in self.tasks:
            self.tasks[section] = self.progress.add_task(section, total=total)
        self.progress.update(self.tasks[section], completed=done, total=total)

    def finish(self, section: str) -> None:
        """Remove a finished section's bar (its results are printed next)."""
        if self.progress is not None and section in self.tasks:
            self.progress.remove_task(self.tasks.pop(section))


def _cross_likelihood_view(table: list[list[float | None]], sources: list[str],
                           title: str) -> Table:
    """Rows: data; columns: prior; each row's highest entry in bold."""
    view = Table(title=title)
    view.add_column("data \\ prior")
    for name in sources:
        view.add_column(name, justify="right")
    for data_name, row in zip(sources, table):
        finite = [v for v in row if v is not None]
        best = max(finite) if finite else None
        view.add_row(data_name, *["n/a" if v is None else f"[bold]{v:+.2f}[/bold]" if v == best
                                  else f"{v:+.2f}" for v in row])
    return view


def _print_section(name: str, section: dict, sources: list[str]) -> None:
    """The terminal's view of a finished section: cross-likelihood tables, separation medians."""
    if "skipped" in section:
        _notice(f"{name}: skipped ({section['skipped']})")
    elif name == "cross":
        console.print(_cross_likelihood_view(
            section["table"], sources,
            f"cross-likelihood, nats/sample, sigma={section['sigma']:g}"))
    elif name == "noise":
        for table in section["cross_likelihood"]:
            console.print(_cross_likelihood_view(
                table["table"], sources, f"cross-likelihood, nats/sample, data and priors at "
                                         f"sigma={table['sigma']:g}"))
    elif name == "separation":
        view = Table(title="SI-SDR, dB: median / mean over the mixes")
        for column in ("source", "separated", "mix (lower)", "oracle (upper)"):
            view.add_column(column, justify="left" if column == "source" else "right")
        scores = section["si_sdr"]

        def decibels(value: float | None) -> str:
            return "n/a" if value is None else f"{value:.2f}"

        for source in [*sources, "all"]:
            view.add_row(source, *[f"{decibels(scores[kind][source]['median'])} / "
                                   f"{decibels(scores[kind][source]['mean'])}"
                                   for kind in ("separated", "mix", "oracle")])
        console.print(view)


@app.command("evaluate")
@reports_errors
def evaluate_command(
    dataset: Annotated[str, typer.Option(
        help="toy (the fixed test split), musdb (ROOT/test/<track>/<stem>.wav) or folder "
             "(ROOT/<source>/*.wav solo recordings).")] = "toy",
    root: Annotated[Path | None, typer.Option(help="Dataset root for musdb and folder.")
                    ] = None,
    model: Annotated[str, typer.Option(
        "--model", "-m", help="Model id (bundled name, folder, Hub repo), or a folder of "
                              "sigma-<value>/ models from finetune-noise --sigmas.")] = "toy",
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Report folder (default: evaluation-<dataset>).")] = None,
    sections: Annotated[str, typer.Option(
        help="Comma-separated subset of cross,noise,constant,gaussian,separation,samples, "
             "or all.")] = "all",
    n_examples: Annotated[int, typer.Option(
        help="Held-out excerpts per source in the likelihood sections.")] = 16,
    length: Annotated[int, typer.Option(help="Samples per likelihood excerpt.")] = 8192,
    sigmas: Annotated[str, typer.Option(
        help="Noise levels of a sigma-conditional model, comma-separated.")
    ] = "0.01,0.027,0.077,0.129,0.359",
    mixes: Annotated[int, typer.Option(help="Held-out mixes to separate.")] = 8,
    mix_seconds: Annotated[float, typer.Option(help="Seconds per separated mix.")] = 0.5,
    steps: Annotated[int, typer.Option(
        help="Langevin steps per mix at most (0: the model's whole schedule).")] = 200,
    sample_seconds: Annotated[float, typer.Option(help="Seconds per sample from the priors.")
                              ] = 3.0,
    audio: Annotated[bool, typer.Option(help="Write the samples as wav files.")] = True,
    json_only: Annotated[bool, typer.Option(
        "--json-only", help="Write report.json only (no Markdown, plots or audio) and print "
                            "it on stdout.")] = False,
    device: DeviceOption = "auto",
    seed: SeedOption = 0,
    quiet: QuietOption = False,
) -> None:
    """Run the thesis' experiments on held-out data: report.json, report.md and plots.

    Sections: cross-likelihood, noise conditioning, constant and random inputs, Gaussian noise
    against its level, separation (SI-SDR / SDR with the mix and oracle anchors) and samples
    from the priors; see docs/evaluate.md. The same seed gives the same report.json.
    """
    import json

    from priorsep.evaluate import SECTIONS, EvaluationConfig, run_evaluation, write_report
    from priorsep.train import resolve_device

    if steps < 0:
        raise UsageError("--steps must be 0 (the model's whole schedule) or more")
    chosen = SECTIONS if sections.strip() == "all" else tuple(
        name.strip() for name in sections.split(",") if name.strip())
    try:
        levels = tuple(float(value) for value in sigmas.split(",") if value.strip())
        config = EvaluationConfig(
            dataset=dataset, root=str(root) if root is not None else None,
            sections=chosen, n_examples=n_examples, length=length, sigmas=levels,
            separation_mixes=mixes, separation_seconds=mix_seconds,
            separation_steps=steps or None, sample_seconds=sample_seconds,
            with_audio=audio and not json_only, seed=seed)
    except ValueError as error:
        raise UsageError(str(error)) from None
    out = out if out is not None else Path(f"evaluation-{dataset}")
    with SectionProgress(quiet) as progress:
        def on_section(name: str, report: dict) -> None:
            progress.finish(name)
            if not quiet:
                _print_section(name, report["sections"][name], report["model"]["sources"])

        evaluation = run_evaluation(config, model, resolve_device(device), notify=_notice,
                                    progress=progress, on_section=on_section)
    written = write_report(evaluation, out, json_only=json_only, notify=_notice)
    if json_only:
        print(json.dumps(evaluation.report, indent=2, ensure_ascii=False))
    if not quiet:
        plots = sum(path.suffix == ".png" for path in written)
        console.print(f"wrote {out}: " + ("report.json" if json_only else
                                          f"report.json, report.md, {plots} plot(s)"),
                      highlight=False, soft_wrap=True)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="priorsep")
