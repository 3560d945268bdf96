"""The Typer application, the options its commands share, and how errors become exit codes."""

from __future__ import annotations

import functools
import os
import sys
import traceback
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from typer.core import TyperGroup
from typer.rich_utils import rich_format_error

from priorsep.errors import PriorsepError, TrainingInterrupted

CLICK_EXCEPTION: type[Exception] = next(
    cls for cls in typer.BadParameter.__mro__ if cls.__name__ == "ClickException")
"""The usage-error base of the click that Typer runs on: recent Typer vendors its own copy, whose
exceptions do not derive from an installed `click`'s."""
NO_ARGS_IS_HELP: type[Exception] | tuple = getattr(
    sys.modules[CLICK_EXCEPTION.__module__], "NoArgsIsHelpError", ())
"""Raised for a command given no arguments where that means "show the help" (Click 8.2+)."""

class OneLineErrors(TyperGroup):
    """The root command: a usage error the parser finds (an unknown option, a value that is
    not a number, a missing argument) is one `error: ...` line on stderr with exit code 2, as
    every other error is, instead of a usage block and a framed box."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True,
             **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except NO_ARGS_IS_HELP as error:  # `priorsep` alone: the help, as Typer shows it
            rich_format_error(error)
            sys.exit(error.exit_code)
        except CLICK_EXCEPTION as error:
            where = error.ctx.command_path if getattr(error, "ctx", None) else "priorsep"
            message = " ".join(error.format_message().split())
            print(f"error: {message} (see {where} --help)", file=sys.stderr)
            sys.exit(error.exit_code)
        except typer.Abort:
            print("interrupted", file=sys.stderr)
            sys.exit(130)
        except PriorsepError as error:  # from a root option's callback (--list-models)
            print(f"error: {error}", file=sys.stderr)
            sys.exit(error.exit_code)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=OneLineErrors,
    name="priorsep",
    help="Source separation without (mix, sources) pairs: a generative prior per source "
         "class, learnt from its solo recordings (spectral models, generators, flows, "
         "WaveNets or score models).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
console = Console(stderr=True, soft_wrap=True)
"""Every message goes to stderr, one line per message whatever the terminal's width."""

