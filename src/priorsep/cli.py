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

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from priorsep.errors import PriorsepError

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
            console.print(f"[red]error:[/red] {error}", highlight=False, soft_wrap=True)
            raise typer.Exit(error.exit_code) from None
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


class TrainReporter:
    """Rich progress bar on a terminal; a plain line every `every` steps otherwise."""

    def __init__(self, total: int, quiet: bool, every: int, sources: tuple[str, ...]) -> None:
        self.quiet = quiet
        self.every = max(every, 1)
        self.sources = sources
        self.progress: Progress | None = None
        if not quiet and console.is_terminal:
            self.progress = Progress(
                TextColumn("step"), MofNCompleteColumn(), BarColumn(),
                TextColumn("loss {task.fields[loss]:.3f} nats/sample"),
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
            console.print(f"step {report.step}/{report.total}  loss {report.loss:.4f} "
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
    n_blocks: Annotated[int, typer.Option(help="Flow blocks (one squeeze each).")] = 3,
    n_flows: Annotated[int, typer.Option(help="Flows per block.")] = 4,
    n_layers: Annotated[int, typer.Option(help="WaveNet layers per coupling.")] = 6,
    width: Annotated[int, typer.Option(help="WaveNet residual and skip channels.")] = 32,
    cond_channels: Annotated[int, typer.Option(help="Noise-level embedding width.")] = 16,
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
    from priorsep.config import FlowConfig, ModelConfig, TrainConfig
    from priorsep.data.datasets import training_data
    from priorsep.train import resolve_device
    from priorsep.train import train as run_training

    data, validation, info = training_data(dataset, root, sources, sample_rate, frame_length)
    try:
        flow = FlowConfig(n_blocks=n_blocks, n_flows=n_flows, n_layers=n_layers,
                          residual_channels=width, skip_channels=width,
                          cond_channels=cond_channels)
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


@app.command("finetune-noise")
@reports_errors
def finetune_noise(
    model: Annotated[Path, typer.Argument(help="Model folder of clean (or earlier) priors.")],
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

    from priorsep.config import TrainConfig
    from priorsep.data.datasets import training_data
    from priorsep.storage import load_model
    from priorsep.train import finetune_levels, resolve_device
    from priorsep.train import train as run_training

    priors = load_model(model)
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


@app.command("cross-likelihood")
@reports_errors
def cross_likelihood_command(
    model: Annotated[Path, typer.Argument(help="Model folder.")],
    n_examples: Annotated[int, typer.Option(help="Held-out toy examples per source.")] = 16,
    length: Annotated[int, typer.Option(help="Samples per example.")] = 4096,
    sigma: Annotated[float, typer.Option(help="Noise level given to the priors.")] = 0.0,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
    device: DeviceOption = "auto",
) -> None:
    """Mean log-likelihood of each toy source's test data under each prior (nats/sample)."""
    import json

    from priorsep.data.toy import ToyDataset
    from priorsep.metrics import cross_likelihood
    from priorsep.storage import load_model
    from priorsep.train import resolve_device

    priors = load_model(model, resolve_device(device))
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


def main() -> None:
    """Console-script entry point."""
    app(prog_name="priorsep")