DeviceOption = Annotated[str, typer.Option(
    "--device", "-d", help="auto (CUDA, then Apple MPS, then CPU), cpu, cuda, cuda:N or mps.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]
VerboseOption = Annotated[bool, typer.Option(
    "--verbose", "-v", help="Say more: the model, the settings, the time each input took.")]
OutOption = Annotated[Path, typer.Option("--out", "-o", help="Model folder to write.")]
DatasetOption = Annotated[str, typer.Option(
    help="toy, folder (ROOT/<source>/*.wav|flac) or chorales (Bach chorales rendered from MIDI "
         "into the cache on first use).")]
RootOption = Annotated[Path | None, typer.Option(help="Dataset root for --dataset folder.")]
StepsOption = Annotated[int, typer.Option(help="Optimisation steps (per noise level).")]
BatchOption = Annotated[int, typer.Option(help="Examples per step (per rank).")]
CropOption = Annotated[int, typer.Option(
    "--crop-length", "--frame-length",
    help="Samples per training example (a random crop of a recording).")]
LrOption = Annotated[float, typer.Option(help="Adam learning rate.")]
DecayOption = Annotated[float, typer.Option(help="Learning-rate decay factor.")]
DecayTimesOption = Annotated[int, typer.Option(help="How many decays over the run.")]
CheckpointOption = Annotated[int, typer.Option(help="Steps between checkpoints.")]
EvalOption = Annotated[int, typer.Option(help="Steps between validation scores (0: end only).")]
ResumeOption = Annotated[bool, typer.Option(help="Continue the checkpoint in --out.")]
SeedOption = Annotated[int, typer.Option(help="Random seed.", min=0, max=2**31 - 1)]


def matrix_view(table, sources, title: str) -> Table:
    """A sources x sources table (rows: data, columns: prior; a cross-likelihood or
    cross-denoising matrix) with each row's highest entry in bold and None as n/a."""
    view = Table(title=title)
    view.add_column("data \\ prior")
    for name in sources:
        view.add_column(name, justify="right")
    for data_name, row in zip(sources, table):
        values = [None if v is None else float(v) for v in row]
        finite = [v for v in values if v is not None]
        best = max(finite) if finite else None
        view.add_row(data_name, *["n/a" if v is None else f"[bold]{v:+.2f}[/bold]" if v == best
                                  else f"{v:+.2f}" for v in values])
    return view


def reports_errors(command):
    """Turn core errors into one line on stderr and the error's exit code."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except PriorsepError as error:
            label = "stopped" if isinstance(error, TrainingInterrupted) else "[red]error[/red]"
            console.print(f"{label}: {option_error(error)}", highlight=False, soft_wrap=True)
            raise typer.Exit(error.exit_code) from None
        except (typer.Exit, typer.Abort, CLICK_EXCEPTION):
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


def option_error(error: Exception, flags: dict[str, str] | None = None,
                 settable: bool = False) -> PriorsepError:
    """A core configuration error as a usage error that names the command's option.

    Args:
        flags: field -> option where they are not `--field-with-dashes`.
        settable: fields without an option of their own are set with `--set FIELD=VALUE`.
    """
    from priorsep.config import FieldError
    from priorsep.errors import CheckpointExistsError, UsageError

    if isinstance(error, CheckpointExistsError):
        return UsageError(f"{error.path} exists: pass --resume to continue it, "
                          "or choose another --out")
    if isinstance(error, TrainingInterrupted):
        return TrainingInterrupted(f"{error}; continue with --resume")
    if not isinstance(error, FieldError):
        return error if isinstance(error, PriorsepError) else UsageError(str(error))
    flags = flags or {}
    option = flags.get(error.field) or (f"--set {error.field}" if settable
                                        else "--" + error.field.replace("_", "-"))
    return UsageError(f"{option}: {error.message}")


def notice(message: str) -> None:
    """A notice from the core (e.g. a fallback to the cache): one line on stderr."""
    console.print(f"[yellow]note:[/yellow] {message}", highlight=False, soft_wrap=True)


class TerminalProgress:
    """A Rich progress display on stderr, shown only on a terminal and without --quiet
    (`progress` is None otherwise); entering starts it, leaving stops it."""

    def __init__(self, quiet: bool, *columns) -> None:
        self.progress = (Progress(*columns, console=console)
                         if not quiet and console.is_terminal else None)

    def __enter__(self):
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()


class TrainReporter(TerminalProgress):
    """Rich progress bar on a terminal; a plain line every `every` steps otherwise."""

    def __init__(self, total: int, quiet: bool, every: int, sources: tuple[str, ...],
                 loss_name: str = "loss", loss_unit: str = "nats/sample",
                 validation_name: str = "validation log-likelihood (nats/sample)") -> None:
        super().__init__(quiet, TextColumn("step"), MofNCompleteColumn(), BarColumn(),
                         TextColumn(loss_name + " {task.fields[loss]:.3f} " + loss_unit),
                         TextColumn("{task.fields[speed]:,.0f} samples/s"),
                         TimeRemainingColumn())
        self.quiet = quiet
        self.loss_name = loss_name
        self.loss_unit = loss_unit
        self.validation_name = validation_name
        self.every = max(every, 1)
        self.sources = sources
        if self.progress is not None:
            self.task = self.progress.add_task("train", total=total, loss=float("nan"), speed=0.0)

    def __call__(self, report) -> None:
        if self.quiet:
            return
        if self.progress is not None:
            self.progress.update(self.task, completed=report.step, loss=report.loss,
                                 speed=report.samples_per_second)
        elif report.step % self.every == 0 or report.step == report.total:
            console.print(f"step {report.step}/{report.total}  {self.loss_name} {report.loss:.4f} "
                          f"{self.loss_unit}  {report.samples_per_second:,.0f} samples/s  "
                          f"lr {report.lr:.2e}", highlight=False)
        if report.validation is not None:
            scores = "  ".join(f"{name} {score:+.3f}"
                               for name, score in zip(self.sources, report.validation))
            console.print(f"{self.validation_name}: {scores}", highlight=False)


def main() -> None:
    """Run the command line (the console script, `priorsep.console`, guards it against
    Ctrl-C from the first import on; inside a command, `reports_errors` does)."""
    app(prog_name="priorsep")
